"""A batch between two storages: outputs, records, manifest, processed/ and quarantine/, and a
worker that dies mid-batch then retries without losing or duplicating anything."""

from __future__ import annotations

import json

import pytest
from conftest import SAMPLES, backdate, files_under
from matting.engine import Engine, OutputOptions
from matting.errors import InfrastructureError
from matting.pipeline.detection import ScanOptions, scan
from matting.pipeline.jobs import MattingJob
from matting.pipeline.manifest import RunManifest, utc_now
from matting.pipeline.naming import stems_of
from matting.pipeline.runner import BatchConfig, BatchRunner, write_manifest
from matting.storage import FileInfo, Ledger, LocalStorage
from PIL import Image


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
    assert doc["counts"] == {"files": 6, "ok": 3, "failed": 3, "reused": 1}  # dup.jpg: a.jpg's bytes
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
    again = scan(src, ScanOptions(settle_seconds=0), Ledger(dest).ids())
    assert again.new == [] and again.processed == 6  # the sensor will not hand them out again


def test_a_read_only_run_folds_the_ledger_it_wrote(tmp_path, incoming, job, monkeypatch):
    """A run that marked enough versions folds them (here from 4 markers instead of 256): no marker
    left at the top of ``_ledger/``, one segment with every version, each marker's document (with
    its status) in the archive, and the next check still finds all six settled."""
    from matting.storage import ledger as ledger_mod

    monkeypatch.setattr(ledger_mod, "FOLD_AT", 4)
    src, dest = LocalStorage(incoming), LocalStorage(tmp_path / "dest")
    records = BatchRunner(src, dest, job, BatchConfig(run_prefix="r2", move_originals=False)).run(_files(incoming))
    folder = tmp_path / "dest" / "_ledger"
    assert not [p for p in folder.iterdir() if p.is_file()]
    (segment,) = (folder / "index").iterdir()
    assert sorted(segment.read_text().split()) == sorted(f.version_id for f in _files(incoming))
    (archive,) = (folder / "archive").iterdir()
    statuses = {d["source"]: d["status"] for d in map(json.loads, archive.read_text().splitlines())}
    assert statuses == {r.source: r.status for r in records}
    again = scan(src, ScanOptions(settle_seconds=0), Ledger(dest).ids())
    assert again.new == [] and again.processed == 6


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


class CountsReads(LocalStorage):
    def __init__(self, root):
        super().__init__(root)
        self.reads: list[str] = []

    def _read(self, rel):
        self.reads.append(rel)
        return super()._read(rel)


def test_files_over_the_byte_limit_are_refused_from_the_listing_without_a_read(tmp_path, job, monkeypatch):
    src = tmp_path / "in"
    src.mkdir()
    (src / "ok.jpg").write_bytes((SAMPLES / "astronaut.jpg").read_bytes())
    (src / "huge.jpg").write_bytes(b"\xff\xd8\xff" + b"\0" * 300_000)
    backdate(src)
    monkeypatch.setenv("AIRFLOW__MATTING__MAX_BYTES", "200000")
    source = CountsReads(src)
    records = BatchRunner(source, LocalStorage(tmp_path / "d"), job, BatchConfig(run_prefix="r")).run(
        scan(source, ScanOptions(settle_seconds=0)).new
    )
    by = {r.source: r for r in records}
    assert by["huge.jpg"].error_type == "file_too_large" and "[matting] max_bytes" in by["huge.jpg"].error
    assert by["ok.jpg"].status == "ok" and source.reads == ["ok.jpg"]  # the big one was never read
    note = json.loads((src / "quarantine" / "huge.jpg.error.json").read_text())
    assert note["error_type"] == "file_too_large"


def test_mapped_batches_and_retries_never_collide_on_output_names(tmp_path, job):
    """a.jpg and a.png land in different mapped batches: the run-wide plan gives each its own output,
    and a retried batch writes the very same names."""
    from matting.flows.tasks import split_batches

    src = tmp_path / "in"
    src.mkdir()
    (src / "a.jpg").write_bytes((SAMPLES / "astronaut.jpg").read_bytes())
    Image.open(SAMPLES / "coffee.jpg").save(src / "a.png")
    listing = [f.to_dict() for f in scan(LocalStorage(src), ScanOptions(settle_seconds=0)).new]
    batches = split_batches.function(listing, 1)
    assert len(batches) == 2
    dest = LocalStorage(tmp_path / "d")
    outputs = []
    for batch in batches + batches[:1]:  # the first batch is retried after the second ran
        infos = [FileInfo.from_dict(d) for d in batch]
        runner = BatchRunner(LocalStorage(src), dest, job, BatchConfig("r"))
        outputs += [r.outputs[0] for r in runner.run(infos, stems=stems_of(batch))]
    assert outputs[0] == outputs[2] and len(set(outputs)) == 2
    made = sorted(p.name for p in (tmp_path / "d" / "r" / "outputs").iterdir())
    assert made == ["a.png", "a_png.png"]
    sizes = {Image.open(tmp_path / "d" / "r" / "outputs" / n).size for n in made}
    assert sizes == {Image.open(SAMPLES / "astronaut.jpg").size, Image.open(SAMPLES / "coffee.jpg").size}


def test_s3_keys_are_used_verbatim(s3_server, s3_conn, tmp_path, job):
    """in/a//b.jpg is a key of its own, not in/a/b.jpg: both are processed, moved under their own keys
    and get outputs of their own. (Keys with '.' segments cannot even be written through boto3: the
    HTTP layer removes dot segments from the URL.)"""
    from matting.storage import S3Storage

    client = s3_server.client()
    client.create_bucket(Bucket="verbatim")
    photo = (SAMPLES / "astronaut.jpg").read_bytes()
    for key in ("in/a//b.jpg", "in/a/b.jpg", "in/c.jpg"):
        client.put_object(Bucket="verbatim", Key=key, Body=photo)
    src = S3Storage("verbatim", "in", s3_conn)
    files = scan(src, ScanOptions(settle_seconds=0)).new
    assert sorted(f.path for f in files) == ["a//b.jpg", "a/b.jpg", "c.jpg"]
    records = BatchRunner(src, LocalStorage(tmp_path / "d"), job, BatchConfig("r")).run(files)
    assert {r.status for r in records} == {"ok"} and len({r.outputs[0] for r in records}) == 3
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket="verbatim")["Contents"])
    assert keys == ["in/processed/a//b.jpg", "in/processed/a/b.jpg", "in/processed/c.jpg"]


def test_the_ledger_keeps_every_entry_when_mapped_tasks_write_at_once(tmp_path):
    import threading

    from matting.storage import FileInfo as Info

    ledger = Ledger(LocalStorage(tmp_path))

    def worker(n):
        for i in range(40):
            ledger.mark(Info(f"t{n}/f{i}.jpg", 1, 0.0, f"v{i}"))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ledger.ids()) == 240


ARCHIVE_RSS = """
import json, resource, sys
from matting.pipeline.archive import close_run
from matting.storage import FileInfo, LocalStorage
from PIL import Image
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
summary = close_run(LocalStorage(sys.argv[1]), None, make_sheet=False)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"grew_mb": (after - before) / 1024, "summary": summary}))
"""


def test_archive_of_a_2000_photo_run_keeps_memory_flat(tmp_path):
    """The zip is streamed through a temp file: 2,000 outputs of 100 kB (200 MB) must not grow the
    archiving process by anything like their size; the manifest is written before the zip."""
    import os
    import subprocess
    import sys

    from conftest import ROOT

    run = tmp_path / "run"
    (run / "outputs").mkdir(parents=True)
    (run / "parts").mkdir()
    blob = os.urandom(100_000)
    files = []
    for i in range(2000):
        (run / "outputs" / f"p{i:04d}.png").write_bytes(blob[i:] + blob[:i])
        files.append({"source": f"p{i:04d}.jpg", "status": "ok", "outputs": [f"outputs/p{i:04d}.png"]})
    part = {"dag_id": "d", "run_id": "r", "started_at": "x", "run_prefix": "", "files": files}
    (run / "parts" / "part-0000.json").write_text(json.dumps(part))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "plugins")}
    proc = subprocess.run([sys.executable, "-c", ARCHIVE_RSS, str(run)], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["summary"]["files"] == 2000 and (run / "outputs.zip").stat().st_size > 200_000_000
    print(f"archive step: 2000 outputs, 200 MB zip, peak RSS grew {out['grew_mb']:.1f} MB")
    assert out["grew_mb"] < 40, out  # an in-memory zip grows by > 200 MB
    import zipfile

    with zipfile.ZipFile(run / "outputs.zip") as zf:
        assert len(zf.namelist()) == 2000 and zf.read("outputs/p0007.png") == blob[7:] + blob[:7]


def _records_of_a_big_run(parts: int, per_part: int) -> list[list[dict]]:
    """Records as batches write them (every field a real one fills), for ``parts`` mapped batches; the
    sources interleave across parts, as a retried or re-split run's may."""
    from dataclasses import asdict

    from matting.pipeline.manifest import FileRecord

    out: list[list[dict]] = [[] for _ in range(parts)]
    for i in range(parts * per_part):
        ok = i % 7 != 0
        rec = FileRecord(
            source=f"kiosk-{i % 13:02d}/2026/12/03/photo-{i:06d}.jpg",
            source_size=200_000 + i,
            source_version=f"{1_780_000_000 + i}.123456:{200_000 + i}",
            source_sha256=f"{i:064x}",
            status="ok" if ok else "failed",
            outputs=[f"matting/2026/12/03/run/outputs/photo-{i:06d}.png"] if ok else [],
            error_type=None if ok else "UnreadableImage",
            error=None if ok else "cannot identify image file (truncated upload?)",
            moved_to=f"processed/2026/12/03/photo-{i:06d}.jpg" if ok else f"quarantine/photo-{i:06d}.jpg",
            timings_ms={"read": 12.5, "decode": 8.1, "matte": 310.2, "encode": 40.7, "write": 9.9},
            width=1200,
            height=1600,
            finished_at="2026-12-03T09:00:00Z",
            model="isnet-general-use",
        )
        out[i % parts].append(asdict(rec))
    return out


def test_closing_a_big_run_holds_its_manifest_once_compactly(tmp_path):
    """Closing a 20,000-photo run (40 batches' parts): the manifest and its results index are written
    from the entries held as compact JSON, never the whole manifest parsed or dumped at once. Python's
    own allocations peak below 1.5 kB a photo (the parsed manifest alone is ~5 kB a photo), and what
    was written is the merge of the parts, sorted, readable by any JSON reader and by the pages."""
    import tracemalloc

    from matting.pipeline.archive import close_run
    from matting.results.index import ResultIndex

    parts = _records_of_a_big_run(40, 500)
    folder = tmp_path / "run" / "parts"
    folder.mkdir(parents=True)
    for n, files in enumerate(parts):
        doc = RunManifest("d", "r", {"p": 1}, {"model": "m"}, f"2026-12-03T09:{n:02d}:00Z", run_prefix="matting/run")
        (folder / f"part-{n:04d}.json").write_bytes(json.dumps({**vars(doc), "files": files}, indent=2).encode())
    run = LocalStorage(tmp_path / "run")
    tracemalloc.start()
    try:
        summary = close_run(run, None, make_zip=False, make_sheet=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    expected = sorted((f for files in parts for f in files), key=lambda f: f["source"])
    print(f"closing 20,000 photos: traced peak {peak / 1e6:.1f} MB, {peak / 20_000:.0f} B a photo")
    assert peak < 1500 * 20_000, peak
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_bytes())
    assert manifest["files"] == expected
    assert (
        manifest["counts"]
        == {"files": 20_000, "ok": 17_142, "failed": 2_858}
        == {k: summary[k] for k in manifest["counts"]}
    )
    assert manifest["started_at"] == "2026-12-03T09:00:00Z" and len(manifest["parts"]) == 40
    assert manifest["dag_id"] == "d" and manifest["params"] == {"p": 1} and manifest["run_prefix"] == "matting/run"
    index = ResultIndex.open(run)
    assert index is not None and index.total == 20_000 and index.views["failed"] == 2_858
    assert [e[3] for e in index.entries("all", 19_990, 20_000)] == expected[19_990:]


class CutsTransfers(LocalStorage):
    """A source whose first read of each good photo returns only its first half without an error, as
    paramiko does when the SSH session dies under its prefetch (seen in the SFTP fault scenario)."""

    def __init__(self, root):
        super().__init__(root)
        self.cut: set[str] = set()

    def _read(self, rel):
        data = super()._read(rel)
        if rel.endswith(("a.jpg", "coffee.jpg")) and rel not in self.cut:
            self.cut.add(rel)
            return data[: len(data) // 2]
        return data


def test_a_transfer_cut_short_is_retried_never_quarantined_as_truncated(tmp_path, incoming, job):
    files = _files(incoming)
    src = CutsTransfers(incoming)
    records = BatchRunner(src, LocalStorage(tmp_path / "d"), job, BatchConfig(run_prefix="r")).run(files)
    by_src = {r.source: r for r in records}
    assert src.cut == {"a.jpg", "sub/coffee.jpg"}  # both were cut once
    assert by_src["a.jpg"].status == "ok" and by_src["sub/coffee.jpg"].status == "ok"
    assert by_src["broken.jpg"].error_type == "truncated_image"  # a file that *is* short still is one
    moved = files_under(incoming)
    assert "processed/a.jpg" in moved and "processed/sub/coffee.jpg" in moved
    assert not [m for m in moved if m.startswith("quarantine/") and m.endswith(("a.jpg", "coffee.jpg"))]


def test_only_what_can_still_become_an_image_waits_for_its_upload(tmp_path, job):
    """Fresh files (inside the upload grace period): a JPEG cut inside its header or its body may
    still be uploading and is left for the next run; a text file named .jpg never becomes an image
    and is quarantined now, not five minutes later."""
    src = tmp_path / "fresh"
    src.mkdir()
    astro = (SAMPLES / "astronaut.jpg").read_bytes()
    (src / "header_cut.jpg").write_bytes(astro[:2])
    (src / "body_cut.jpg").write_bytes(astro[: len(astro) // 2])
    (src / "notes.jpg").write_bytes(b"this is a text file, not a photo\n")
    files = scan(LocalStorage(src), ScanOptions(settle_seconds=0)).new
    runner = BatchRunner(LocalStorage(src), LocalStorage(tmp_path / "d"), job, BatchConfig(run_prefix="r"))
    records = {r.source: r for r in runner.run(files)}
    assert sorted(runner.left_for_next_run) == ["body_cut.jpg", "header_cut.jpg"]
    assert set(records) == {"notes.jpg"} and records["notes.jpg"].error_type == "not_an_image"
    assert sorted(files_under(src)) == [
        "body_cut.jpg",
        "header_cut.jpg",
        "quarantine/notes.jpg",
        "quarantine/notes.jpg.error.json",
    ]


def test_could_become_image_reads_the_first_bytes_only():
    from matting.images import could_become_image

    png = b"\x89PNG\r\n\x1a\n"
    assert could_become_image(b"") and could_become_image(png[:3]) and could_become_image(png + b"\x00" * 8)
    assert could_become_image(b"RIFF\x10\x00") and could_become_image(b"\x00\x00\x00\x18ftypheic")
    assert not could_become_image(b"hello world, not a photo")
    assert not could_become_image(b"<html><body>404</body></html>")
    assert not could_become_image(b"RIFF\x10\x00\x00\x00WAVEfmt ")  # a sound file, not a WebP
    assert could_become_image(b"\x00\x00\x02", "scan.tga")  # TGA has no signature to rule it out


def test_a_destination_refusing_records_stops_the_attempt_and_quarantines_nothing(tmp_path, incoming, job):
    """Outputs are written but every record write fails (the destination's metadata folder went
    read-only): 3 in a row stop the attempt, the later chunks are left untouched, the task fails,
    and no original is moved or quarantined."""

    class RefusesRecords(LocalStorage):
        def write(self, rel, data):
            if "/records/" in rel:
                raise OSError(30, "Read-only file system")
            return super().write(rel, data)

    before = files_under(incoming)
    cfg = BatchConfig(run_prefix="run", chunk_size=1, attempts=1)
    with pytest.raises(InfrastructureError, match="nothing quarantined") as failed:
        BatchRunner(LocalStorage(incoming), RefusesRecords(tmp_path / "dest"), job, cfg).run(_files(incoming))
    assert "Read-only file system" in str(failed.value) and "not tried: 3 photos in a row" in str(failed.value)
    assert files_under(incoming) == before  # every original where it was


def test_names_the_destination_cannot_hold_are_settled_in_the_first_run(s3_server, s3_conn, tmp_path, job):
    """Issue #37: S3 keys a folder cannot hold as names (304 bytes of ASCII, 264 of é) and a
    Windows-style name, into a local destination: each gets an output within the folder's limits in
    the first run, no retry (no sleep), the record keeps the original name, and the next scan finds
    nothing left. Where the destination holds less than it declares, the photo is quarantined as
    ``unwritable_name`` with the reason, never retried as an outage."""
    from matting.storage import S3Storage

    client = s3_server.client()
    client.create_bucket(Bucket="names")
    photo = (SAMPLES / "astronaut.jpg").read_bytes()
    keys = ["photos/" + "n" * 300 + ".jpg", "folder/" + "é" * 130 + ".jpg", "x\\..\\y.jpg"]
    for i, key in enumerate(keys):
        client.put_object(Bucket="names", Key=f"in/{key}", Body=photo + bytes([i]))
    src = S3Storage("names", "in", s3_conn)
    slept: list[float] = []
    runner = BatchRunner(src, LocalStorage(tmp_path / "d"), job, BatchConfig("r"), sleep=slept.append)
    records = runner.run(scan(src, ScanOptions(settle_seconds=0)).new)
    assert not slept and {r.source: r.status for r in records} == dict.fromkeys(keys, "ok")
    outputs = {r.source: r.outputs[0] for r in records}
    assert outputs[keys[2]] == "r/outputs/x_.._y.png"  # one file, not x/y.png
    for key in keys[:2]:
        out = tmp_path / "d" / outputs[key]
        assert out.is_file() and len(out.name.encode()) <= 255 and out.name[:3] == key.split("/")[1][:3]
    assert scan(src, ScanOptions(settle_seconds=0)).new == []  # moved to processed/: no run sees them again

    class HoldsLessThanItSays(LocalStorage):  # a share whose limit is not declared: the kernel's answer
        max_name_bytes = None

    client.put_object(Bucket="names", Key="in/again/" + "n" * 300 + ".jpg", Body=photo + b"again")
    runner = BatchRunner(src, HoldsLessThanItSays(tmp_path / "e"), job, BatchConfig("r"), sleep=slept.append)
    (rec,) = runner.run(scan(src, ScanOptions(settle_seconds=0)).new)
    assert not slept and rec.status == "failed" and rec.error_type == "unwritable_name"
    assert "File name too long" in rec.error and rec.moved_to == "quarantine/again/" + "n" * 300 + ".jpg"
    note = json.loads(src.read(rec.moved_to + ".error.json"))
    assert note["error_type"] == "unwritable_name" and note["source"] == "again/" + "n" * 300 + ".jpg"


def test_a_read_only_source_s_failures_are_copied_under_names_the_destination_holds(s3_server, s3_conn, tmp_path, job):
    """An S3 source that keeps its files (``move_originals=False``): a failed file's copy and note go
    to the destination's quarantine/ under a portable name that a folder can hold with its note (the
    key is 304 bytes, with ``\\`` and ``:``); the note names the original key."""
    from matting.storage import S3Storage

    client = s3_server.client()
    client.create_bucket(Bucket="keeps")
    key = "a\\b:" + "q" * 300 + ".jpg"
    client.put_object(Bucket="keeps", Key=f"in/{key}", Body=b"not a photo")
    src, dest = S3Storage("keeps", "in", s3_conn), LocalStorage(tmp_path / "d")
    cfg = BatchConfig("r", move_originals=False)
    (rec,) = BatchRunner(src, dest, job, cfg, sleep=pytest.fail).run(scan(src, ScanOptions(settle_seconds=0)).new)
    assert rec.status == "failed" and rec.source == key and rec.moved_to is None
    (copy,) = [p for p in files_under(tmp_path / "d" / "quarantine") if not p.endswith(".error.json")]
    assert copy.startswith("a_b_qqq") and len(f"{copy}.error.json".encode()) <= 255
    assert (tmp_path / "d" / "quarantine" / copy).read_bytes() == b"not a photo"
    note = json.loads((tmp_path / "d" / "quarantine" / f"{copy}.error.json").read_text())
    assert note["source"] == key and note["error_type"] == "not_an_image"
    assert scan(src, ScanOptions(settle_seconds=0), Ledger(dest).ids()).new == []  # never handed out again


def test_an_original_its_source_will_not_take_under_its_name_gets_a_short_one(tmp_path, incoming, job):
    """A source that refuses a name it declared it could hold (a share with a shorter limit): the
    original goes to processed/ under its version's own short name, the record says where, and a retry
    finds it done."""
    import errno

    from matting.errors import UnwritableName

    class HoldsThirtyBytes(LocalStorage):
        def move(self, rel, dest_rel, expect=None):
            if len(dest_rel.rsplit("/", 1)[-1].encode()) > 30:
                with self._naming(dest_rel):
                    raise OSError(errno.ENAMETOOLONG, "File name too long", dest_rel)
            return super().move(rel, dest_rel, expect)

    name = "n" * 40 + ".jpg"
    (incoming / name).write_bytes((SAMPLES / "coffee.jpg").read_bytes())
    backdate(incoming)
    src = HoldsThirtyBytes(incoming)
    with pytest.raises(UnwritableName):
        src.move(name, f"processed/{name}")
    files = [f for f in _files(incoming) if f.path == name]
    (rec,) = BatchRunner(src, LocalStorage(tmp_path / "d"), job, BatchConfig("r"), sleep=pytest.fail).run(files)
    assert rec.status == "ok" and rec.moved_to == f"processed/{files[0].version_id}.jpg"
    assert (incoming / rec.moved_to).read_bytes() == (SAMPLES / "coffee.jpg").read_bytes()
    saved = json.loads((tmp_path / "d" / "r" / "records" / f"{files[0].version_id}.json").read_text())
    assert saved["moved_to"] == rec.moved_to and not (incoming / name).exists()


def test_the_archive_step_deletes_writes_a_killed_worker_left_unfinished(tmp_path, incoming, job):
    """A worker SIGKILLed mid-write leaves ``.<name>.tmp-*`` beside the output its retry wrote again:
    the archive step (every batch is over; the folder is the run's alone) deletes it, and nothing else."""
    from matting.pipeline.archive import close_run

    dest = LocalStorage(tmp_path / "dest")
    BatchRunner(LocalStorage(incoming), dest, job, BatchConfig(run_prefix="r")).run(_files(incoming))
    run = tmp_path / "dest" / "r"
    before = files_under(run)
    leftover = run / "outputs" / ".a.png.tmp-k1ll3d00"
    leftover.write_bytes(b"\x89PNG half")
    close_run(LocalStorage(run), LocalStorage(incoming), make_sheet=False)
    after = files_under(run)
    assert ".a.png.tmp-k1ll3d00" not in " ".join(after)
    assert set(before) <= set(after)  # every output, record and part kept
