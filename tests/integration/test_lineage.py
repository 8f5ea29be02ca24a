"""Lineage and results assets, at the operators: the datasets a run from S3 (moto) to SFTP (a real sshd)
reports to OpenLineage, the asset event an archive step emits (and does not emit for an empty run),
and that without the optional OpenLineage provider the DAGs parse and nothing of it is imported.
The same on a real Airflow with the provider's file transport: tests/live/test_live_assets.py."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from conftest import ROOT, SAMPLES
from dag_parse import DAG_FILES, environment, parse_once
from matting.pipeline.lineage import (
    DatasetName,
    dataset_root,
    datasets,
    location_of,
    public_location,
    results_event_extra,
)


def test_dataset_names_follow_the_openlineage_naming_spec():
    assert dataset_root("s3://photos/in/kiosk") == ("s3://photos", "in/kiosk")
    assert dataset_root("s3://photos") == ("s3://photos", "")
    assert dataset_root("sftp:///upload/photos/", "10.0.0.5:2222") == ("sftp://10.0.0.5:2222", "/upload/photos")
    assert dataset_root("sftp://ignored/upload", "h:22") == ("sftp://h:22", "/upload")
    assert dataset_root("/data/archive") == ("file", "/data/archive")
    assert dataset_root("file:///data/archive") == ("file", "/data/archive")
    with pytest.raises(ValueError, match="host:port"):
        dataset_root("sftp:///upload")
    assert datasets("s3://b/in", ["x/a.jpg", "b.jpg", "b.jpg", ""]) == [
        DatasetName("s3://b", "in/b.jpg"),
        DatasetName("s3://b", "in/x/a.jpg"),
    ]
    assert datasets("s3://b", ["a.jpg"]) == [DatasetName("s3://b", "a.jpg")]
    assert datasets("sftp:///", ["a.jpg"], "h:22") == [DatasetName("sftp://h:22", "/a.jpg")]
    assert location_of("s3://archive/matting/", "dag/2026/run", "manifest.json") == (
        "s3://archive/matting/dag/2026/run/manifest.json"
    )
    # what an event shows anyone who can read assets: no credentials, nothing the storage ignores, and
    # every other form read as open_storage reads it (a local path, made absolute)
    assert public_location("sftp://kiosk:hunter2@files.example.com/archive/") == "sftp:///archive"
    assert public_location("s3://bucket/p/") == "s3://bucket/p"
    assert public_location("relative/out") == str(Path.cwd() / "relative" / "out")
    assert public_location("gs://b/p") == str(Path.cwd() / "gs:" / "b" / "p")  # a local folder to open_storage
    assert location_of("sftp:///", "d/r", "manifest.json") == "sftp:///d/r/manifest.json"  # a root stays one
    assert location_of("/", "d/r") == "/d/r" and location_of("file:///data/", "x") == "/data/x"
    leaky = results_event_extra(
        dag_id="d",
        run_id="r",
        task_id="archive",
        destination="sftp://kiosk:hunter2@files.example.com/srv/out",
        destination_conn_id="sftp_out",
        run_prefix="d/r",
        counts={"ok": 1},
        outputs_prefix="d/r/outputs",
        zip_name="outputs.zip",
    )
    assert "hunter2" not in json.dumps(leaky) and "kiosk" not in json.dumps(leaky)
    assert leaky["destination"] == "sftp:///srv/out" and leaky["manifest"] == "sftp:///srv/out/d/r/manifest.json"
    extra = results_event_extra(
        dag_id="d",
        run_id="r",
        task_id="archive",
        destination="sftp:///srv/out",
        destination_conn_id="sftp_out",
        run_prefix="d/2026/12/03/r",
        counts={"files": 2, "ok": 1, "failed": 1, "extra": 9},
        outputs_prefix="d/2026/12/03/r/outputs",
        zip_name="outputs.zip",
    )
    assert extra["manifest"] == "sftp:///srv/out/d/2026/12/03/r/manifest.json"
    assert extra["outputs_prefix"] == "sftp:///srv/out/d/2026/12/03/r/outputs/"
    assert extra["zip"] == "sftp:///srv/out/d/2026/12/03/r/outputs.zip"
    assert extra["counts"] == {"files": 2, "ok": 1, "failed": 1} and extra["destination_conn_id"] == "sftp_out"
    json.dumps(extra)  # what Airflow stores


@pytest.fixture
def s3_to_sftp(tmp_path, s3_server, s3_conn, sftp_conn, sshd, monkeypatch):
    """Two photos and a broken file in s3://lineage/in (moto), an SFTP destination on the real sshd."""
    monkeypatch.setenv("AIRFLOW__MATTING__PROVIDERS", "cpu")
    s3 = s3_server.client()
    s3.create_bucket(Bucket="lineage")
    s3.put_object(Bucket="lineage", Key="in/astronaut.jpg", Body=(SAMPLES / "astronaut.jpg").read_bytes())
    s3.put_object(Bucket="lineage", Key="in/kiosk/rocket.jpg", Body=(SAMPLES / "rocket.jpg").read_bytes())
    dest_dir = sshd.root / "lineage-out"
    dest_dir.mkdir()
    return {
        "source": "s3://lineage/in",
        "source_conn_id": s3_conn,
        "destination": f"sftp://{dest_dir}",
        "destination_conn_id": sftp_conn,
        "dest_dir": dest_dir,
    }


def _dag():
    from airflow.sdk import DAG

    return DAG("lineage_check", schedule=None, start_date=datetime(2026, 1, 1))


def test_a_run_from_s3_to_sftp_names_what_it_read_and_wrote(s3_to_sftp, sshd, model_store):
    """The batch reports each object it read (s3://bucket, the key) and each file it wrote (sftp://host:port,
    the absolute path); the archive step reports the outputs folder it zipped and the manifest, zip and
    sheet it wrote, and emits one asset event whose extra says where they are."""
    from airflow.sdk.execution_time.context import OutletEventAccessors
    from matting.operators.matting import ArchiveOperator, RemoveBackgroundOperator
    from matting.storage import open_storage

    where = {k: v for k, v in s3_to_sftp.items() if k != "dest_dir"}
    with _dag():
        batch = RemoveBackgroundOperator(task_id="remove_background", model="u2netp", run_prefix="r1", **where)
        archive = ArchiveOperator(task_id="archive", run_prefix="r1", **where)
    assert batch.outlets == []  # only the step that closes a run publishes
    assert [a.uri for a in archive.outlets] == ["x-matting://lineage_check/archive"]

    context = {"run_id": "manual__1", "dag": batch.dag, "dag_run": None, "ti": None}
    with (
        open_storage(where["source"], where["source_conn_id"]) as src,
        open_storage(where["destination"], where["destination_conn_id"]) as dest,
    ):
        out = batch._run(context, src, dest)
    assert out["ok"] == 2
    lineage = batch.get_openlineage_facets_on_complete(None)
    sftp_ns = f"sftp://127.0.0.1:{sshd.port}"
    run_dir = s3_to_sftp["dest_dir"] / "lineage_check" / "r1"
    assert {(d.namespace, d.name) for d in lineage.inputs} == {
        ("s3://lineage", "in/astronaut.jpg"),
        ("s3://lineage", "in/kiosk/rocket.jpg"),
    }
    assert {(d.namespace, d.name) for d in lineage.outputs} == {
        (sftp_ns, str(run_dir / "outputs" / "astronaut.png")),
        (sftp_ns, str(run_dir / "outputs" / "kiosk" / "rocket.png")),
        (sftp_ns, str(run_dir / "parts" / "part-0000.json")),
        (sftp_ns, str(run_dir / "outputs")),  # the folder the archive step reads: the lineage chain joins
    }
    for d in lineage.outputs:  # every file (and the folder) named is there
        assert Path(d.name).exists(), d.name

    events = OutletEventAccessors()
    result = archive.execute_matting({**context, "dag": archive.dag, "outlet_events": events})
    assert result["ok"] == 2
    extra = events[archive.outlets[0]].extra
    dest = where["destination"]
    assert extra["manifest"] == f"{dest}/lineage_check/r1/manifest.json"
    assert extra["outputs_prefix"] == f"{dest}/lineage_check/r1/outputs/"
    assert extra["zip"] == f"{dest}/lineage_check/r1/outputs.zip"
    assert extra["destination_conn_id"] == where["destination_conn_id"]
    assert extra["counts"] == {"files": 2, "ok": 2, "failed": 0}
    assert (run_dir / "manifest.json").is_file()
    lineage = archive.get_openlineage_facets_on_complete(None)
    # the folder it zipped, one dataset (never the manifest read back: a 100k-photo run's would be 10 MB)
    assert {(d.namespace, d.name) for d in lineage.inputs} == {(sftp_ns, str(run_dir / "outputs"))}
    assert {(d.namespace, d.name) for d in lineage.outputs} == {
        (sftp_ns, str(run_dir / n)) for n in ("manifest.json", "outputs.zip", "contact_sheet.jpg")
    }


def test_an_archive_step_with_nothing_to_archive_emits_no_event(tmp_path):
    from airflow.sdk.execution_time.context import OutletEventAccessors
    from matting.operators.matting import ArchiveOperator

    with _dag():
        archive = ArchiveOperator(task_id="archive", destination=str(tmp_path / "out"), run_prefix="empty")
        quiet = ArchiveOperator(task_id="quiet", destination=str(tmp_path / "out"), publish_asset=False)
    assert quiet.outlets == []
    events = OutletEventAccessors()
    context = {"run_id": "manual__2", "dag": archive.dag, "dag_run": None, "ti": None, "outlet_events": events}
    assert archive.execute_matting(context) == {"files": 0, "ok": 0, "failed": 0}
    assert archive.outlets == []  # what the task runner reports as this try's outlets: no event
    assert not events._dict


def _parts(folder: Path, statuses: list[str]) -> None:
    """A run's batch part whose photos ended with ``statuses`` (ok ones with their output written)."""
    files = []
    for i, status in enumerate(statuses):
        rec = {"source": f"p{i}.jpg", "source_size": 1, "source_version": "v", "status": status, "outputs": []}
        if status == "ok":
            (folder / "outputs").mkdir(parents=True, exist_ok=True)
            (folder / "outputs" / f"p{i}.png").write_bytes(b"png")
            rec["outputs"] = [f"{folder.parent.name}/{folder.name}/outputs/p{i}.png"]
        files.append(rec)
    (folder / "parts").mkdir(parents=True, exist_ok=True)
    prefix = f"{folder.parent.name}/{folder.name}"
    doc = {"dag_id": "lineage_check", "run_id": "manual__3", "started_at": "x", "run_prefix": prefix, "files": files}
    (folder / "parts" / "part-0000.json").write_text(json.dumps(doc))


def test_an_archive_of_only_quarantined_photos_emits_no_event(tmp_path):
    """Batches ran but every photo was quarantined: the run is archived (manifest, counts) and no event
    starts a downstream DAG for nothing."""
    from airflow.sdk.execution_time.context import OutletEventAccessors
    from matting.operators.matting import ArchiveOperator

    _parts(tmp_path / "out" / "lineage_check" / "bad", ["failed", "failed"])
    with _dag():
        archive = ArchiveOperator(task_id="archive", destination=str(tmp_path / "out"), run_prefix="lineage_check/bad")
    events = OutletEventAccessors()
    context = {"run_id": "manual__3", "dag": archive.dag, "dag_run": None, "ti": None, "outlet_events": events}
    result = archive.execute_matting(context)
    assert (result["files"], result["ok"], result["failed"]) == (2, 0, 2)
    assert (tmp_path / "out" / "lineage_check" / "bad" / "manifest.json").is_file()
    assert archive.outlets == [] and not events._dict


def test_an_archive_step_run_again_publishes_again_and_says_so(tmp_path):
    """Cleared and run again for the same DAG run (a batch fixed and re-run, or the archive alone): the
    results are announced again, never dropped (at least once), and the event says an earlier try may
    have announced the run, and what that try noted."""
    from airflow.sdk.execution_time.context import OutletEventAccessors
    from matting.operators.matting import ArchiveOperator

    run = tmp_path / "out" / "lineage_check" / "again"
    _parts(run, ["ok", "failed"])

    def archive_once(try_number: int) -> dict:
        with _dag():
            archive = ArchiveOperator(
                task_id="archive", destination=str(tmp_path / "out"), run_prefix="lineage_check/again"
            )
        events = OutletEventAccessors()
        ti = type("TI", (), {"try_number": try_number})()
        archive.execute_matting({"run_id": "manual__3", "dag": archive.dag, "ti": ti, "outlet_events": events})
        return events[archive.outlets[0]].extra

    first = archive_once(1)
    assert first["counts"] == {"files": 2, "ok": 1, "failed": 1} and "maybe_announced_before" not in first
    _parts(run, ["ok", "ok"])  # the failed batch fixed and run again
    second = archive_once(2)
    assert second["counts"] == {"files": 2, "ok": 2, "failed": 0} and second["maybe_announced_before"] is True
    assert second["earlier_attempt"]["counts"] == first["counts"]
    assert second["earlier_attempt"]["try_number"] == 1
    assert second["manifest"] == first["manifest"]


# the provider as if not installed: its modules cannot be imported and its distributions are not listed
# (Airflow discovers providers by their distributions' entry points)
HIDE_OPENLINEAGE = """\
import sys, importlib.abc, importlib.metadata, importlib_metadata
def hidden(name):
    return name.split('.')[0] == 'openlineage' or name.startswith('airflow.providers.openlineage')
class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if hidden(name):
            raise ModuleNotFoundError(name)
sys.meta_path.insert(0, Hide())
for mod in (importlib.metadata, importlib_metadata):
    def discover(cls, _orig=mod.Distribution.discover.__func__, **kw):
        return (d for d in _orig(cls, **kw) if 'openlineage' not in (d.metadata['Name'] or '').lower())
    mod.Distribution.discover = classmethod(discover)
"""


def test_without_the_openlineage_provider_the_dags_parse_and_nothing_of_it_is_imported(tmp_path):
    """The provider hidden from the interpreter: every DAG file parses without an import error, and
    parsing (with the provider installed) imports nothing of OpenLineage."""
    code = (
        HIDE_OPENLINEAGE + "from airflow.dag_processing.dagbag import DagBag\n"
        "import airflow.providers_manager as pm\n"
        "assert 'apache-airflow-providers-openlineage' not in pm.ProvidersManager().providers\n"
        f"bag = DagBag({str(ROOT / 'dags')!r})\n"
        "assert not bag.import_errors, bag.import_errors\n"
        "assert bag.dags['matting_scheduled'].get_task('archive').outlets\n"
        "assert not [m for m in sys.modules if 'openlineage' in m]\n"
        "print(sorted(bag.dags))\n"
    )
    env = environment(str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "matting_results_consumer" in proc.stdout
    for dag_file in DAG_FILES:
        loaded = parse_once(dag_file, environment(str(tmp_path / dag_file.stem)))["loaded"]
        assert not [m for m in loaded if "openlineage" in m], dag_file.name


def test_the_openlineage_provider_is_installed_for_the_tests():
    """The optional extra the lineage tests need is part of the tested set (requirements.txt): missing, fail."""
    import airflow.providers.openlineage as provider

    pinned = [line for line in (ROOT / "constraints.txt").read_text().splitlines() if "providers-openlineage==" in line]
    assert pinned == [f"apache-airflow-providers-openlineage=={provider.__version__}"]
    assert f"apache-airflow-providers-openlineage=={provider.__version__}" in (ROOT / "requirements.txt").read_text()
    assert '"apache-airflow-providers-openlineage>=' in (ROOT / "pyproject.toml").read_text()  # the extra


def test_an_id_photo_run_publishes_its_photos_and_names_its_files(tmp_path, model_store, monkeypatch):
    """IdPhotoOperator: one event on x-matting://<dag_id>/make_id_photos with the manifest's location, and
    lineage from the portrait read to the photo, report and manifest written (local files: ``file``)."""
    import shutil

    from airflow.sdk.execution_time.context import OutletEventAccessors
    from matting.operators.idphoto import IdPhotoOperator

    monkeypatch.setenv("AIRFLOW__MATTING__PROVIDERS", "cpu")
    src, out = tmp_path / "portraits", tmp_path / "id-photos"
    src.mkdir()
    shutil.copy(SAMPLES / "astronaut.jpg", src / "astronaut.jpg")
    with _dag():
        op = IdPhotoOperator(
            task_id="make_id_photos", source=str(src), destination=str(out), spec="cn-1inch", strict=False
        )
    assert [a.uri for a in op.outlets] == ["x-matting://lineage_check/make_id_photos"]
    events = OutletEventAccessors()
    context = {"run_id": "manual__3", "dag": op.dag, "dag_run": None, "ti": None, "outlet_events": events}
    result = op.execute_matting(context)
    assert result["ok"] == 1, result
    run_dir = out / result["run_prefix"]
    extra = events[op.outlets[0]].extra
    assert extra["manifest"] == str(run_dir / "manifest.json") and (run_dir / "manifest.json").is_file()
    assert extra["outputs_prefix"] == str(run_dir) + "/" and extra["zip"] is None
    assert extra["counts"] == {"files": 1, "ok": 1, "failed": 0}
    lineage = op.get_openlineage_facets_on_complete(None)
    assert {(d.namespace, d.name) for d in lineage.inputs} == {("file", str(src / "astronaut.jpg"))}
    written = {(d.namespace, d.name) for d in lineage.outputs}
    assert written == {("file", str(run_dir / n)) for n in ("astronaut.jpg", "astronaut.report.json", "manifest.json")}
    for _, name in written:
        assert Path(name).is_file(), name


def test_the_example_consumer_reads_real_events_and_skips_the_rest(tmp_path):
    """``matting_results_consumer``'s task: a matting event -> the manifest's outputs, the run named by
    the event's source run (not by its extra); an event made by hand (no source task), one without a
    manifest and one whose manifest is gone or unreadable are skipped, not the whole task failed."""
    import importlib.util
    from types import SimpleNamespace

    from conftest import ROOT

    spec = importlib.util.spec_from_file_location("consumer_example", ROOT / "dags" / "matting_results_consumer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    run = tmp_path / "d" / "r"
    run.mkdir(parents=True)
    files = [{"source": "a.jpg", "outputs": ["d/r/outputs/a.png"]}, {"source": "b.jpg", "outputs": []}]
    (run / "manifest.json").write_text(json.dumps({"files": files}))
    (tmp_path / "bad.json").write_text("{not json")

    def event(manifest, task="archive", **extra):
        extra = {"manifest": manifest, "dag_id": "forged", "run_id": "forged", "counts": {"ok": 1}, **extra}
        return SimpleNamespace(extra=extra, source_task_id=task, source_dag_id="producer", source_run_id="r1")

    events = [
        event(str(run / "manifest.json"), maybe_announced_before=True),
        event(str(run / "manifest.json"), task=None),  # made by hand in the UI
        event(None),
        event(str(tmp_path / "gone" / "manifest.json")),
        event(str(tmp_path / "bad.json")),
    ]
    received = module.receive_results.function(triggering_asset_events={"x-matting://producer/archive": events})
    assert len(received) == 1
    got = received[0]
    assert (got["dag_id"], got["run_id"]) == ("producer", "r1") and got["maybe_announced_before"] is True
    assert got["outputs"] == ["d/r/outputs/a.png"] and got["outputs_total"] == 1
