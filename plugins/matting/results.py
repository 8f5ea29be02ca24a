"""What a run's results page shows, read from the run's own files (no Airflow import).

A run of any matting DAG leaves ``manifest.json`` in ``<destination>/<run_prefix>/``: per input its
source, status, outputs (background removal) or report (ID photos), and where the original went.
``RunResults`` turns that into gallery items; the web UI (``matting.ui``) only renders them. Every
path an item can reach is checked here: outputs inside the run's folder, originals inside the
source, nothing named by a URL. Thumbnails are bounded (bytes read, pixels decoded, output size) and
cached on disk, so a page costs each image once.
"""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from matting import settings
from matting.archive import SHEET_MAX_BYTES, merge_parts, thumbnail_tile
from matting.atomic import atomic_write_bytes
from matting.storage import Storage, UnsafePath, safe_relpath

THUMB_PX = 256
PAGE_SIZE = 24
MAX_PAGE_SIZE = 96


@dataclass(frozen=True)
class Where:
    """Where a run's files are: what the run's archive (or ID-photo) task returned as its XCom."""

    destination: str
    run_prefix: str
    destination_conn_id: str = ""
    source: str = ""
    source_conn_id: str = ""

    @classmethod
    def from_xcom(cls, value: object) -> Where | None:
        if not isinstance(value, dict) or not value.get("destination") or not value.get("run_prefix"):
            return None
        return cls(
            destination=str(value["destination"]),
            run_prefix=str(value["run_prefix"]).strip("/"),
            destination_conn_id=str(value.get("destination_conn_id") or ""),
            source=str(value.get("source") or ""),
            source_conn_id=str(value.get("source_conn_id") or ""),
        )


@dataclass
class Item:
    """One input of the run as the gallery shows it."""

    index: int
    name: str
    status: str  # ok | failed | held (ID photo waiting for review) | refused (ID photo)
    reason: str = ""  # quarantine or refusal reason, as recorded
    before: str | None = None  # path in the source (the moved original), checked
    after: str | None = None  # path under the run folder, checked
    rules: list[dict] = field(default_factory=list)  # ID photos: the report's rule table
    details: dict = field(default_factory=dict)


def _inside_run(rel: str | None, run_prefix: str) -> str | None:
    """``rel`` relative to the run folder when it lies inside it, else None (never a path out)."""
    if not rel:
        return None
    try:
        clean = safe_relpath(rel)
    except UnsafePath:
        return None
    if run_prefix and clean.startswith(run_prefix + "/"):
        clean = clean[len(run_prefix) + 1 :]
    return clean if not clean.startswith("../") else None


def _in_source(rel: str | None) -> str | None:
    if not rel:
        return None
    try:
        return safe_relpath(rel)
    except UnsafePath:
        return None


def items_from_manifest(manifest: dict, run_prefix: str) -> list[Item]:
    """Gallery items for a background-removal manifest (``files``) or an ID-photo one (``photos``)."""
    items: list[Item] = []
    for i, f in enumerate(manifest.get("files") or []):
        reason = f"{f.get('error_type')}: {f.get('error')}" if f.get("status") != "ok" else ""
        outputs = f.get("outputs") or []
        items.append(
            Item(
                index=i,
                name=str(f.get("source", "")),
                status="ok" if f.get("status") == "ok" else "failed",
                reason=reason,
                before=_in_source(f.get("moved_to") or f.get("source")),
                after=_inside_run(outputs[0], run_prefix) if outputs else None,
                details={k: f.get(k) for k in ("moved_to", "kept_reason", "width", "height") if f.get(k)},
            )
        )
    for i, r in enumerate(manifest.get("photos") or []):
        out = r.get("output")
        if r.get("passed"):
            status = "ok"
        elif out and str(out).startswith("review/"):
            status = "held"
        else:
            status = "refused"
        reasons = r.get("reasons") or []
        items.append(
            Item(
                index=i,
                name=str(r.get("source", "")),
                status=status,
                reason="; ".join(str(x) for x in reasons) or str(r.get("rejected") or ""),
                before=_in_source(r.get("source")),
                after=_inside_run(out, ""),
                rules=[x for x in r.get("rules") or [] if isinstance(x, dict)],
                details={k: r.get(k) for k in ("spec", "spec_title", "head_ratio", "file_kb") if r.get(k) is not None},
            )
        )
    return items


def page_of(items: list, page: int, per_page: int = PAGE_SIZE) -> tuple[list, int]:
    """One page (1-based, clamped) and the number of pages; ``per_page`` is capped."""
    per_page = max(1, min(int(per_page), MAX_PAGE_SIZE))
    pages = max(1, (len(items) + per_page - 1) // per_page)
    page = min(max(1, int(page)), pages)
    return items[(page - 1) * per_page : page * per_page], pages


def counts(items: list[Item]) -> dict[str, int]:
    out = {"files": len(items)}
    for item in items:
        out[item.status] = out.get(item.status, 0) + 1
    return out


class RunResults:
    """A run's manifest and the storages its images live in (opened by the caller, closed by it)."""

    def __init__(self, where: Where, run: Storage, source: Storage | None) -> None:
        self.where, self.run, self.source = where, run, source
        # no manifest yet: the archive step has not run, or failed; the batches' parts say what is done
        self.partial = not run.exists("manifest.json")
        self.manifest: dict = merge_parts(run) if self.partial else json.loads(run.read("manifest.json"))
        self.items = items_from_manifest(self.manifest, where.run_prefix)

    def item(self, index: int) -> Item:
        if not 0 <= index < len(self.items):
            raise KeyError(index)
        return self.items[index]

    def image_bytes(self, item: Item, kind: str) -> bytes | None:
        """The original (``before``, from the source) or the result (``after``, from the run folder);
        None when it is gone or bigger than a thumbnail is worth reading."""
        storage, rel = (self.source, item.before) if kind == "before" else (self.run, item.after)
        if storage is None or rel is None:
            return None
        info = storage.stat(rel)
        if info is None or info.size > SHEET_MAX_BYTES:
            return None
        return storage.read(rel)

    def zip_path(self) -> str | None:
        name = self.manifest.get("zip")
        return name if name and _inside_run(name, "") == name and self.run.exists(name) else None


def cache_dir() -> Path:
    return Path(settings.value("ui_cache_dir") or Path(tempfile.gettempdir()) / "matting-ui-cache")


def _cache_path(where: Where, index: int, kind: str, size: int) -> Path:
    key = json.dumps([where.destination, where.run_prefix, index, kind, size])
    return cache_dir() / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.jpg"


def cached_thumbnail(where: Where, index: int, kind: str, size: int = THUMB_PX) -> bytes | None:
    """A thumbnail made before, without opening any storage (a page asks for dozens at once)."""
    path = _cache_path(where, index, kind, size)
    return path.read_bytes() if path.exists() else None


def thumbnail(results: RunResults, item: Item, kind: str, size: int = THUMB_PX) -> bytes:
    """A JPEG thumbnail, made once per (run, item, kind, size) and kept in ``cache_dir()`` (an
    archived run's photos do not change; a run not archived yet is not cached)."""
    if kind not in ("before", "after"):
        raise ValueError(kind)
    path = _cache_path(results.where, item.index, kind, size)
    if path.exists():
        return path.read_bytes()
    data = results.image_bytes(item, kind)
    label = "original moved away" if kind == "before" else ("no output" if item.status != "ok" else "gone")
    buf = io.BytesIO()
    thumbnail_tile(data, label, size).save(buf, "JPEG", quality=85)
    blob = buf.getvalue()
    if data is not None and not results.partial:  # a missing image may come back (a retried run)
        atomic_write_bytes(path, blob)
    return blob
