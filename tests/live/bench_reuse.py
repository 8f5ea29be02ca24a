"""`make bench-pipeline`: a run of 200 photos of which half repeat (the same bytes under other names,
in other folders, as shops re-upload a product shot) through the batch runner, with the result cache
on and off, in one run on the same photos: wall time, inferences, reuses, and the ratio.

The 100 distinct photos are the samples and test portraits, each cropped and re-encoded a little
differently (so their bytes differ); the other 100 are byte-for-byte copies of them. Rounds
alternate cache on / off, each on a fresh destination (the cache starts empty: the first copy of
each photo is made, the second reused). Prints every round and the medians; not a test (timings do
not belong in tests)."""

from __future__ import annotations

import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT / "tests")]


def _photos(n: int) -> list[bytes]:
    from PIL import Image

    bases = [ROOT / "include" / "samples" / f for f in ("astronaut.jpg", "coffee.jpg", "rocket.jpg")]
    bases += sorted((ROOT / "tests" / "data").glob("*.jpg"))
    out = []
    for i in range(n):
        img = Image.open(bases[i % len(bases)]).convert("RGB")
        w, h = img.size
        d = 1 + i // len(bases)  # a different crop per copy of a base: other bytes, same kind of photo
        img = img.crop((d, d, w - d, h - d)).resize((512, int(512 * h / w)))
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=88 + i % 7)
        out.append(buf.getvalue())
    return out


def main(rounds: int = 3, distinct: int = 100) -> None:
    os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
    from helpers import backdate
    from matting.engine import Engine, OutputOptions
    from matting.pipeline.detection import ScanOptions, scan
    from matting.pipeline.jobs import MattingJob
    from matting.pipeline.runner import BatchConfig, BatchRunner
    from matting.storage import LocalStorage

    photos = _photos(distinct)
    job = MattingJob(Engine(), OutputOptions.build("png"))
    calls = []
    real = job.engine.matte_many

    def matte_many(images, timings):
        calls.extend(1 for _ in images)
        return real(images, timings)

    job.engine.matte_many = matte_many
    job.engine.predict_mask(__import__("numpy").zeros((64, 64, 3), "uint8"))  # warm the session
    times: dict[bool, list[float]] = {True: [], False: []}
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in"
        for i, data in enumerate(photos):
            for folder in ("shop-a", "shop-b"):  # every photo twice, under another name and folder
                (src / folder).mkdir(parents=True, exist_ok=True)
                (src / folder / f"{folder}-{i:03d}.jpg").write_bytes(data)
        backdate(src)
        files = scan(LocalStorage(src), ScanOptions(settle_seconds=0, max_files=10 * distinct)).new
        print(f"{len(files)} photos, {distinct} distinct; model {job.engine.spec.name}, PNG")
        for r in range(rounds):
            for reuse in (True, False) if r % 2 == 0 else (False, True):
                dest = LocalStorage(Path(tmp) / f"out-{r}-{reuse}")
                cfg = BatchConfig(run_prefix="run", move_originals=False, reuse=reuse)
                calls.clear()
                t0 = time.perf_counter()
                runner = BatchRunner(LocalStorage(src), dest, job, cfg)
                records = runner.run(files)
                took = time.perf_counter() - t0
                times[reuse].append(took)
                ok = sum(1 for rec in records if rec.status == "ok")
                print(
                    f"round {r + 1} cache {'on ' if reuse else 'off'}: {took:6.1f} s, {len(calls)} inferences, "
                    f"{runner.reused} reused, {ok}/{len(records)} ok"
                )
    on, off = statistics.median(times[True]), statistics.median(times[False])
    ratios = [b / a for a, b in zip(times[True], times[False], strict=True)]
    print(
        f"median: cache on {on:.1f} s, off {off:.1f} s: {off / on:.2f}x faster with the cache "
        f"(rounds {min(ratios):.2f}-{max(ratios):.2f}x)"
    )


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
