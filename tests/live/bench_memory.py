"""`make bench-memory`: peak RSS of a whole run (batch runner, records, moves, manifest, archive with
zip and contact sheet) for N photos: memory must not grow with the run's size (run it at 200 and
2,000). Not a test; prints one line."""

from __future__ import annotations

import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(n: int) -> None:
    sys.path.insert(0, str(ROOT / "plugins"))
    from matting.engine import Engine, OutputOptions
    from matting.pipeline.archive import close_run
    from matting.pipeline.detection import ScanOptions, scan
    from matting.pipeline.jobs import MattingJob
    from matting.pipeline.manifest import RunManifest, utc_now
    from matting.pipeline.runner import BatchConfig, BatchRunner, write_manifest
    from matting.storage import LocalStorage

    samples = ROOT / "include" / "samples"
    photos = [samples / p for p in ("astronaut.jpg", "coffee.jpg", "rocket.jpg")]
    photos += sorted((ROOT / "tests" / "data").glob("*.jpg"))
    with tempfile.TemporaryDirectory() as tmp:
        incoming = Path(tmp) / "in"
        incoming.mkdir()
        for i in range(n):
            shutil.copyfile(photos[i % len(photos)], incoming / f"p{i:05d}.jpg")
        job = MattingJob(Engine(), OutputOptions.build("png"))
        src, dest = LocalStorage(incoming), LocalStorage(Path(tmp) / "out")
        cfg = BatchConfig(run_prefix="run")
        t0 = time.perf_counter()
        records = BatchRunner(src, dest, job, cfg).run(scan(src, ScanOptions(settle_seconds=0, max_files=n)).new)
        after_batch = peak_mb()
        manifest = RunManifest("bench", "bench", {}, job.describe(), utc_now(), run_prefix="run", files=records)
        write_manifest(dest, cfg, manifest, name="parts/part-0000")
        summary = close_run(dest.sub("run"), src)
        zip_mb = (Path(tmp) / "out" / "run" / "outputs.zip").stat().st_size / 1e6
        print(
            f"{n} photos: {time.perf_counter() - t0:.0f} s, ok={summary['ok']}, zip {zip_mb:.0f} MB, "
            f"peak RSS after the batch {after_batch:.0f} MB, after the archive {peak_mb():.0f} MB"
        )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
