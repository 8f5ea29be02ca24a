"""The batch runner with jobs of its own kind (no model): what it does with what a job gives it."""

from __future__ import annotations

import pytest
from matting.engine.core import ImageResult
from matting.errors import InfrastructureError
from matting.pipeline.jobs import Done
from matting.pipeline.runner import BREAKER, BatchConfig, BatchRunner
from matting.storage import LocalStorage

JPG = b"\xff\xd8\xff\xe0" + b"0" * 64


class FilesJob:
    """Writes one text file per photo through the runner (like ``IdPhotoJob``); counts what it made.
    ``skip``: photos it never yields a result for (a job with a bug)."""

    kind, noun, deepest, cacheable, extension = "test", "file(s)", "", False, ".txt"

    def __init__(self, skip: frozenset[str] = frozenset()) -> None:
        self.made: list[str] = []
        self.skip = skip

    def describe(self) -> dict:
        return {"kind": self.kind}

    def headline(self) -> str:
        return "test job"

    def run(self, photos, outputs, shortcut=None):
        for photo in photos:
            if photo.name in self.skip:
                continue
            photo.load()
            self.made.append(photo.name)
            name = outputs.names[photo.name]
            yield Done(ImageResult(photo.name, ok=True, output=name), {"source": photo.name}, {name: b"made"})

    def refused(self, name, exc, outputs):
        return Done(ImageResult(name, ok=False, error_type="refused", error=str(exc)))


class FullDisk(LocalStorage):
    def write(self, rel: str, data: bytes) -> str:
        if rel.endswith(".txt"):
            raise OSError(28, "No space left on device")
        return super().write(rel, data)


@pytest.fixture
def source(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW__MATTING__IO_BACKOFF_S", "0")
    src = tmp_path / "in"
    src.mkdir()
    for i in range(8):
        (src / f"p{i}.jpg").write_bytes(JPG)
    return LocalStorage(src)


def test_a_photo_the_job_gives_no_result_for_is_not_done(source, tmp_path):
    job = FilesJob(skip=frozenset({"p3.jpg"}))
    runner = BatchRunner(source, LocalStorage(tmp_path / "out"), job, BatchConfig("run", originals="leave"))
    with pytest.raises(InfrastructureError, match="p3.jpg: not processed: the job gave no result for it"):
        runner.run(source.list())
    assert sorted(r.source for r in runner.records) == [f"p{i}.jpg" for i in range(8) if i != 3]


def test_a_destination_that_is_down_stops_a_job_whose_files_the_runner_writes(source, tmp_path):
    """ID photos: each photo costs a full composition, then the runner writes its files. With the
    destination down, the chunk stops after ``BREAKER`` photos instead of making all eight, in each round."""
    job = FilesJob()
    cfg = BatchConfig("run", originals="leave", attempts=2)
    with pytest.raises(InfrastructureError, match="No space left on device"):
        BatchRunner(source, FullDisk(tmp_path / "out"), job, cfg).run(source.list())
    assert len(job.made) == 2 * BREAKER  # two rounds, each stopped by the breaker


def test_files_a_job_leaves_are_written_before_the_manifest_names_them(source, tmp_path):
    out = tmp_path / "out"
    runner = BatchRunner(source, LocalStorage(out), FilesJob(), BatchConfig("run", originals="leave"))
    runner.run(source.list())
    assert sorted(p.name for p in (out / "run" / "outputs").iterdir()) == [f"p{i}.txt" for i in range(8)]
    assert [r["source"] for r in runner.reports] == [f"p{i}.jpg" for i in range(8)]
    assert [r.status for r in runner.records] == ["ok"] * 8
    # originals="leave": no records written, the originals where they were
    assert not (out / "run" / "records").exists()
    assert sorted(p.name for p in source.root.iterdir()) == [f"p{i}.jpg" for i in range(8)]
