"""`make bench-scale`: what one new-file check costs as the history grows (issue #36), on a local folder,
SFTP through a real sshd and S3 through moto's server, in one run.

For each size N (settled photos in the destination's ledger) it prints, per backend:

Connection set-up (SSH handshake, S3 client) is done before the clock starts: it is the same at every
size (about 0.17 s for SFTP here).

- **check (ledger)**: one check of a source that moves its files (nothing waiting in it) against a
  ledger of N versions, as the pipeline leaves it (markers folded into segments by the real code):
  seconds and storage requests, first in a fresh process (every segment read) and then warm (the
  trigger's loop and a poke-mode sensor: segments cached);
- **before**: the same check as 0.2 did it, one marker per version, every marker listed each time;
- **kept source listing**: listing a source that keeps its N files (read-only), which a ledger cannot
  avoid: the number that says when to switch to the event-driven DAG (docs/storage.md);
- **cache prune**: the archive step's prune of a result cache holding N live entries, 100 of which
  expired since the last prune, against 0.2's prune (every entry listed, the old-looking ones read and
  deleted; on S3 the objects carry the upload's time, so there 0.2's figure is the listing alone).

Ratios are to the first size. Not a test (timings do not belong in tests).

    python tests/live/bench_scale.py [--sizes 1000,10000,100000] [--s3-sizes 1000,10000]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT / "tests")]
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
for _k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
    os.environ.setdefault(_k, "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

REPEATS = 5


def _info(n: int):
    from matting.storage import FileInfo

    return FileInfo(f"kiosk-{n % 50}/{n}.jpg", 50_000 + n, 1.7e9, f"etag-{n}")


def build_ledger(folder: Path, n: int) -> None:
    """The ``_ledger/`` the pipeline leaves after ``n`` photos settled in runs of 100 (real code,
    built on a local folder; copied to the backend under test). Merged-away segments are retired at
    once, as they are after 15 minutes in production."""
    from matting.storage import LocalStorage
    from matting.storage import ledger as ledger_mod

    ledger_mod.RETIRE_AFTER_S, saved = 0.0, ledger_mod.RETIRE_AFTER_S
    fsync, os.fsync = os.fsync, lambda fd: None  # set-up only: not what is measured
    try:
        ledger = ledger_mod.Ledger(LocalStorage(folder))
        for k in range(n):
            ledger.mark(_info(k))
            if k % 100 == 99:
                ledger.fold()
    finally:
        ledger_mod.RETIRE_AFTER_S = saved
        os.fsync = fsync


def old_markers(folder: Path, n: int) -> None:
    """0.2's ledger: one ``_ledger/<id>.json`` per version, never removed."""
    (folder / "_ledger").mkdir(parents=True, exist_ok=True)
    for k in range(n):
        (folder / "_ledger" / f"{_info(k).version_id}.json").write_bytes(b'{"status": "ok"}')


def result_cache(folder: Path, n: int, now: float) -> None:
    """A result cache as ``ResultCache.put`` leaves it: 100 entries made 31 days ago (expired since
    yesterday's prune) and ``n`` made over the last 29 days, each with its expiry marker."""
    import json

    from matting import layout
    from matting.pipeline.reuse import EXPIRY, STATE, Entry, _day

    root = folder / layout.CACHE
    old_day = now - 31 * 86400
    (root / EXPIRY).mkdir(parents=True, exist_ok=True)
    (root / STATE).write_text(json.dumps({"pruned_through": _day(old_day - 86400)}))
    for k in range(n + 100):
        created = old_day + k if k < 100 else now - 86400 - (k % 29) * 86400
        key = f"{k:064x}"
        entry = Entry(f"r/outputs/{k}.png", "0" * 64, 1, "r", f"{k}.jpg", created)
        (root / f"{key}.json").write_text(json.dumps(entry.__dict__))
        os.utime(root / f"{key}.json", (created, created))
        (root / EXPIRY / _day(created)).mkdir(exist_ok=True)
        (root / EXPIRY / _day(created) / key).write_bytes(b"")


@contextlib.contextmanager
def storage_calls(cls):
    """Count every list/read/write/delete/stat on storages of ``cls`` (sub-folders included)."""
    counted = [0]
    saved = {name: getattr(cls, name) for name in ("list", "read", "write", "delete", "stat")}

    def counting(real):
        def call(self, *args, **kwargs):
            counted[0] += 1
            return real(self, *args, **kwargs)

        return call

    for name, real in saved.items():
        setattr(cls, name, counting(real))
    try:
        yield counted
    finally:
        for name, real in saved.items():
            setattr(cls, name, real)


def timed_prune(make_storage, now: float, old: bool = False) -> tuple[float, int, int]:
    """One prune of the cache (0.2's when ``old``: every entry listed, those near their age read;
    nothing deleted, so both can be measured on the same cache): (seconds, storage calls, expired)."""
    import json

    from matting.pipeline.reuse import ResultCache

    storage = make_storage()
    try:
        cache = ResultCache(storage, 30 * 86400, now=lambda: now)
        cache.folder.exists("_warm-up")
        with storage_calls(type(storage)) as counted:
            t0 = time.perf_counter()
            if old:
                removed = 0
                for f in cache.folder.list():
                    if not f.path.endswith(".json") or (f.mtime and now - f.mtime < 30 * 86400 - 3600):
                        continue
                    if now - json.loads(cache.folder.read(f.path))["created"] > 30 * 86400:
                        removed += 1
                        cache.folder.delete(f.path + ".absent")  # a delete's cost, leaving the entry for the new prune
            else:
                removed = cache.prune()
            elapsed = time.perf_counter() - t0
        return elapsed, counted[0], removed
    finally:
        storage.close()


def kept_source(folder: Path, n: int) -> None:
    for k in range(n):
        p = folder / _info(k).path
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"\xff\xd8")


def seed(bucket: str, local: Path, prefix: str) -> None:
    """Put ``local``'s files under ``prefix`` in moto's bucket through its backend (the server runs in
    this process: ~0.07 ms an object, against ~9 ms through HTTP, so 100k of history is built in
    seconds). Set-up only: every request measured goes through the server over HTTP."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    for p in local.rglob("*"):
        if p.is_file():
            backend.put_object(bucket, f"{prefix}/{p.relative_to(local).as_posix()}", p.read_bytes())


class Requests:
    """Storage requests: HTTP requests for S3 (botocore's before-send), operations elsewhere."""

    def __init__(self) -> None:
        self.n = 0

    def hook(self, **_) -> None:
        self.n += 1


def timed_check(make_storage, requests: Requests, fresh: bool, old: bool = False) -> tuple[float, int]:
    from matting.storage import ledger as ledger_mod

    storage = make_storage()
    try:
        ledger = ledger_mod.Ledger(storage)
        for s in (ledger.root, ledger.index):  # connect first: set-up is not the check's cost
            s.exists("_warm-up")
            if storage.kind == "s3":  # the folders share one client: one registration (unique_id)
                s.client.meta.events.register("before-send.s3", requests.hook, unique_id="bench-requests")
        if fresh:
            ledger_mod._segments.clear()
        before = requests.n
        t0 = time.perf_counter()
        if old:
            ids = {f.path[:-5] for f in ledger.root.list() if f.path.endswith(".json")}
            ops = 1
        else:
            r0 = ledger.requests
            ids = ledger.ids()
            ops = ledger.requests - r0
        elapsed = time.perf_counter() - t0
        assert ids, "the ledger was not read"
        return elapsed, (requests.n - before) if storage.kind == "s3" else ops
    finally:
        storage.close()


def timed_listing(make_storage, requests: Requests) -> tuple[float, int]:
    storage = make_storage()
    try:
        storage.exists("_warm-up")
        if storage.kind == "s3":
            storage.client.meta.events.register("before-send.s3", requests.hook, unique_id="bench-requests")
        before = requests.n
        t0 = time.perf_counter()
        listed = storage.list()
        elapsed = time.perf_counter() - t0
        assert listed
        return elapsed, (requests.n - before) if storage.kind == "s3" else 1
    finally:
        storage.close()


def _ms(seconds: float | None) -> str:
    return "not measured" if seconds is None else f"{seconds * 1000:9.1f} ms"


def _cell(seconds: float | None, calls: int | None, base: float | None, unit: str) -> str:
    """A table cell: time, calls and the ratio to the first size; "not measured" where skipped."""
    if seconds is None:
        return "not measured (moto's listing)"
    return f"{seconds * 1000:.0f} ms, {calls} {unit} (x{seconds / base:.1f})"


def median(xs):
    return statistics.median(xs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--s3-sizes", default="1000,10000,100000")
    ap.add_argument(
        "--s3-listing-sizes",
        default="1000,10000",
        help="S3 sizes at which the columns that list everything (0.2's check and prune, a kept source) are "
        "measured: moto's listing costs ~0.4 ms a key and more per page as the bucket grows (7.9 s for 20k keys), "
        "its own cost, not S3's",
    )
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    s3_sizes = {int(s) for s in args.s3_sizes.split(",") if s}
    s3_listing = {int(s) for s in args.s3_listing_sizes.split(",") if s}

    import logging

    from matting.storage import LocalStorage, S3Storage, SftpStorage
    from servers import run_moto, run_sshd

    logging.getLogger("airflow").setLevel(logging.WARNING)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    rows: list[tuple] = []
    with tempfile.TemporaryDirectory() as tmp, run_sshd(Path(tmp) / "sshd") as sshd, run_moto() as moto:
        os.environ["AIRFLOW_CONN_SFTP_BENCH"] = sshd.conn_uri
        os.environ["AIRFLOW_CONN_AWS_BENCH"] = moto.conn_uri
        client = moto.client()
        for n in sizes:
            tag = uuid.uuid4().hex[:6]
            new, old, src = (Path(tmp) / f"{kind}-{n}-{tag}" for kind in ("new", "old", "src"))
            t0 = time.time()
            build_ledger(new, n)
            old_markers(old, n)
            kept_source(src, n)
            now = time.time()
            caches = {kind: Path(tmp) / f"cache-{kind}-{n}-{tag}" for kind in ("local", "sftp", "s3")}
            for kind, folder in caches.items():
                if kind != "s3" or n in s3_sizes:
                    result_cache(folder, n, now)
            print(f"# {n:,} settled photos: history built in {time.time() - t0:.0f} s", flush=True)
            backends = {
                "local": lambda p: lambda: LocalStorage(p),
                # the sshd's root is this machine's folder: the history is written there directly
                "sftp": lambda p: lambda: SftpStorage(str(p), "sftp_bench"),
            }
            if n in s3_sizes:
                bucket = f"scale-{tag}"
                client.create_bucket(Bucket=bucket)
                t0 = time.time()
                for folder in (new, caches["s3"], *((old, src) if n in s3_listing else ())):
                    seed(bucket, folder, folder.name)
                print(f"#   put in moto's bucket in {time.time() - t0:.0f} s", flush=True)
                backends["s3"] = lambda p, b=bucket: lambda: S3Storage(b, p.name, "aws_bench")
            for kind, at in backends.items():
                requests = Requests()
                everything = kind != "s3" or n in s3_listing  # the columns that list all of history
                cold = [timed_check(at(new), requests, fresh=True) for _ in range(REPEATS)]
                warm = [timed_check(at(new), requests, fresh=False) for _ in range(REPEATS)]
                before = [timed_check(at(old), requests, fresh=True, old=True) for _ in range(3)] if everything else []
                listing = [timed_listing(at(src), requests) for _ in range(3)] if everything else []
                prune_before = timed_prune(at(caches[kind]), now, old=True) if everything else None
                prune = timed_prune(at(caches[kind]), now)
                # S3 stamps the upload time, so there 0.2 read none: its figure is the listing alone
                assert prune[2] == 100, prune
                assert prune_before is None or prune_before[2] == (0 if kind == "s3" else 100), prune_before
                rows.append(
                    (
                        kind,
                        n,
                        median([t for t, _ in cold]),
                        cold[0][1],
                        median([t for t, _ in warm]),
                        warm[0][1],
                        median([t for t, _ in before]) if before else None,
                        before[0][1] if before else None,
                        median([t for t, _ in listing]) if listing else None,
                        listing[0][1] if listing else None,
                        prune[0],
                        prune[1],
                        prune_before[0] if prune_before else None,
                        prune_before[1] if prune_before else None,
                    )
                )
                r = rows[-1]
                print(
                    f"{kind:5} {n:>7,}  check fresh {r[2] * 1000:8.1f} ms {r[3]:>4} req | warm {r[4] * 1000:7.1f} ms "
                    f"{r[5]:>3} req | before (0.2) {_ms(r[6])} {r[7]} req | kept-source listing "
                    f"{_ms(r[8])} {r[9]} req | prune {r[10] * 1000:.0f} ms {r[11]} calls, "
                    f"before {_ms(r[12])} {r[13]} calls",
                    flush=True,
                )
    print()
    print(
        "| backend | settled photos | check, fresh process | check, warm (trigger, poke) "
        "| before: every marker listed | listing a source that keeps its files "
        "| cache prune, 100 expired | before: every entry listed |"
    )
    print("|---|---|---|---|---|---|---|---|")
    first = {}
    for r in rows:
        base = first.setdefault(r[0], r)
        print(
            f"| {r[0]} | {r[1]:,} | {r[2] * 1000:.1f} ms, {r[3]} req (x{r[2] / base[2]:.1f}) | "
            f"{r[4] * 1000:.1f} ms, {r[5]} req (x{r[4] / base[4]:.1f}) | {_cell(r[6], r[7], base[6], 'req')} | "
            f"{_cell(r[8], r[9], base[8], 'req')} | {r[10] * 1000:.0f} ms, {r[11]} calls (x{r[10] / base[10]:.1f}) | "
            f"{_cell(r[12], r[13], base[12], 'calls')} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
