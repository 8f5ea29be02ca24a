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
