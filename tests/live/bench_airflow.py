"""What Airflow adds around the engine: runs ``matting_scheduled`` on a real local Airflow (the live
tests' harness: api-server, scheduler with the LocalExecutor, dag-processor, triggerer) over N copies
of the sample photos, and prints per task its duration, its queue wait and the engine's own time
from the task's summary line, then images/s for the matting phase.

    make bench-airflow                       # 24 photos, batch size 24 and 4
    .venv/bin/python tests/live/bench_airflow.py --images 48 --batch-size 8 --parallelism 2

Not a test: timings on a shared machine move by 20 %; read the ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "plugins")]

from live_airflow import LiveAirflow  # noqa: E402

SAMPLES = ("astronaut.jpg", "coffee.jpg", "rocket.jpg")
DAG_ID = "matting_scheduled"


def _t(value: str) -> datetime:
    return datetime.fromisoformat(value)


def run_once(images: int, batch_size: int, parallelism: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-airflow-") as tmp:
        data = Path(tmp) / "data"
        incoming = data / "incoming"
        incoming.mkdir(parents=True)
        for i in range(images):
            name = SAMPLES[i % len(SAMPLES)]
            (incoming / f"{i:04d}-{name}").write_bytes((ROOT / "include" / "samples" / name).read_bytes())
        live = LiveAirflow(
            home=Path(tmp) / "home",
            extra_env={
                "AIRFLOW__CORE__PARALLELISM": str(parallelism),
                "AIRFLOW__MATTING__DATA_DIR": str(data),
                "AIRFLOW__MATTING__RETRIES": "0",
                "AIRFLOW__MATTING__DEADLINES": "off",
                "AIRFLOW__MATTING__PROVIDERS": "cpu",
            },
        )
        with live:
            live.set_variable("matting_batch_size", str(batch_size))
            run_id = live.unpause_and_get_scheduled_run(DAG_ID)
            live.wait_for_run(DAG_ID, run_id, timeout=1800)
            tis = live.api("GET", f"dags/{DAG_ID}/dagRuns/{run_id}/taskInstances")["task_instances"]
            rows = []
            for ti in sorted(tis, key=lambda t: (t["start_date"], t["map_index"])):
                log = live.api(
                    "GET",
                    f"dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{ti['task_id']}/logs/1",
                    params={"map_index": ti["map_index"]},
                )
                found = re.search(r"summary: (\d+) images in [^(]+\(([0-9.]+) img/s\)", json.dumps(log))
                rows.append(
                    {
                        "task": ti["task_id"] + (f"[{ti['map_index']}]" if ti["map_index"] >= 0 else ""),
                        "duration_s": ti["duration"],
                        "queued_s": (_t(ti["start_date"]) - _t(ti["queued_when"])).total_seconds(),
                        "engine_images": int(found[1]) if found else None,
                        "engine_s": int(found[1]) / float(found[2]) if found and float(found[2]) else None,
                        "start": _t(ti["start_date"]),
                        "end": _t(ti["end_date"]),
                    }
                )
    matting = [r for r in rows if r["task"].startswith("remove_background")]
    span = (max(r["end"] for r in matting) - min(r["start"] for r in matting)).total_seconds()
    return {"rows": rows, "matting_span_s": span, "images": images, "batch_size": batch_size}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=24)
    ap.add_argument("--batch-size", type=int, nargs="+", default=[24, 4])
    ap.add_argument("--parallelism", type=int, default=4, help="LocalExecutor task slots")
    args = ap.parse_args(argv)
    for batch_size in args.batch_size:
        result = run_once(args.images, batch_size, args.parallelism)
        print(f"\n{args.images} photos, batch size {batch_size}, {args.parallelism} task slots")
        print(f"{'task':24} {'duration s':>10} {'queued s':>9} {'engine s':>9} {'overhead s':>10}")
        for r in result["rows"]:
            engine = r["engine_s"]
            overhead = f"{r['duration_s'] - engine:10.2f}" if engine is not None else f"{'':10}"
            engine_txt = f"{engine:9.2f}" if engine is not None else f"{'':9}"
            print(f"{r['task']:24} {r['duration_s']:10.2f} {r['queued_s']:9.2f} {engine_txt} {overhead}")
        rate = args.images / result["matting_span_s"]
        print(f"matting phase: {result['matting_span_s']:.1f} s for {args.images} photos = {rate:.2f} img/s")
    print("\n(engine s: images / rate from each task's summary line; overhead: process start, DAG parse,")
    print(" model load, listing and writing the batch's part manifest)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
