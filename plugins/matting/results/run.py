"""What a run's results page shows, read from the run's own files (no Airflow import).

A run of any matting DAG leaves ``manifest.json`` in ``<destination>/<run_prefix>/``: per input its
source, status, outputs (background removal) or report (ID photos), and where the original went.
``RunResults`` turns that into gallery items, a page at a time through the run's page index
(``matting.results.index``) where there is one; the web UI (``matting.results.app``) only renders them. Every
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
import logging
import os
import tempfile
import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path

from matting import layout, settings
from matting.pipeline.archive import SHEET_MAX_BYTES, merge_parts, thumbnail_tile
from matting.results.gallery import VIEWS, Item, _inside_run, counts, items_from_manifest
from matting.results.index import MANIFEST, ResultIndex, StaleIndex
from matting.storage import FileInfo, Storage
from matting.storage.atomic import atomic_write_bytes

log = logging.getLogger("matting.results.run")

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


def held_views(items: list[Item], run_url: str) -> dict[str, tuple[str, str]]:
    """For each photo held in ``review/``: its thumbnail's URL and its comparison page's URL under
    ``run_url`` (the run's results page), as the review form links them."""
    views = {}
    for item in items:
        if item.status == "held" and item.after and (name := layout.in_review(item.after)) is not None:
            views[name] = (
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


class RunResults:
    """A run's results and the storages its images live in (opened by the caller, closed by it).

    Read, in this order, from: the run's paged index (``matting.results.index``; a page or an image
    reads a bounded number of small files, whatever the run's size), else its ``manifest.json`` (runs
    from before the index: parsed whole), else, while the archive step has not run, its batches' parts
    (merged once per process and listing of ``parts/``: see ``merged_parts``). Whichever it is must name
    the run asked for (``where.dag_id`` / ``run_id``), or ``NotThisRun``."""

    def __init__(self, where: Where, run: Storage, source: Storage | None) -> None:
        self.where, self.run, self.source = where, run, source
        self.partial = False
        self._index: ResultIndex | None = ResultIndex.open(run)
        self._parsed: _Parsed | None = None  # the whole manifest, when no index serves
        if self._index is not None:
            self._check_owner(self._index.doc)
            self.header: dict = self._index.doc.get("header") or {}
            return
        self._load()

    def _load(self) -> None:
        """The whole manifest (or the merged parts), parsed, and its items."""
        run, where = self.run, self.where
        # no manifest yet: the archive step has not run, or failed; the batches' parts say what is done
        self.partial = not run.exists(MANIFEST)
        if self.partial:
            parsed = merged_parts(where, run)
        else:
            parsed = _Parsed.of(json.loads(run.read(MANIFEST)), where.run_prefix)
        self._check_owner(parsed.manifest)
        self._parsed, self._index = parsed, None
        self.header = {k: v for k, v in parsed.manifest.items() if k not in ("files", "photos")}

    def _check_owner(self, doc: dict) -> None:
        if not self.where.dag_id:  # not asked for a given run (the CLI, tests)
            return
        owner = (str(doc.get("dag_id") or ""), str(doc.get("run_id") or ""))
        if owner != (self.where.dag_id, self.where.run_id):
            found = f"DAG {owner[0]!r} run {owner[1]!r}" if owner[0] else "no run (no manifest naming a DAG)"
            wanted = f"DAG {self.where.dag_id!r} run {self.where.run_id!r}"
            raise NotThisRun(f"the results at {self.run.describe()} belong to {found}, not to {wanted}")

    def _indexed(self, read):
        """``read(index)`` on the paged index; the full parse when its files changed under this request."""
        if self._index is not None:
            try:
                return read(self._index)
            except StaleIndex as exc:
                log.info("%s: results index changed while read (%s); parsing the manifest", self.run.describe(), exc)
                self._load()
        return None

    @property
    def manifest(self) -> dict:
        """The whole manifest (parsed on first use when the index served the request so far)."""
        if self._parsed is None:
            self._load()
        return self._parsed.manifest

    @property
    def items(self) -> list[Item]:
        """Every item (the whole manifest: for the review step, not for a page)."""
        if self._parsed is None:
            self._load()
        return self._parsed.items

    @property
    def total(self) -> int:
        return self.view_counts()["all"]

    def view_counts(self) -> dict[str, int]:
        """How many items each of the page's filters shows."""
        if self._index is not None:
            return dict(self._index.views)
        return {view: len(positions) for view, positions in self._parsed.views.items()}

    def counts(self) -> dict[str, int]:
        if self._index is not None:
            return dict(self._index.doc.get("counts") or {})
        return dict(self._parsed.counts)

    def view(self, show: str, start: int, stop: int) -> list[Item]:
        """Items ``start`` to ``stop`` of the filter ``show`` (``VIEWS``)."""
        found = self._indexed(lambda index: index.items(show, start, stop, self.where.run_prefix))
        if found is not None:
            return found
        return [self._parsed.items[n] for n in self._parsed.views[show][start:stop]]

    def page(self, show: str, page: int, per_page: int = PAGE_SIZE) -> tuple[list[Item], int, int]:
        """One page of the filter (1-based, clamped; ``per_page`` capped): its items, the page, the pages."""
        per_page = max(1, min(int(per_page), MAX_PAGE_SIZE))
        pages = max(1, (self.view_counts()[show] + per_page - 1) // per_page)
        page = min(max(1, int(page)), pages)
        return self.view(show, (page - 1) * per_page, page * per_page), page, pages

    def item(self, index: int, key: str | None = None) -> Item:
        """The item at ``index``; with ``key``, the item of that content key wherever it sits now
        (a page rendered before the run was re-archived asks by its old position)."""
        if self._index is not None:
            found = self._indexed(lambda index_: self._indexed_item(index_, index, key))
            if self._index is not None:  # not fallen back to the manifest meanwhile
                if found is None:
                    raise KeyError(key or index)
                return found
        items = self._parsed.items
        if key:
            for item in items:
                if item.key == key:
                    return item
            raise KeyError(key)
        if not 0 <= index < len(items):
            raise KeyError(index)
        return items[index]

    def _indexed_item(self, index_: ResultIndex, position: int, key: str | None) -> Item | None:
        prefix = self.where.run_prefix
        at = index_.items("all", position, position + 1, prefix) if 0 <= position < index_.total else []
        if at and (not key or at[0].key == key):
            return at[0]
        if not key:
            return None
        moved = index_.position_of(key)
        at = index_.items("all", moved, moved + 1, prefix) if moved is not None else []
        return at[0] if at and at[0].key == key else None

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
        name = self.header.get("zip")
        return name if name and _inside_run(name, "") == name and self.run.exists(name) else None


@dataclass(frozen=True)
class _Parsed:
    """A whole manifest (or merged parts) parsed: its items, each filter's positions, the counts."""

    manifest: dict
    items: list[Item]
    views: dict[str, list[int]]
    counts: dict[str, int]

    @classmethod
    def of(cls, manifest: dict, run_prefix: str) -> _Parsed:
        items = items_from_manifest(manifest, run_prefix)
        views = {
            view: [n for n, item in enumerate(items) if shown is None or item.status in shown]
            for view, shown in VIEWS.items()
        }
        return cls(manifest, items, views, counts(items))


_MERGED_KEEP = 2  # runs in progress whose merged parts a process keeps (the newest asked for)
_merged: OrderedDict[tuple, _Parsed] = OrderedDict()
_merged_lock = threading.Lock()


def merged_parts(where: Where, run: Storage) -> _Parsed:
    """A run in progress: its batches' parts merged (``archive.merge_parts``), its items and filters, kept per
    process under the run's place and the listing of its parts (names, sizes, versions): while no part
    changes, a request costs one listing of ``parts/``."""
    listing = [FileInfo(f"{layout.PARTS}/{f.path}", f.size, f.mtime, f.version) for f in run.sub(layout.PARTS).list()]
    key = (run.describe(), where.run_prefix, tuple(sorted((f.path, f.size, f.version) for f in listing)))
    with _merged_lock:
        hit = _merged.get(key)
        if hit is not None:
            _merged.move_to_end(key)
            return hit
    manifest = merge_parts(run, listing)
    found = _Parsed.of(manifest, where.run_prefix)
    with _merged_lock:
        _merged[key] = found
        while len(_merged) > _MERGED_KEEP:
            _merged.popitem(last=False)
    return found


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
