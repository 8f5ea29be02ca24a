"""The result cache (matting.pipeline.reuse): the same photo with the same settings is matted once, on real
storages, with the engine really run (inference counted). Every reuse is an output like any other:
the fault suite's audit still holds (tests/faults), and here each case checks the bytes."""

from __future__ import annotations

import hashlib
import json

import pytest
from conftest import SAMPLES, backdate
from matting import layout
from matting.engine import Engine, OutputOptions
from matting.pipeline.detection import ScanOptions, scan
from matting.pipeline.jobs import MattingJob
from matting.pipeline.reuse import ResultCache, result_key
from matting.pipeline.runner import BatchConfig, BatchRunner
from matting.storage import LocalStorage, S3Storage

ASTRO = (SAMPLES / "astronaut.jpg").read_bytes()
COFFEE = (SAMPLES / "coffee.jpg").read_bytes()


@pytest.fixture
def counted(engine, monkeypatch):
    """The session's engine with its inferences counted."""
    calls = []
    real = engine.matte_many

    def matte_many(images, timings):
        calls.extend(image.width for image in images)
        return real(images, timings)

    monkeypatch.setattr(engine, "matte_many", matte_many)
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
    from matting.pipeline import reuse

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
    entries = list((tmp_path / "out" / layout.CACHE).glob("*.json"))
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
                o["Key"] for o in client.list_objects_v2(Bucket="reuse", Prefix=f"archive/{layout.CACHE}/")["Contents"]
            ),
        )["Body"].read()
    )
    assert entry["version"] and entry["sha256"] == hashlib.sha256(bodies["a.jpg"]).hexdigest()
    client.put_object(Bucket="reuse", Key=f"archive/{entry['output']}", Body=b"replaced")  # a new ETag
    third = _put(tmp_path / "in", {"c.jpg": ASTRO})
    records_c, _ = _run(tmp_path / "in", dest, counted, [f for f in third if f.path == "c.jpg"], "run-2")
    assert len(counted.inferences) == 2 and records_c["c.jpg"].reused_from is None  # the copy's condition failed


DAY = 86400.0


class _Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _entry(key: str, created: float):
    from matting.pipeline.reuse import Entry

    return Entry(output=f"r/outputs/{key}.png", sha256="0" * 64, size=1, run="r", source=f"{key}.jpg", created=created)


def _counting_storage(root, counts: dict, fail=None):
    """A local folder whose every list/read/write/delete (also in sub-folders) is counted."""

    class Counting(LocalStorage):
        def _tap(self, kind):
            counts[kind] = counts.get(kind, 0) + 1
            if fail is not None:
                fail(kind)

        def list(self, recursive=True, skip_dirs=()):
            self._tap("list")
            return super().list(recursive, skip_dirs)

        def read(self, rel, expect=None):
            self._tap("read")
            return super().read(rel, expect)

        def write(self, rel, data):
            self._tap("write")
            return super().write(rel, data)

        def delete(self, rel):
            self._tap("delete")
            return super().delete(rel)

        def sub(self, rel_dir):
            return Counting(super().sub(rel_dir).root)

    return Counting(root)


def test_a_prune_costs_what_expired_not_what_the_cache_holds(tmp_path):
    """2,000 live entries made over 20 days, then a prune a day: each reads and deletes only the
    entries of the day that expired (3 requests each) plus a listing and the state, whatever the rest."""
    import time as _time

    counts: dict = {}
    clock = _Clock(_time.time() // DAY * DAY - 40 * DAY + 3600)  # 01:00 UTC: a day's entries share a date
    cache = ResultCache(_counting_storage(tmp_path, counts), max_age_s=30 * DAY, now=clock)
    assert cache.prune() == 0  # an empty cache: its state is written, nothing scanned again
    made: dict[str, float] = {}
    for day in range(20):
        for k in range(100):
            key = f"{day:02d}{k:062d}"
            made[key] = clock.t + day * DAY + k
            cache.put(key, _entry(key, made[key]))
    for day in range(20):
        clock.t = made[f"{day:02d}{0:062d}"] + 31 * DAY  # that day's entries are all past 30 days now
        counts.clear()
        removed = cache.prune()
        assert removed == 100, (day, removed)
        assert counts.get("read", 0) <= 100 + 1 and counts.get("delete", 0) <= 200, counts
        # one listing per day walked, never the whole cache (the first prune catches up the 30 empty
        # days since the cache's state was written; then one day a prune)
        assert counts.get("list", 0) <= (31 if day == 0 else 1), counts
        live = {p.stem for p in (tmp_path / layout.CACHE).glob("*.json")}
        assert live == {k for k in made if int(k[:2]) > day}


def test_an_entry_made_again_later_is_kept_until_its_new_day_expires(tmp_path):
    import time as _time

    clock = _Clock(_time.time() - 60 * DAY)
    cache = ResultCache(LocalStorage(tmp_path), max_age_s=30 * DAY, now=clock)
    cache.prune()
    key = "a" * 64
    cache.put(key, _entry(key, clock.t))
    clock.t += 10 * DAY
    cache.put(key, _entry(key, clock.t))  # the same photo made again (the first had expired? no: reused)
    clock.t += 22 * DAY  # the first day has expired, the second has not
    assert cache.prune() == 0 and cache.get(key) is not None
    clock.t += 10 * DAY
    assert cache.prune() == 1 and cache.get(key) is None


def test_a_cache_written_before_the_markers_is_scanned_once(tmp_path):
    """Entries as 0.2 wrote them (no markers, no state): the first prune deletes the expired ones and
    gives the others markers; later prunes never list the whole cache and still delete them on time."""
    import os
    import time as _time

    now = _time.time()
    folder = tmp_path / layout.CACHE
    folder.mkdir()
    for i, age_days in enumerate((45, 40, 10, 5)):
        key = f"{i}" * 64
        path = folder / f"{key}.json"
        path.write_text(json.dumps(_entry(key, now - age_days * DAY).__dict__))
        os.utime(path, (now - age_days * DAY, now - age_days * DAY))
    counts: dict = {}
    clock = _Clock(now)
    cache = ResultCache(_counting_storage(tmp_path, counts), max_age_s=30 * DAY, now=clock)
    assert cache.prune() == 2
    assert sorted(p.stem[0] for p in folder.glob("*.json")) == ["2", "3"]
    counts.clear()
    clock.t = now + 21 * DAY  # the 10-day-old entry is 31 days old
    assert cache.prune() == 1 and counts["list"] <= 22  # one listing per day walked, no whole-cache scan
    clock.t = now + 27 * DAY
    assert cache.prune() == 1 and not list(folder.glob("*.json"))


def test_a_prune_interrupted_anywhere_is_finished_by_the_next_and_keeps_live_entries(tmp_path):
    import time as _time

    k = 0
    while True:
        k += 1
        calls = [0]
        armed = [False]

        def fail(kind, k=k, calls=calls, armed=armed):
            if armed[0] and kind in ("delete", "write"):
                calls[0] += 1
                if calls[0] == k:
                    raise ConnectionResetError("injected")

        root = tmp_path / str(k)
        clock = _Clock(_time.time() - 50 * DAY)
        cache = ResultCache(_counting_storage(root, {}, fail), max_age_s=30 * DAY, now=clock)
        cache.prune()
        for i in range(6):
            cache.put(f"{i}" * 64, _entry(f"{i}" * 64, clock.t + i * 3 * DAY))
        clock.t += 41 * DAY  # entries 0-3 (made 0-9 days after the start) are past 30 days, 4-5 are not
        armed[0] = True
        try:
            cache.prune()
        except ConnectionResetError:
            armed[0] = False
            cache.prune()
            live = sorted(p.stem[0] for p in (root / layout.CACHE).glob("*.json"))
            assert live == ["4", "5"], (k, live)
            continue
        assert k > 4
        break
