"""The result cache (matting.reuse): the same photo with the same settings is matted once, on real
storages, with the engine really run (inference counted). Every reuse is an output like any other:
the fault suite's audit still holds (tests/faults), and here each case checks the bytes."""

from __future__ import annotations

import hashlib
import json

import pytest
from conftest import SAMPLES, backdate
from matting.detection import ScanOptions, scan
from matting.engine import Engine, OutputOptions
from matting.pipeline import BatchConfig, BatchRunner, MattingJob
from matting.reuse import CACHE_DIR, ResultCache, result_key
from matting.storage import LocalStorage, S3Storage

ASTRO = (SAMPLES / "astronaut.jpg").read_bytes()
COFFEE = (SAMPLES / "coffee.jpg").read_bytes()


@pytest.fixture
def counted(engine, monkeypatch):
    """The session's engine with its inferences counted."""
    calls = []
    real = engine.matte

    def matte(image, timings):
        calls.append(image.width)
        return real(image, timings)

    monkeypatch.setattr(engine, "matte", matte)
    engine.inferences = calls
    return engine


def _put(src, files: dict[str, bytes]):
    src.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_bytes(data)
    backdate(src)
    return scan(LocalStorage(src), ScanOptions(settle_seconds=0)).new


def _run(src, dest, engine, files, prefix="run-1", out=None, **cfg):
    job = MattingJob(engine, out or OutputOptions.build("png"))
    runner = BatchRunner(LocalStorage(src), dest, job, BatchConfig(run_prefix=prefix, **cfg))
    return {r.source: r for r in runner.run(files)}, runner


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_same_bytes_under_two_names_in_one_batch_are_matted_once(tmp_path, counted):
    files = _put(tmp_path / "in", {"a.jpg": ASTRO, "copy-of-a.jpg": ASTRO, "coffee.jpg": COFFEE})
    dest = LocalStorage(tmp_path / "out")
    records, runner = _run(tmp_path / "in", dest, counted, files)  # one chunk: the default size
    assert len(counted.inferences) == 2 and runner.reused == 1
    first, copy = records["a.jpg"], records["copy-of-a.jpg"]
    assert first.reused_from is None and copy.reused_from == first.outputs[0]
    assert copy.status == "ok" and copy.moved_to == "processed/copy-of-a.jpg"
    out = tmp_path / "out"
    assert _sha(out / first.outputs[0]) == _sha(out / copy.outputs[0])  # the same bytes, its own name
    assert copy.outputs[0] != first.outputs[0]


def test_across_mapped_batches_and_runs_and_with_the_cache_off(tmp_path, counted):
    dest = LocalStorage(tmp_path / "out")
    batch_1 = _put(tmp_path / "in", {"a.jpg": ASTRO})
    records_1, _ = _run(tmp_path / "in", dest, counted, batch_1)
    batch_2 = _put(tmp_path / "in", {"b.jpg": ASTRO})  # another mapped batch of the same run
    records_2, runner = _run(tmp_path / "in", dest, counted, [f for f in batch_2 if f.path == "b.jpg"])
    assert len(counted.inferences) == 1 and records_2["b.jpg"].reused_from == records_1["a.jpg"].outputs[0]
    later = _put(tmp_path / "in", {"shop-2/again.jpg": ASTRO})  # a later run, another folder
    records_3, _ = _run(tmp_path / "in", dest, counted, [f for f in later if f.path.endswith("again.jpg")], "run-2")
    assert len(counted.inferences) == 1 and records_3["shop-2/again.jpg"].outputs[0].startswith("run-2/outputs/")
    off = _put(tmp_path / "in", {"c.jpg": ASTRO})
    _run(tmp_path / "in", dest, counted, [f for f in off if f.path == "c.jpg"], "run-3", reuse=False)
    assert len(counted.inferences) == 2  # processed: the cache is off for that DAG


def test_a_deleted_or_changed_cached_output_is_made_again(tmp_path, counted):
    dest = LocalStorage(tmp_path / "out")
    files = _put(tmp_path / "in", {"a.jpg": ASTRO})
    records, _ = _run(tmp_path / "in", dest, counted, files)
    (tmp_path / "out" / records["a.jpg"].outputs[0]).unlink()  # someone cleaned the archive
    again = _put(tmp_path / "in", {"b.jpg": ASTRO})
    records_b, _ = _run(tmp_path / "in", dest, counted, [f for f in again if f.path == "b.jpg"], "run-2")
    assert len(counted.inferences) == 2 and records_b["b.jpg"].reused_from is None  # a miss, processed
    (tmp_path / "out" / records_b["b.jpg"].outputs[0]).write_bytes(b"tampered")  # the new entry's output
    third = _put(tmp_path / "in", {"c.jpg": ASTRO})
    records_c, _ = _run(tmp_path / "in", dest, counted, [f for f in third if f.path == "c.jpg"], "run-3")
    assert len(counted.inferences) == 3 and records_c["c.jpg"].reused_from is None
    assert (tmp_path / "out" / records_c["c.jpg"].outputs[0]).read_bytes() != b"tampered"


def test_another_model_or_option_is_a_miss_never_a_wrong_reuse(tmp_path, counted, model_store):
    dest = LocalStorage(tmp_path / "out")
    files = _put(tmp_path / "in", {"a.jpg": ASTRO})
    _run(tmp_path / "in", dest, counted, files)
    webp = _put(tmp_path / "in", {"b.jpg": ASTRO})
    records, _ = _run(
        tmp_path / "in", dest, counted, [f for f in webp if f.path == "b.jpg"], out=OutputOptions.build("webp")
    )
    assert len(counted.inferences) == 2 and records["b.jpg"].reused_from is None
    white = _put(tmp_path / "in", {"c.jpg": ASTRO})
    out = OutputOptions.build("png", "white")
    records, _ = _run(tmp_path / "in", dest, counted, [f for f in white if f.path == "c.jpg"], out=out)
    assert len(counted.inferences) == 3 and records["c.jpg"].reused_from is None
    modnet = Engine(model="modnet", store=model_store, runtime=counted.runtime)
    other = _put(tmp_path / "in", {"d.jpg": ASTRO})
    records, _ = _run(tmp_path / "in", dest, modnet, [f for f in other if f.path == "d.jpg"])
    assert records["d.jpg"].reused_from is None


def test_the_key_covers_what_shapes_the_output_and_nothing_else(counted):
    from matting import reuse

    png = OutputOptions.build("png")
    key = result_key("ab" * 32, counted.model_sha256, counted.scenario, png)
    assert key == result_key("ab" * 32, counted.model_sha256, counted.scenario, OutputOptions.build("png"))
    assert key != result_key("cd" * 32, counted.model_sha256, counted.scenario, png)  # other bytes
    assert key != result_key("ab" * 32, "ef" * 32, counted.scenario, png)  # a new model file
    assert key != result_key(
        "ab" * 32, counted.model_sha256, counted.scenario, OutputOptions.build("png", png_compress_level=6)
    )
    from matting.engine.scenarios import get_scenario

    assert key != result_key("ab" * 32, counted.model_sha256, get_scenario("portrait"), png)
    original = reuse.__version__
    try:
        reuse.__version__ = "99.0"  # new code composing the output
        assert key != result_key("ab" * 32, counted.model_sha256, counted.scenario, png)
    finally:
        reuse.__version__ = original


def test_expired_entries_are_ignored_and_pruned(tmp_path, counted):
    dest = LocalStorage(tmp_path / "out")
    files = _put(tmp_path / "in", {"a.jpg": ASTRO})
    _run(tmp_path / "in", dest, counted, files)
    entries = list((tmp_path / "out" / CACHE_DIR).glob("*.json"))
    assert len(entries) == 1 and json.loads(entries[0].read_text())["sha256"]
    late = ResultCache(
        dest, max_age_s=30 * 86400, now=lambda: json.loads(entries[0].read_text())["created"] + 31 * 86400
    )
    key = entries[0].stem
    young = ResultCache(dest, max_age_s=30 * 86400)
    assert young.prune() == 0 and young.get(key) is not None  # a fresh entry survives the archive step
    assert late.get(key) is None and late.prune() == 1 and not entries[0].exists()


def test_on_s3_the_copy_is_server_side_and_conditioned_on_the_etag(tmp_path, counted, s3_server, s3_conn):
    client = s3_server.client()
    client.create_bucket(Bucket="reuse")
    dest = S3Storage("reuse", "archive", s3_conn)
    files = _put(tmp_path / "in", {"a.jpg": ASTRO, "b.jpg": ASTRO})
    records, runner = _run(tmp_path / "in", dest, counted, files)
    assert len(counted.inferences) == 1 and runner.reused == 1
    bodies = {
        k: client.get_object(Bucket="reuse", Key=f"archive/{records[k].outputs[0]}")["Body"].read() for k in records
    }
    assert bodies["a.jpg"] == bodies["b.jpg"]
    entry = json.loads(
        client.get_object(
            Bucket="reuse",
            Key=next(
                o["Key"] for o in client.list_objects_v2(Bucket="reuse", Prefix=f"archive/{CACHE_DIR}/")["Contents"]
            ),
        )["Body"].read()
    )
    assert entry["version"] and entry["sha256"] == hashlib.sha256(bodies["a.jpg"]).hexdigest()
    client.put_object(Bucket="reuse", Key=f"archive/{entry['output']}", Body=b"replaced")  # a new ETag
    third = _put(tmp_path / "in", {"c.jpg": ASTRO})
    records_c, _ = _run(tmp_path / "in", dest, counted, [f for f in third if f.path == "c.jpg"], "run-2")
    assert len(counted.inferences) == 2 and records_c["c.jpg"].reused_from is None  # the copy's condition failed
