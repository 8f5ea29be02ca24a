"""Batch logging, the UI of a pipeline: one line per image, a progress line with rate and ETA at most
every few seconds, and a summary line. Used by the CLI and the Airflow operators alike.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field

from matting.engine.core import ImageResult


def human_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


def human_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


@dataclass
class BatchProgress:
    """Feed it every ImageResult; it logs and keeps the counts for the summary."""

    total: int | None
    log: logging.Logger
    every_s: float = 5.0
    ok: int = 0
    failed: int = 0
    errors: Counter = field(default_factory=Counter)
    failures: list[tuple[str, str]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    _last: float = field(default_factory=time.monotonic)

    @property
    def done(self) -> int:
        return self.ok + self.failed

    def add(self, r: ImageResult) -> None:
        if r.ok:
            self.ok += 1
            stages = " ".join(f"{k}={v:.0f}ms" for k, v in r.timings_ms.items() if k != "read")
            self.log.info(
                "ok     %s %sx%s %s%s total=%.0fms -> %s (%s)",
                r.source,
                r.width,
                r.height,
                f"model={r.model} " if r.model else "",
                stages,
                r.total_ms,
                r.output or "-",
                human_bytes(r.bytes_out),
            )
        else:
            self.failed += 1
            self.errors[r.error_type] += 1
            self.failures.append((r.source, r.error or ""))
            self.log.warning("failed %s [%s] %s", r.source, r.error_type, r.error)
        now = time.monotonic()
        if now - self._last >= self.every_s:
            self._last = now
            self.log.info("progress %s", self.progress_text(now))

    def progress_text(self, now: float | None = None) -> str:
        elapsed = (now or time.monotonic()) - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        if self.total:
            eta = (self.total - self.done) / rate if rate > 0 else float("nan")
            eta_s = human_duration(eta) if eta == eta else "?"
            return (
                f"{self.done}/{self.total} ({100.0 * self.done / self.total:.0f}%) "
                f"{rate:.2f} img/s ETA {eta_s} ok={self.ok} failed={self.failed}"
            )
        return f"{self.done} done {rate:.2f} img/s ok={self.ok} failed={self.failed}"

    def summary(self) -> str:
        elapsed = time.monotonic() - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        reasons = ", ".join(f"{k}={v}" for k, v in sorted(self.errors.items())) or "none"
        return (
            f"summary: {self.done} images in {human_duration(elapsed)} ({rate:.2f} img/s): "
            f"ok={self.ok} failed={self.failed} (reasons: {reasons})"
        )
