"""What a run's results page shows, read from the run's own files (no Airflow import).

A run of any matting DAG leaves ``manifest.json`` in ``<destination>/<run_prefix>/``: per input its
source, status, outputs (background removal) or report (ID photos), and where the original went.
``RunResults`` turns that into gallery items; the web UI (``matting.ui``) only renders them. Every
path an item can reach is checked here: outputs inside the run's folder, originals inside the
source, nothing named by a URL. Thumbnails and previews are bounded (bytes read, pixels decoded,
output size) and cached on disk under the item's *content key* (its name, paths and status), never its
position, so a re-archived run whose items were re-sorted cannot show one photo under another's name;
the cache is pruned to ``[matting] ui_cache_max_mb``, least recently used first.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import posixpath
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from matting import settings
from matting.archive import SHEET_MAX_BYTES, merge_parts, thumbnail_tile
from matting.atomic import atomic_write_bytes
from matting.manifest import accepted
from matting.storage import Storage, UnsafePath, safe_relpath

THUMB_PX = 256
PREVIEW_PX = 1600  # the full-size comparison: big enough to judge an ID photo, bounded for the server
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
    dag_id: str = ""  # the run these files must belong to (from the URL, not the XCom): see RunResults
    run_id: str = ""

    @classmethod
    def from_xcom(cls, value: object, dag_id: str = "", run_id: str = "") -> Where | None:
        """What an XCom says; nothing in it is trusted: the caller checks the locations against the DAG's
        allow-list, and ``RunResults`` checks that the manifest found names ``dag_id`` and ``run_id``."""
        if not isinstance(value, dict) or not value.get("destination") or not value.get("run_prefix"):
            return None
        return cls(
            destination=str(value["destination"]),
            run_prefix=str(value["run_prefix"]).strip("/"),
            destination_conn_id=str(value.get("destination_conn_id") or ""),
            source=str(value.get("source") or ""),
            source_conn_id=str(value.get("source_conn_id") or ""),
            dag_id=dag_id,
            run_id=run_id,
        )

    def locations(self) -> tuple[dict[str, str], dict[str, str]]:
        """The locations and connection ids it names, as the allow-list checks them."""
        locations = {"destination": self.destination, **({"source": self.source} if self.source else {})}
        conn_ids = {"destination_conn_id": self.destination_conn_id}
        if self.source:
            conn_ids["source_conn_id"] = self.source_conn_id
        return locations, conn_ids


class NotThisRun(LookupError):
    """The files found are not the run's the page is for (a manifest of another DAG or run)."""


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

    @property
    def key(self) -> str:
        """What identifies this item's images whatever its position: name, both paths and status."""
        raw = json.dumps([self.name, self.before, self.after, self.status])
        return hashlib.sha256(raw.encode()).hexdigest()[:16]


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


def _saved_as(source: str, after: str | None) -> dict:
    """``{"saved as": name}`` where the output's name is not the source's (cut to fit the destination,
    made portable, or a clash resolved), so the page shows both; else nothing."""
    if not after:
        return {}
    name = after.split("/", 1)[1] if after.startswith(("outputs/", "review/", "rejected/")) else after
    same = posixpath.splitext(name)[0] == posixpath.splitext(source)[0]
    return {} if same else {"saved as": name}


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
                details={
                    k: f.get(k)
                    for k in ("model", "moved_to", "kept_reason", "width", "height", "reused_from")
                    if f.get(k)
                },
            )
        )
        items[-1].details.update(_saved_as(items[-1].name, items[-1].after))
    for i, r in enumerate(manifest.get("photos") or []):
        out = r.get("output")
        review = r.get("review") if isinstance(r.get("review"), dict) else {}
        if accepted(r):
            status = "ok"
        elif out and str(out).startswith("review/"):
            status = "held"
        else:
            status = "refused"
        reasons = r.get("reasons") or []
        details = {k: r.get(k) for k in ("spec", "spec_title", "head_ratio", "file_kb") if r.get(k) is not None}
        if review:
            by = f" by {review['reviewer']}" if review.get("reviewer") else ""
            note = f": {review['note']}" if review.get("note") else ""
            details["review"] = f"{review.get('decision')}{by} at {review.get('at')}{note}"
        items.append(
            Item(
                index=i,
                name=str(r.get("source", "")),
                status=status,
                reason="; ".join(str(x) for x in reasons) or str(r.get("rejected") or ""),
                before=_in_source(r.get("source")),
                after=_inside_run(out, ""),
                rules=[x for x in r.get("rules") or [] if isinstance(x, dict)],
                details=details,
            )
        )
        items[-1].details.update(_saved_as(items[-1].name, items[-1].after))
    return items


def held_views(items: list[Item], run_url: str) -> dict[str, tuple[str, str]]:
    """For each photo held in ``review/``: its thumbnail's URL and its comparison page's URL under
    ``run_url`` (the run's results page), as the review form links them."""
    views = {}
    for item in items:
        if item.status == "held" and item.after and item.after.startswith("review/"):
            views[item.after[len("review/") :]] = (
                f"{run_url}/thumb/{item.index}/after.jpg?v={item.key}",
                f"{run_url}/photo/{item.index}",
            )
    return views


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
    reused = sum(1 for item in items if item.details.get("reused_from"))
    if reused:
        out["reused"] = reused  # copies from the result cache, among the ok ones
    return out


class RunResults:
    """A run's manifest and the storages its images live in (opened by the caller, closed by it)."""

    def __init__(self, where: Where, run: Storage, source: Storage | None) -> None:
        self.where, self.run, self.source = where, run, source
        # no manifest yet: the archive step has not run, or failed; the batches' parts say what is done
        self.partial = not run.exists("manifest.json")
        self.manifest: dict = merge_parts(run) if self.partial else json.loads(run.read("manifest.json"))
        if where.dag_id:  # asked for a given run: the manifest must be that run's
            owner = (str(self.manifest.get("dag_id") or ""), str(self.manifest.get("run_id") or ""))
            if owner != (where.dag_id, where.run_id):
                found = f"DAG {owner[0]!r} run {owner[1]!r}" if owner[0] else "no run (no manifest naming a DAG)"
                wanted = f"DAG {where.dag_id!r} run {where.run_id!r}"
                raise NotThisRun(f"the results at {run.describe()} belong to {found}, not to {wanted}")
        self.items = items_from_manifest(self.manifest, where.run_prefix)

    def item(self, index: int, key: str | None = None) -> Item:
        """The item at ``index``; with ``key``, the item of that content key wherever it sits now
        (a page rendered before the run was re-archived asks by its old position)."""
        if key:
            for item in self.items:
                if item.key == key:
                    return item
            raise KeyError(key)
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


def _cache_path(where: Where, key: str, kind: str, size: int) -> Path:
    """Keyed by everything that found the image (the run it was checked for, both locations and their
    connections): an entry is reachable only by the same checked run and places it was made from."""
    raw = json.dumps([asdict(where), key, kind, size], sort_keys=True)
    return cache_dir() / f"{hashlib.sha256(raw.encode()).hexdigest()[:32]}.jpg"


def cached_thumbnail(where: Where, key: str, kind: str, size: int = THUMB_PX) -> bytes | None:
    """An image made before for the item of content key ``key``, without opening any storage (a
    page asks for dozens at once); a hit counts as a use for the pruning."""
    path = _cache_path(where, key, kind, size)
    try:
        data = path.read_bytes()
    except OSError:
        return None
    try:
        os.utime(path)
    except OSError:
        pass
    return data


def prune_cache(max_bytes: int | None = None) -> int:
    """Delete the least recently used cached images until the folder holds at most ``max_bytes``
    (``[matting] ui_cache_max_mb``); returns how many were deleted."""
    cap = max_bytes if max_bytes is not None else int(settings.value("ui_cache_max_mb") * 1024 * 1024)
    entries = []
    for path in cache_dir().glob("*.jpg"):
        try:
            st = path.stat()
        except OSError:
            continue
        entries.append((st.st_mtime, st.st_size, path))
    total = sum(size for _, size, _ in entries)
    removed = 0
    for _, size, path in sorted(entries):
        if total <= cap:
            break
        try:
            path.unlink()
        except OSError:
            continue
        total -= size
        removed += 1
    return removed


_writes = 0


def thumbnail(results: RunResults, item: Item, kind: str, size: int = THUMB_PX) -> bytes:
    """A JPEG of the item's original (``before``) or result (``after``): a square tile of ``size``
    (thumbnails) or, with ``size=PREVIEW_PX``, the picture fitted within it (the comparison page);
    transparency as a checkerboard. Made once per (run, item key, kind, size) and kept in
    ``cache_dir()``; a run not archived yet is not cached."""
    global _writes
    if kind not in ("before", "after"):
        raise ValueError(kind)
    path = _cache_path(results.where, item.key, kind, size)
    if path.exists():
        return path.read_bytes()
    data = results.image_bytes(item, kind)
    label = "original moved away" if kind == "before" else ("no output" if item.status != "ok" else "gone")
    buf = io.BytesIO()
    thumbnail_tile(data, label, size, square=size <= THUMB_PX).save(buf, "JPEG", quality=85 if size <= THUMB_PX else 90)
    blob = buf.getvalue()
    if data is not None and not results.partial:  # a missing image may come back (a retried run)
        atomic_write_bytes(path, blob)
        _writes += 1
        if _writes % 50 == 1:  # the first write after a start, then every 50th
            prune_cache()
    return blob
