"""Small helpers the test folders share (importable from any of them: tests/ is on sys.path)."""

from __future__ import annotations

import os
from pathlib import Path


def backdate(*paths: Path, seconds: float = 3600.0) -> None:
    """Files (or every file below folders) "dropped an hour ago": past the upload grace period, so a
    broken one is quarantined rather than given time to finish uploading (AIRFLOW__MATTING__UPLOAD_GRACE_S)."""
    import time

    when = time.time() - seconds
    for path in paths:
        for p in [path] if path.is_file() else [q for q in path.rglob("*") if q.is_file()]:
            os.utime(p, (when, when))


def write_batch_parts(run, n: int, *, prefix: str, dag_id: str = "", run_id: str = "", per_part: int = 500) -> None:
    """The ``parts/`` a mapped background-removal run of ``n`` photos leaves in its folder (every
    tenth failed, as the batches record them), for ``archive.close_run`` and the results pages."""
    import json

    for start in range(0, n, per_part):
        files = []
        for i in range(start, min(n, start + per_part)):
            ok = i % 10 != 3
            name = f"in/{i:06d}.jpg"
            record = {
                "source": name,
                "source_size": 1000,
                "source_version": "v1",
                "status": "ok" if ok else "failed",
                "outputs": [f"{prefix}/outputs/{i:06d}.png"] if ok else [],
                "moved_to": f"{'processed' if ok else 'quarantine'}/{name}",
                "timings_ms": {"decode": 1.0, "infer": 20.0},
                "width": 640,
                "height": 480,
                "model": "u2netp",
                "reused_from": f"{prefix}/outputs/{i - 1:06d}.png" if ok and i % 7 == 0 and i else None,
            }
            if not ok:
                record.update(error_type="truncated_image", error="image file is truncated")
            files.append(record)
        part = {"dag_id": dag_id, "run_id": run_id, "run_prefix": prefix, "started_at": "2026-12-02T08:00:00Z"}
        part["job"] = {"kind": "matting", "model": "u2netp"}
        run.write(f"parts/part-{start // per_part:04d}.json", json.dumps({**part, "files": files}).encode())
