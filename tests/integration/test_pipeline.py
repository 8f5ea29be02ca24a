"""A batch between two storages: outputs, records, manifest, processed/ and quarantine/, and a
worker that dies mid-batch then retries without losing or duplicating anything."""

from __future__ import annotations

import json

import pytest
from conftest import SAMPLES, backdate, files_under
from matting.detection import Ledger, ScanOptions, scan
from matting.engine import Engine, OutputOptions
from matting.manifest import RunManifest, utc_now
from matting.pipeline import BatchConfig, BatchRunner, MattingJob, write_manifest
from matting.storage import LocalStorage


class WorkerKilled(BaseException):
    """What a SIGKILL looks like from inside: nothing the runner could catch and retry."""


class DiesAfter(LocalStorage):
    """A destination whose worker dies after ``n`` record writes (as a killed task would)."""

    def __init__(self, root, n):
        super().__init__(root)
        self.left = n

    def write(self, rel, data):
        if "/records/" in rel:
            if self.left == 0:
                raise WorkerKilled("worker died")
            self.left -= 1
        return super().write(rel, data)


@pytest.fixture
def incoming(tmp_path):
    src = tmp_path / "incoming"
    (src / "sub").mkdir(parents=True)
    astro = (SAMPLES / "astronaut.jpg").read_bytes()
    (src / "a.jpg").write_bytes(astro)
    (src / "sub" / "coffee.jpg").write_bytes((SAMPLES / "coffee.jpg").read_bytes())
    (src / "dup.jpg").write_bytes(astro)  # same content, other name: its own output
    (src / "broken.jpg").write_bytes(astro[: len(astro) // 3])
    (src / "empty.jpg").write_bytes(b"")
    (src / "notes.png").write_bytes(b"not an image")
    backdate(src)  # dropped an hour ago: past the upload grace period
    return src


@pytest.fixture(scope="module")
def job(model_store):
    return MattingJob(Engine(store=model_store), OutputOptions.build("png"))


def _files(src):
    return scan(LocalStorage(src), ScanOptions(settle_seconds=0)).new


def test_crash_mid_batch_then_retry_loses_and_duplicates_nothing(tmp_path, incoming, job):
    files = _files(incoming)
    assert len(files) == 6
    cfg = BatchConfig(run_prefix="2026/11/23/run1", chunk_size=2)
    with pytest.raises(WorkerKilled, match="worker died"):
        BatchRunner(LocalStorage(incoming), DiesAfter(tmp_path / "dest", 3), job, cfg).run(files)
    moved = files_under(incoming)
    assert len([m for m in moved if m.startswith(("processed/", "quarantine/"))]) >= 3  # some were settled

    dest = LocalStorage(tmp_path / "dest")
    records = BatchRunner(LocalStorage(incoming), dest, job, cfg).run(files)  # the retry, same batch
    by_src = {r.source: r for r in records}
    assert set(by_src) == {f.path for f in files}
    ok = {s for s, r in by_src.items() if r.status == "ok"}
    assert ok == {"a.jpg", "sub/coffee.jpg", "dup.jpg"}
    assert by_src["broken.jpg"].error_type == "truncated_image"
    assert by_src["empty.jpg"].error_type == "empty_file"
    assert by_src["notes.png"].error_type == "not_an_image"

    left = files_under(incoming)
    assert left == sorted(
        [
            "processed/a.jpg",
            "processed/dup.jpg",
            "processed/sub/coffee.jpg",
            "quarantine/broken.jpg",
            "quarantine/broken.jpg.error.json",
            "quarantine/empty.jpg",
            "quarantine/empty.jpg.error.json",
            "quarantine/notes.png",
            "quarantine/notes.png.error.json",
        ]
    )
    note = json.loads((incoming / "quarantine" / "broken.jpg.error.json").read_text())
    assert note["error_type"] == "truncated_image" and "truncated" in note["error"]
    outputs = sorted(
        p.relative_to(tmp_path / "dest").as_posix()
        for p in (tmp_path / "dest").rglob("*")
        if p.is_file() and "/outputs/" in p.as_posix()
    )
    assert outputs == [
        "2026/11/23/run1/outputs/a.png",
        "2026/11/23/run1/outputs/dup.png",
        "2026/11/23/run1/outputs/sub/coffee.png",
    ]
    assert len(list((tmp_path / "dest" / cfg.records_dir).iterdir())) == 6
    assert not [p for p in (tmp_path / "dest").rglob(".*")] and not [p for p in incoming.rglob(".*")]

    manifest = RunManifest(
        dag_id="t", run_id="run1", params={}, job=job.describe(), started_at=utc_now(), files=records
    )
    path = write_manifest(dest, cfg, manifest)
    doc = json.loads(dest.read(path))
    assert doc["counts"] == {"files": 6, "ok": 3, "failed": 3}
    assert doc["job"]["model"] == "u2netp" and len(doc["job"]["model_sha256"]) == 64
    a = next(f for f in doc["files"] if f["source"] == "a.jpg")
    assert a["outputs"] == ["2026/11/23/run1/outputs/a.png"] and a["moved_to"] == "processed/a.jpg"
    assert len(a["source_sha256"]) == 64 and a["timings_ms"]["infer"] > 0

    # a rerun of the whole run: everything is recorded, nothing is processed or written again
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "dest").rglob("*.png")}
    again = BatchRunner(LocalStorage(incoming), dest, job, cfg).run(files)
    assert {r.source: r.status for r in again} == {r.source: r.status for r in records}
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "dest").rglob("*.png")} == before


def test_read_only_source_uses_the_ledger(tmp_path, incoming, job):
    src, dest = LocalStorage(incoming), LocalStorage(tmp_path / "dest")
    cfg = BatchConfig(run_prefix="r2", move_originals=False)
    records = BatchRunner(src, dest, job, cfg).run(_files(incoming))
    assert len(records) == 6
    assert sorted(p.name for p in incoming.rglob("*") if p.is_file()) == sorted(
        ["a.jpg", "coffee.jpg", "dup.jpg", "broken.jpg", "empty.jpg", "notes.png"]
    )  # untouched
    assert (tmp_path / "dest" / "quarantine" / "broken.jpg.error.json").exists()
    assert (tmp_path / "dest" / "quarantine" / "broken.jpg").exists()  # a copy beside its note
    again = scan(src, ScanOptions(settle_seconds=0), Ledger(dest).keys())
    assert again.new == [] and again.processed == 6  # the sensor will not hand them out again


def test_vanished_input_is_reported_not_skipped(tmp_path, incoming, job):
    files = _files(incoming)
    (incoming / "a.jpg").unlink()
    records = BatchRunner(LocalStorage(incoming), LocalStorage(tmp_path / "d"), job, BatchConfig(run_prefix="r3")).run(
        files
    )
    gone = next(r for r in records if r.source == "a.jpg")
    assert gone.status == "failed" and gone.error_type == "vanished"


def test_sftp_source_to_s3_destination(tmp_path, sshd, sftp_conn, s3_server, s3_conn, job):
    import uuid

    from matting.storage import S3Storage, SftpStorage

    root = sshd.root / uuid.uuid4().hex[:8]
    root.mkdir()
    (root / "a.jpg").write_bytes((SAMPLES / "astronaut.jpg").read_bytes())
    (root / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut")
    backdate(root)
    client = s3_server.client()
    # a bucket of its own: the session-wide S3 server also holds the live tests' "archive" bucket
    client.create_bucket(Bucket="pipeline-archive")
    src, dest = SftpStorage(str(root), sftp_conn), S3Storage("pipeline-archive", "out", s3_conn)
    files = scan(src, ScanOptions(settle_seconds=0)).new
    records = BatchRunner(src, dest, job, BatchConfig(run_prefix="2026/11/23/r")).run(files)
    assert {r.source: r.status for r in records} == {"a.jpg": "ok", "bad.jpg": "failed"}
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket="pipeline-archive")["Contents"])
    assert "out/2026/11/23/r/outputs/a.png" in keys and len([k for k in keys if "/records/" in k]) == 2
    assert files_under(root) == [
        "processed/a.jpg",
        "quarantine/bad.jpg",
        "quarantine/bad.jpg.error.json",
    ]
    src.close()
