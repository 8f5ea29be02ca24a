"""`make bench-scale` (second part): what one results page costs as the run grows (issue #36), on a
local folder.

For each size N (photos in one run, archived by the real ``close_run``, every tenth failed) it prints the
seconds and storage requests (reads, stats, listings) of:

- **page**: one page of the run (24 cards of the "failed / refused" filter, page 3), its counts, the
  filters' counts and the quarantine's first 200 rows;
- **image lookup**: what a thumbnail's request does before it reads the image: find the photo by its
  position and content key;
- **in progress**: one page of a run whose archive step has not run (its ``parts/`` only), asked again
  with no part changed (the first request merges, as before);

each **before** (the whole manifest parsed, ``items_from_manifest``; in progress: the parts merged on every
request) and **after** (the paged index; in progress: the merge cached per listing of ``parts/``), with
the ratio to the first size. The median of 3 runs. Then the same archived runs served from SFTP (a real
sshd on loopback) and S3 (moto's server, the run's files put in its bucket through its backend): a page
and an image lookup through the index, with the storage calls they make (each one request). Not a test
(timings do not belong in tests).

    python tests/live/bench_pages.py [--sizes 1000,10000,100000] [--no-remote]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT / "tests"), str(ROOT / "tests" / "live")]
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")

from helpers import write_batch_parts  # noqa: E402
from matting.pipeline.archive import close_run, merge_parts  # noqa: E402
from matting.results import run as results  # noqa: E402
from matting.storage import LocalStorage  # noqa: E402

PREFIX = "2026/12/02/bench"
SHOW, PAGE, PER_PAGE = "failed", 3, 24


class Counting(LocalStorage):
    requests = 0

    def sub(self, rel_dir):
        return Counting(super().sub(rel_dir).root)

    def _read(self, rel):
        Counting.requests += 1
        return super()._read(rel)

    def stat(self, rel):
        Counting.requests += 1
        return super().stat(rel)

    def list(self, recursive=True, skip_dirs=()):
        Counting.requests += 1
        return super().list(recursive, skip_dirs)


def measure(fn, repeat: int = 3) -> tuple[float, int]:
    times, requests = [], 0
    for _ in range(repeat):
        Counting.requests = 0
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
        requests = Counting.requests
    return statistics.median(times), requests


def full_parse(run) -> list:
    return results.items_from_manifest(json.loads(run.read("manifest.json")), PREFIX)


def page_before(run) -> None:
    """The page as 0.x served it: the whole manifest parsed, filtered and counted per request."""
    items = full_parse(run)
    wanted = results.VIEWS[SHOW]
    results.page_of([i for i in items if i.status in wanted], PAGE, PER_PAGE)
    {k: sum(1 for i in items if v is None or i.status in v) for k, v in results.VIEWS.items()}
    results.counts(items)
    [i for i in items if i.status in ("failed", "refused")][:200]
    run.exists("outputs.zip")


def page_after(root) -> None:
    res = results.RunResults(results.Where(str(root), PREFIX), Counting(root / PREFIX), None)
    res.page(SHOW, PAGE, PER_PAGE), res.view_counts(), res.counts(), res.view("failed", 0, 200), res.zip_path()


def lookup_before(run, position: int, key: str) -> None:
    items = full_parse(run)
    next(i for i in items if i.key == key)
    items[position]


def lookup_after(root, position: int, key: str) -> None:
    res = results.RunResults(results.Where(str(root), PREFIX), Counting(root / PREFIX), None)
    res.item(position, key=key)


def in_progress_before(run) -> None:
    manifest = merge_parts(run, run.list())  # 0.x listed the whole run folder and merged every time
    items = results.items_from_manifest(manifest, PREFIX)
    results.page_of([i for i in items if i.status in results.VIEWS[SHOW]], PAGE, PER_PAGE)


def in_progress_after(root) -> None:
    res = results.RunResults(results.Where(str(root), PREFIX), Counting(root / PREFIX), None)
    res.page(SHOW, PAGE, PER_PAGE), res.view_counts(), res.counts()


@contextlib.contextmanager
def _remote_servers(tmp: Path):
    """sshd and moto on loopback; yields ``put(root) -> {"SFTP": storage, "S3": storage}``: the run under
    ``root`` on each (its parts copied, then archived through that backend)."""
    from bench_scale import seed
    from matting.storage import S3Storage, SftpStorage
    from servers import run_moto, run_sshd

    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(k, "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with run_sshd(tmp / "sshd") as sshd, run_moto() as moto:
        os.environ["AIRFLOW_CONN_SFTP_PAGES"] = sshd.conn_uri
        os.environ["AIRFLOW_CONN_AWS_PAGES"] = moto.conn_uri
        client = moto.client()

        def put(root: Path) -> dict:
            """The run's batch parts on each server, closed there by ``close_run`` (an index records its
            manifest's version as the backend that wrote it reports it, as in a deployment)."""
            bucket = f"pages-{root.name}"
            client.create_bucket(Bucket=bucket)
            seed(bucket, root / PREFIX / "parts", f"dest/{PREFIX}/parts")
            remote = tmp / f"sftp-{root.name}"
            shutil.copytree(root / PREFIX / "parts", remote / PREFIX / "parts")
            stores = {"SFTP": SftpStorage(str(remote), "sftp_pages"), "S3": S3Storage(bucket, "dest", "aws_pages")}
            for kind, storage in stores.items():
                start = time.perf_counter()
                close_run(storage.sub(PREFIX), None, make_zip=False, make_sheet=False)
                print(f"  {kind}: archived in {time.perf_counter() - start:.1f} s", flush=True)
            return stores

        yield put


def measure_on(storage, fn, repeat: int = 3) -> tuple[float, int]:
    """Median seconds and the storage calls of ``fn(storage)`` (connection made beforehand)."""
    from bench_scale import storage_calls

    storage.exists("_warm-up")
    times, calls = [], 0
    for _ in range(repeat):
        with storage_calls(type(storage)) as counted:
            start = time.perf_counter()
            fn(storage)
            times.append(time.perf_counter() - start)
        calls = counted[0]
    return statistics.median(times), calls


def page_on(storage) -> None:
    res = results.RunResults(results.Where("remote", PREFIX), storage.sub(PREFIX), None)
    res.page(SHOW, PAGE, PER_PAGE), res.view_counts(), res.counts(), res.view("failed", 0, 200), res.zip_path()


def s_lookup(storage, position: int, key: str) -> None:
    results.RunResults(results.Where("remote", PREFIX), storage.sub(PREFIX), None).item(position, key=key)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--no-remote", action="store_true", help="local folder only")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-pages-"))
        remote = None if args.no_remote else stack.enter_context(_remote_servers(Path(tmp)))
        for n in sizes:
            root = Path(tmp) / f"n{n}"
            run = Counting(root / PREFIX)
            write_batch_parts(run, n, prefix=PREFIX)
            progress_root = Path(tmp) / f"p{n}"
            write_batch_parts(Counting(progress_root / PREFIX), n, prefix=PREFIX)
            start = time.perf_counter()
            close_run(LocalStorage(root / PREFIX), None, make_zip=False, make_sheet=False)
            archive_s = time.perf_counter() - start
            items = full_parse(run)
            position, key = n // 2, items[n // 2 + 1].key  # a page from before a re-sort: a moved photo
            results._merged.clear()
            in_progress_after(progress_root)  # the first request of the process merges
            row = {
                "n": n,
                "archive": archive_s,
                "page before": measure(lambda run=run: page_before(run)),
                "page after": measure(lambda root=root: page_after(root)),
                "lookup before": measure(lambda run=run, p=position, k=key: lookup_before(run, p, k)),
                "lookup after": measure(lambda root=root, p=position, k=key: lookup_after(root, p, k)),
                "in progress before": measure(lambda r=Counting(progress_root / PREFIX): in_progress_before(r)),
                "in progress after": measure(lambda root=progress_root: in_progress_after(root)),
            }
            if remote is not None:
                for kind, storage in remote(root).items():
                    row[f"page, {kind}"] = measure_on(storage, lambda s: page_on(s))
                    row[f"lookup, {kind}"] = measure_on(storage, lambda s, p=position, k=key: s_lookup(s, p, k))
                    storage.close()
            rows.append(row)
            print(f"N={n}: archived in {archive_s:.1f} s", flush=True)
    first = rows[0]
    cols = [k for k in rows[0] if k not in ("n", "archive")]
    print("\n| photos | " + " | ".join(cols) + " |")
    print("|---:|" + "---:|" * len(cols))
    for row in rows:
        cells = []
        for col in cols:
            seconds, requests = row[col]
            ratio = seconds / first[col][0] if first[col][0] else 0.0
            cells.append(f"{seconds * 1000:.1f} ms, {requests} req (x{ratio:.1f})")
        print(f"| {row['n']:,} | " + " | ".join(cells) + " |")
    print(
        "\narchive step (close_run, no zip, no sheet; manifest + index): "
        + ", ".join(f"{r['n']:,}: {r['archive']:.1f} s" for r in rows)
    )


if __name__ == "__main__":
    main()
