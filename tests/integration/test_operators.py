"""The operators' own error handling, called directly (no scheduler): a destination that fails is
retried in-task like a source that fails, the run's manifest is written whatever happens, and a bad
option fails the task at once (AirflowFailException: Airflow does not retry it)."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import SAMPLES
from matting.errors import InfrastructureError
from matting.storage import LocalStorage


class FlakyDestination(LocalStorage):
    """Refuses the first ``fail`` writes of photo files (a full disk, a dropped mount), then works."""

    def __init__(self, root, fail: int) -> None:
        super().__init__(root)
        self.fail, self.refused = fail, 0

    def write(self, rel: str, data: bytes) -> str:
        if rel.endswith(".jpg") and self.refused < self.fail:
            self.refused += 1
            raise OSError(28, "No space left on device")
        return super().write(rel, data)


def _idphoto_run(tmp_path, dest, id_engine, monkeypatch):
    """The ID-photo operator's run (``matting.pipeline.runs.make_id_photos``, what ``IdPhotoOperator`` calls)."""
    from matting.idphoto.portrait import options_from
    from matting.pipeline.runs import RunInfo, make_id_photos

    monkeypatch.setenv("AIRFLOW__MATTING__IO_BACKOFF_S", "0.01")
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(SAMPLES / "astronaut.jpg", src / "astronaut.jpg")
    options = options_from("cn-1inch", "blue", "jpeg", None, strict=True)
    source = LocalStorage(src)
    files = source.list()
    return make_id_photos(source, dest, id_engine, options, files, RunInfo("run", run_id="manual__1")).xcom()


def test_id_photo_destination_write_failure_is_retried_in_task(tmp_path, id_engine, monkeypatch):
    dest = FlakyDestination(tmp_path / "out", fail=1)
    out = _idphoto_run(tmp_path, dest, id_engine, monkeypatch)
    assert dest.refused == 1 and out["files"] == 1  # the second round wrote it
    manifest = json.loads((tmp_path / "out" / "run" / "manifest.json").read_text())
    assert [p["source"] for p in manifest["photos"]] == ["astronaut.jpg"]


def test_id_photo_destination_down_fails_the_task_with_the_manifest_written(tmp_path, id_engine, monkeypatch):
    dest = FlakyDestination(tmp_path / "out", fail=100)
    with pytest.raises(InfrastructureError, match="No space left on device"):
        _idphoto_run(tmp_path, dest, id_engine, monkeypatch)
    assert dest.refused == 3  # [matting] io_attempts rounds, then the task fails (Airflow retries it)
    manifest = json.loads((tmp_path / "out" / "run" / "manifest.json").read_text())
    assert manifest["photos"] == [] and manifest["counts"]["files"] == 0
    assert (tmp_path / "in" / "astronaut.jpg").exists()  # the portrait is untouched


def test_a_config_error_during_a_batch_fails_the_task_without_retries(tmp_path, model_store, monkeypatch):
    """A setting or a dependency the engine only finds per photo (here: the PNG encoder the output
    asks for is missing) must fail the task at once with its message, not be retried as if the
    storage were down, and leave the photo untouched."""
    from airflow.sdk.exceptions import AirflowFailException
    from matting.engine import core
    from matting.errors import ConfigError
    from matting.operators.matting import RemoveBackgroundOperator

    def encode(*args, **kwargs):
        raise ConfigError("png_encoder='fpng' but the fpng package is not installed")

    monkeypatch.setattr(core, "encode", encode)
    monkeypatch.setenv("AIRFLOW__MATTING__PROVIDERS", "cpu")
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    shutil.copy(SAMPLES / "coffee.jpg", src / "coffee.jpg")
    op = RemoveBackgroundOperator(task_id="remove_background", source=str(src), destination=str(out), model="u2netp")
    context = {"run_id": "manual__1", "dag": None, "dag_run": None, "ti": None}
    with pytest.raises(AirflowFailException, match="fpng package is not installed"):
        op._run(context, LocalStorage(src), LocalStorage(out))
    assert (src / "coffee.jpg").exists() and not list(out.rglob("*.png"))
    assert not list(out.rglob("quarantine*"))


def test_an_id_photo_whose_name_the_destination_cannot_hold_is_refused_not_retried(tmp_path, id_engine, monkeypatch):
    """A 250-byte portrait name: planned for the run folder, the photo's name leaves room for its
    report. Where the destination holds less than it declares, the report's name is refused by the
    folder itself: the portrait is refused as ``unwritable_name`` (its photo removed again, the reason
    in the manifest), in the first round, and the task does not fail."""
    from matting.idphoto.portrait import options_from
    from matting.pipeline.runs import RunInfo, make_id_photos

    src = tmp_path / "in"
    src.mkdir()
    name = "n" * 246 + ".jpg"
    shutil.copy(SAMPLES / "astronaut.jpg", src / name)
    options = options_from("cn-1inch", "blue", "jpeg", None, strict=False)
    source = LocalStorage(src)

    class HoldsLessThanItSays(FlakyDestination):
        max_name_bytes = None

    for dest in (FlakyDestination(tmp_path / "out", fail=0), HoldsLessThanItSays(tmp_path / "short", fail=0)):
        make_id_photos(source, dest, id_engine, options, source.list(), RunInfo("run", run_id="manual__1"))
    manifest = json.loads((tmp_path / "out" / "run" / "manifest.json").read_text())
    (photo,) = manifest["photos"]
    assert photo["source"] == name and photo["passed"] is not None and len(photo["output"].encode()) <= 255
    assert (tmp_path / "out" / "run" / photo["output"]).is_file() and photo["output"] != name
    short = json.loads((tmp_path / "short" / "run" / "manifest.json").read_text())
    (refused,) = short["photos"]
    assert refused["rejected"] == "unwritable_name" and "cannot hold this name" in refused["reasons"][0]
    assert short["counts"] == {"files": 1, "ok": 0, "failed": 1}
    written = sorted(
        p.relative_to(tmp_path / "short").as_posix() for p in (tmp_path / "short").rglob("*") if p.is_file()
    )
    assert [n for n in written if not n.startswith("run/results/")] == ["run/manifest.json"]  # and its page index
    assert "run/results/index.json" in written
