"""`make bench-storage`: the same photos through the batch runner from a local folder and from a real
SFTP server on loopback (OpenSSH sshd), in one run, so the ratio shows what SFTP costs, including the
serialised requests (one connection per Storage, never used by two threads at once).

Prints images/s per round and the medians; not a test (timings do not belong in tests)."""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT / "tests")]


def main(rounds: int = 3, copies: int = 3) -> None:
    import os

    os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
    from matting.engine import Engine, OutputOptions
    from matting.pipeline.detection import ScanOptions, scan
    from matting.pipeline.jobs import MattingJob
    from matting.pipeline.runner import BatchConfig, BatchRunner
    from matting.storage import LocalStorage, SftpStorage
    from servers import run_sshd

    photos = [ROOT / "include" / "samples" / n for n in ("astronaut.jpg", "coffee.jpg", "rocket.jpg")]
    photos += sorted((ROOT / "tests" / "data").glob("*.jpg"))
    job = MattingJob(Engine(), OutputOptions.build("png"))
    job.engine.predict_mask(__import__("numpy").zeros((64, 64, 3), "uint8"))  # warm the session

    def open_at(path: Path, sftp: bool):
        return SftpStorage(str(path), "sftp_bench") if sftp else LocalStorage(path)

    with tempfile.TemporaryDirectory() as tmp, run_sshd(Path(tmp) / "sshd") as sshd:
        os.environ["AIRFLOW_CONN_SFTP_BENCH"] = sshd.conn_uri
        times: dict[str, list[float]] = {"local -> local": [], "sftp -> local": [], "sftp -> sftp": []}
        n = len(photos) * copies
        for r in range(rounds):
            for kind in times:
                base = (sshd.root if kind.startswith("sftp") else Path(tmp)) / f"{kind[:4]}-{r}-{uuid.uuid4().hex[:4]}"
                for c in range(copies):
                    for p in photos:
                        (base / "in" / f"c{c}").mkdir(parents=True, exist_ok=True)
                        (base / "in" / f"c{c}" / p.name).write_bytes(p.read_bytes())
                src = open_at(base / "in", kind.startswith("sftp"))
                dest = open_at(base / "out", kind.endswith("sftp"))
                files = scan(src, ScanOptions(settle_seconds=0)).new
                t0 = time.perf_counter()
                records = BatchRunner(src, dest, job, BatchConfig(run_prefix="run")).run(files)
                times[kind].append(time.perf_counter() - t0)
                assert len(records) == n and all(rec.status == "ok" for rec in records)
                src.close()
                dest.close()
                print(f"round {r + 1}: {kind:15} {n / times[kind][-1]:.2f} img/s", flush=True)
        base = statistics.median(times["local -> local"])
        print(f"\n{n} photos (512-1024 px, u2netp, PNG), {rounds} rounds, medians:")
        for kind, values in times.items():
            med = statistics.median(values)
            print(
                f"  {kind:15} {n / med:.2f} img/s (range {n / max(values):.2f}-{n / min(values):.2f}), "
                f"{med / base:.3f}x the local time"
            )


if __name__ == "__main__":
    main()
