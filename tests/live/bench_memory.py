"""`make bench-memory`: peak RSS of a run's two kinds of task process, as a deployment runs them.

1. **the batches**: N photos from a local folder, in mapped batches of ``--batch`` (the DAGs' default
   16), each one ``remove_backgrounds`` with its own map index and manifest part, all in ONE process (a
   worker runs task after task: anything a batch leaves behind would show as growth);
2. **closing the run**: ``close_run`` (manifest from the parts, results index, zip, contact sheet) in a
   fresh process, as the archive task runs.

Each phase runs in its own interpreter and reports its peak RSS (``ru_maxrss``); run it at two sizes and
compare: what grows with N is per-photo memory (``make bench-memory``: 1,000 and 10,000). By default the
photos are copies of the sample and test portraits, so the result cache (on by default) copies most
outputs instead of matting them again (a 10k run then takes minutes, not hours; the engine's memory is
loaded either way); ``--distinct`` gives every copy its own bytes (a JPEG comment) so each is matted.
Not a test; prints one line per phase and one summary line.
"""

from __future__ import annotations

import argparse
import json
import resource
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "bench/run"


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_photos(folder: Path, n: int, distinct: bool) -> None:
    samples = [ROOT / "include" / "samples" / p for p in ("astronaut.jpg", "coffee.jpg", "rocket.jpg")]
    samples += sorted((ROOT / "tests" / "data").glob("*.jpg"))
    datas = [p.read_bytes() for p in samples]
    folder.mkdir(parents=True)
    for i in range(n):
        data = datas[i % len(datas)]
        if distinct:  # a COM segment right after SOI: the same picture, other bytes (no cache hit)
            note = f"copy {i}".encode()
            data = data[:2] + b"\xff\xfe" + struct.pack(">H", len(note) + 2) + note + data[2:]
        (folder / f"p{i:06d}.jpg").write_bytes(data)


def phase_batches(tmp: Path, n: int, batch: int) -> dict:
    sys.path.insert(0, str(ROOT / "plugins"))
    from matting.engine import Engine, OutputOptions
    from matting.pipeline.detection import ScanOptions, scan
    from matting.pipeline.jobs import MattingJob
    from matting.pipeline.runner import BatchConfig
    from matting.pipeline.runs import RunInfo, remove_backgrounds
    from matting.storage import LocalStorage

    src, dest = LocalStorage(tmp / "in"), LocalStorage(tmp / "out")
    files = scan(src, ScanOptions(settle_seconds=0, max_files=n)).new
    job = MattingJob(Engine(), OutputOptions.build("png"))
    cfg = BatchConfig(run_prefix=PREFIX)
    ok = 0
    for m, start in enumerate(range(0, len(files), batch)):
        run = RunInfo(run_prefix=PREFIX, dag_id="bench", run_id="bench", map_index=m)
        ok += remove_backgrounds(src, dest, job, files[start : start + batch], run, cfg).counts["ok"]
    return {"ok": ok, "batches": m + 1}


def phase_close(tmp: Path) -> dict:
    sys.path.insert(0, str(ROOT / "plugins"))
    from matting.pipeline.archive import close_run
    from matting.storage import LocalStorage

    start = peak_mb()
    summary = close_run(LocalStorage(tmp / "out").sub(PREFIX), LocalStorage(tmp / "in"))
    return {"ok": summary["ok"], "files": summary["files"], "before_close_mb": start}


def child(phase: str, tmp: Path, n: int, batch: int) -> dict:
    cmd = [sys.executable, __file__, "--phase", phase, "--tmp", str(tmp), "--batch", str(batch), str(n)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("n", type=int, nargs="?", default=1000)
    ap.add_argument("--batch", type=int, default=16, help="photos per mapped batch (the DAGs' default: 16)")
    ap.add_argument("--distinct", action="store_true", help="every copy its own bytes: no result-cache hits")
    ap.add_argument("--phase", choices=("batches", "close"), help=argparse.SUPPRESS)
    ap.add_argument("--tmp", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase:
        t0 = time.perf_counter()
        doc = phase_batches(args.tmp, args.n, args.batch) if args.phase == "batches" else phase_close(args.tmp)
        print(json.dumps({**doc, "peak_mb": peak_mb(), "s": time.perf_counter() - t0}))
        return
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        make_photos(tmp / "in", args.n, args.distinct)
        batches = child("batches", tmp, args.n, args.batch)
        print(
            f"{args.n} photos, {batches['batches']} batches of {args.batch} in one process: {batches['s']:.0f} s, "
            f"ok={batches['ok']}, peak RSS {batches['peak_mb']:.0f} MB",
            flush=True,
        )
        close = child("close", tmp, args.n, args.batch)
        out = tmp / "out" / PREFIX
        zip_mb = (out / "outputs.zip").stat().st_size / 1e6
        manifest_mb = (out / "manifest.json").stat().st_size / 1e6
        print(
            f"{args.n} photos, closing the run (fresh process): {close['s']:.1f} s, ok={close['ok']}/{close['files']}, "
            f"manifest {manifest_mb:.1f} MB, zip {zip_mb:.0f} MB, peak RSS {close['peak_mb']:.0f} MB "
            f"({close['peak_mb'] - close['before_close_mb']:.0f} MB above the imports)",
            flush=True,
        )
        print(
            "RESULT "
            + json.dumps(
                {
                    "n": args.n,
                    "distinct": args.distinct,
                    "batches_peak_mb": round(batches["peak_mb"]),
                    "close_peak_mb": round(close["peak_mb"]),
                    "close_growth_mb": round(close["peak_mb"] - close["before_close_mb"]),
                }
            )
        )


if __name__ == "__main__":
    main()
