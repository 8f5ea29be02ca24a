"""Run manifests and per-file records: plain dataclasses -> JSON (no Airflow import).

A record is written for every input as soon as it is settled (output written, or quarantined), so a
retried or re-run batch knows exactly what is already done and neither duplicates nor skips.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matting.storage import Storage


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass
class FileRecord:
    source: str  # path relative to the source root
    source_size: int
    source_version: str
    source_sha256: str | None = None
    status: str = "pending"  # ok | failed
    outputs: list[str] = field(default_factory=list)  # paths relative to the destination root
    error_type: str | None = None
    error: str | None = None
    moved_to: str | None = None  # processed/... or quarantine/... in the source, None if kept
    kept_reason: str | None = None  # why the original stayed in the source (e.g. a read-only account)
    timings_ms: dict[str, float] = field(default_factory=dict)
    width: int | None = None
    height: int | None = None
    finished_at: str | None = None
    reused_from: str | None = None  # the output this one is a copy of (the result cache), if any
    model: str | None = None  # the model that made the matte (a content-aware scenario picks per photo)

    @property
    def record_name(self) -> str:
        """A stable file name for this input's record (one per source path and version)."""
        digest = hashlib.sha1(f"{self.source}|{self.source_version}".encode()).hexdigest()[:16]
        return f"{digest}.json"

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes) -> FileRecord:
        return cls(**json.loads(data))


def compact_json(doc: dict) -> bytes:
    """One manifest entry as the streamed manifest stores it (one line, no spaces)."""
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


def write_manifest_stream(
    storage: Storage, name: str, header: dict, kind: str, entries: Iterable[tuple[str, bytes]]
) -> None:
    """``name`` in ``storage`` written piece by piece through its atomic writer: ``header``'s keys, then
    ``kind`` (``files`` or ``photos``): the entries' ``compact_json`` (``entries``: ``(source, JSON)``),
    one per line. Any JSON reader reads it as one document; the writer never holds more than one
    entry's text."""
    head = json.dumps({k: v for k, v in header.items() if k != kind}, indent=2, ensure_ascii=False)
    with storage.open_write(name) as fh:
        fh.write((head[:-2] + ",\n" if head != "{}" else "{\n").encode() + f'  "{kind}": ['.encode())
        sep = b"\n    "
        for _, data in entries:
            fh.write(sep + data)
            sep = b",\n    "
        fh.write(b"\n  ]\n}\n")


def accepted(report: dict) -> bool:
    """An ID photo is ok when it passed its rules or a reviewer approved it (the run's counts after a
    review and the results pages use this one reading)."""
    review = report.get("review") if isinstance(report.get("review"), dict) else {}
    return bool(report.get("passed")) or review.get("decision") == "approved"


def run_counts(files: list) -> dict[str, int]:
    """files / ok / failed over records or their dicts (manifests, parts, summaries)."""
    statuses = [f["status"] if isinstance(f, dict) else f.status for f in files]
    counts = {"files": len(statuses), "ok": statuses.count("ok"), "failed": len(statuses) - statuses.count("ok")}
    reused = sum(1 for f in files if (f.get("reused_from") if isinstance(f, dict) else f.reused_from))
    if reused:
        counts["reused"] = reused  # outputs copied from the result cache, among the ok ones
    return counts


@dataclass
class RunManifest:
    dag_id: str
    run_id: str
    params: dict
    job: dict  # what ran: model name + sha256, providers, scenario, output options, ...
    started_at: str
    run_prefix: str = ""  # the run's folder in the destination; outputs are listed relative to the root
    finished_at: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    files: list[FileRecord] = field(default_factory=list)  # background removal: one record per input
    photos: list[dict] = field(default_factory=list)  # ID photos: one report per portrait

    def to_json(self) -> bytes:
        doc = asdict(self)
        return json.dumps(doc, indent=2, ensure_ascii=False).encode()
