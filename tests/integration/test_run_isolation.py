"""One run, one folder: two DAGs on one cron into one destination (equal run ids) each get their own
complete manifest, zip and contact sheet; a folder that another DAG's run wrote is never written into."""

from __future__ import annotations

import json
import zipfile
from datetime import UTC, datetime

import pytest
from conftest import ROOT, SAMPLES, backdate, files_under


def test_two_dags_on_one_cron_into_one_destination_keep_their_own_runs(tmp_path, model_store, monkeypatch, airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    dest = tmp_path / "archive"
    photos = {"shop_a": ["astronaut.jpg", "coffee.jpg"], "shop_b": ["rocket.jpg"]}
    for shop, names in photos.items():
        src = tmp_path / shop
        src.mkdir()
        for name in names:
            (src / name).write_bytes((SAMPLES / name).read_bytes())
        # the same file name in both sources, different photos
        (src / "same-name.jpg").write_bytes((SAMPLES / names[0]).read_bytes())
        backdate(src)
        monkeypatch.setenv(f"AIRFLOW_VAR_{shop.upper()}_SOURCE", str(src))
    monkeypatch.setenv("AIRFLOW_VAR_MATTING_DESTINATION", str(dest))
    monkeypatch.setenv("AIRFLOW__MATTING__DEADLINES", "off")
    bag = DagBag(dag_folder=str(ROOT / "tests" / "dags" / "two_shops.py"))
    assert not bag.import_errors, bag.import_errors
    when = datetime(2026, 12, 1, 9, 15, tzinfo=UTC)  # one cron tick: both runs get the same run id
    runs = {shop: bag.get_dag(f"{shop}_scheduled").test(logical_date=when, run_after=when) for shop in photos}
    assert {r.run_id for r in runs.values()} == {runs["shop_a"].run_id}  # equal, as on one cron
    assert all(r.state == "success" for r in runs.values())

    for shop, names in photos.items():
        (run_dir,) = [p.parent for p in dest.glob(f"{shop}_scheduled/*/*/*/*/manifest.json")]
        manifest = json.loads((run_dir / "manifest.json").read_text())
        assert manifest["dag_id"] == f"{shop}_scheduled" and manifest["run_id"] == runs[shop].run_id
        assert sorted(f["source"] for f in manifest["files"]) == sorted([*names, "same-name.jpg"])
        assert manifest["counts"]["ok"] == len(names) + 1
        zipped = sorted(zipfile.ZipFile(run_dir / "outputs.zip").namelist())
        assert zipped == sorted(f"outputs/{n.rsplit('.', 1)[0]}.png" for n in [*names, "same-name.jpg"])
        assert (run_dir / "contact_sheet.jpg").stat().st_size > 0
        assert json.loads((run_dir / "run.json").read_text()) == {
            "dag_id": f"{shop}_scheduled",
            "run_id": runs[shop].run_id,
        }
    same = [p.read_bytes() for p in dest.glob("*/*/*/*/*/outputs/same-name.png")]
    assert len(same) == 2 and same[0] != same[1]  # neither overwrote the other


@pytest.mark.parametrize("owner", ["run.json", "manifest.json"])
def test_a_folder_of_another_run_is_never_written_into(tmp_path, owner):
    """A run id reused by hand or a run_prefix two DAGs share: the second run is refused before it
    writes a byte (folders from before run.json are recognised by their manifest)."""
    from matting.errors import ConfigError
    from matting.pipeline.runs import RunInfo, claim_run_folder
    from matting.storage import LocalStorage

    root = LocalStorage(str(tmp_path))
    first = RunInfo("shared", dag_id="matting_scheduled", run_id="rerun-1")
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / owner).write_text(json.dumps({"dag_id": first.dag_id, "run_id": first.run_id, "x": 1}))
    before = files_under(tmp_path)
    claim_run_folder(root.sub("shared"), first)  # the same run again (a retry): allowed
    for other in (
        RunInfo("shared", dag_id="id_photo_batch", run_id="rerun-1"),
        RunInfo("shared", dag_id="matting_scheduled", run_id="rerun-2"),
    ):
        with pytest.raises(ConfigError, match="belongs to DAG 'matting_scheduled' run 'rerun-1'"):
            claim_run_folder(root.sub("shared"), other)
    assert files_under(tmp_path) == before
    claim_run_folder(root.sub("fresh"), first)
    assert json.loads((tmp_path / "fresh" / "run.json").read_text()) == {
        "dag_id": "matting_scheduled",
        "run_id": "rerun-1",
    }


def test_the_run_folder_always_names_the_dag():
    from types import SimpleNamespace

    from matting.operators.base import run_folder

    ctx = {
        "dag": SimpleNamespace(dag_id="matting_s3_ingest"),
        "run_id": "scheduled__2026-12-01T09:15:00+00:00",
        "logical_date": datetime(2026, 12, 1, 9, 15, tzinfo=UTC),
    }
    assert run_folder(ctx, None) == "matting_s3_ingest/2026/12/01/scheduled__2026-12-01T09-15-00_00-00"
    assert run_folder(ctx, "custom/x") == "matting_s3_ingest/custom/x"
    assert run_folder(ctx, "matting_s3_ingest/custom") == "matting_s3_ingest/custom"
    assert run_folder(ctx, "/") == run_folder(ctx, None)
