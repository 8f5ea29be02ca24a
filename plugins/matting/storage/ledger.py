"""Which versions a source that keeps its files has already settled, at a cost that does not grow with
the history: recent markers plus a few immutable segments of ids.

Layout under the destination's ``_ledger/``:

- ``<id>.json``: one marker per settled version, written by the task that settled it (concurrent
  mapped tasks each write their own, so none can lose another's). Markers written by earlier
  versions of the package are exactly these, and are read and folded like new ones.
- ``index/<count>-<digest>.ids``: immutable segments, the sorted ids of folded markers, one per line,
  named by their content's sha256 (a reader verifies it; a cache keyed by the name is never stale).
- ``archive/<time>-<digest>.jsonl``: the folded markers' documents (source, size, version, status,
  time, run), kept for audits; no check reads them.

A check lists the top level (at most about ``FOLD_AT`` markers plus one run's) and ``index/`` (at most
``MAX_SEGMENTS`` live segments plus those retired in the last ``RETIRE_AFTER_S``), and reads the
segments it has not seen in this process: a bounded number of requests, whatever the history.

No id is ever missing from what a check reads, although listings are not snapshots (a name created
and another deleted while a folder is listed can both be missed: measured on ext4, and S3 and SFTP
promise no more):

- folding (after a run that wrote markers) writes the segment before deleting the folded markers, and
  a check lists the markers *before* ``index/``: a marker deleted under the first listing is in a
  segment that existed before the second one began;
- merging writes the merged segment and deletes nothing; a segment whose ids another segment holds
  is deleted by a later fold only once that other segment is ``RETIRE_AFTER_S`` old (by the
  storage's own clock: the newest segment's time), so any listing that can miss the retired one
  began after its successor existed, and sees it.

An interrupted fold or merge leaves an id in two places (the archive may list a marker twice), never
in none; the next fold finishes the work.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Iterator
from collections.abc import Set as AbstractSet

from matting import layout
from matting.storage.base import FileInfo, Storage

log = logging.getLogger("matting.ledger")

FOLD_AT = 256  # markers waiting before a run folds them into a segment
MAX_SEGMENTS = 8  # more live segments than this: the two smallest are merged (sizes grow geometrically)
RETIRE_AFTER_S = 900.0  # a merged-away segment is deleted once its successor is this old (> any listing)
INDEX, ARCHIVE = "index", "archive"
_READ_TRIES = 5

# segment ids already read by this process, by (ledger location, segment name); segments are immutable
_segments: dict[tuple[str, str], frozenset[str]] = {}
_segments_lock = threading.Lock()


class LedgerCorrupt(RuntimeError):
    """A segment whose content is not what its name says (a storage fault): the check fails and is
    retried; it never proceeds without the ids it holds (that would settle photos twice)."""


def _segment_name(ids: list[str]) -> tuple[str, bytes]:
    body = "".join(f"{i}\n" for i in ids).encode()
    return f"{len(ids)}-{hashlib.sha256(body).hexdigest()[:16]}.ids", body


def _segment_size(name: str) -> int:
    try:
        return int(name.split("-", 1)[0])
    except ValueError:
        return 0


class SettledIds(AbstractSet[str]):
    """The ledger's settled ids as one set without building it: a membership test looks in the markers
    and in each segment (the segments are the process cache's own frozensets, a handful), so a warm
    check's CPU does not grow with the history either; iterating or ``len`` builds the union once."""

    def __init__(self, markers: frozenset[str], segments: tuple[frozenset[str], ...]) -> None:
        self._parts = (markers, *segments)
        self._union: frozenset[str] | None = None

    def __contains__(self, version_id: object) -> bool:
        return any(version_id in part for part in self._parts)

    def _all(self) -> frozenset[str]:
        if self._union is None:
            self._union = frozenset().union(*self._parts)
        return self._union

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


class Ledger:
    """Versions already settled from a source that keeps its files (read-only, or one that refused
    a move), kept at the destination (see the module). A file replaced under the same name has a new
    version, so it counts as new."""

    def __init__(self, storage: Storage, folder: str = layout.LEDGER) -> None:
        self.storage, self.folder = storage, folder
        self.root = storage.sub(folder)
        self.index = self.root.sub(INDEX)
        self.requests = 0  # storage requests made by ids() and fold(): what `make bench-scale` reports
        self.marked = 0  # markers this object wrote

    # --- reading -----------------------------------------------------------------------------------

    def ids(self) -> SettledIds:
        """Every settled version id: the markers, then the segments (in that order: see the module)."""
        markers = frozenset(f.path[: -len(".json")] for f in self._markers())
        for _ in range(_READ_TRIES):
            try:
                return SettledIds(markers, tuple(self._segment(f.path) for f in self._segment_listing()))
            except FileNotFoundError:  # a merge replaced a segment between the listing and the read
                continue
        raise LedgerCorrupt(f"the segments under {self.root.describe()}/{INDEX} kept changing while read")

    def _markers(self) -> list[FileInfo]:
        self.requests += 1
        return [f for f in self.root.list(recursive=False) if f.path.endswith(".json")]

    def _segment_listing(self) -> list[FileInfo]:
        self.requests += 1
        listed = [f for f in self.index.list(recursive=False) if f.path.endswith(".ids")]
        names = {f.path for f in listed}
        where = self.root.describe()
        with _segments_lock:  # forget deleted segments of this ledger
            for key in [k for k in _segments if k[0] == where and k[1] not in names]:
                del _segments[key]
        return listed

    def _segment(self, name: str) -> frozenset[str]:
        key = (self.root.describe(), name)
        with _segments_lock:
            cached = _segments.get(key)
        if cached is not None:
            return cached
        self.requests += 1
        body = self.index.read(name)
        ids = [line for line in body.decode().split("\n") if line]
        if _segment_name(ids) != (name, body):
            raise LedgerCorrupt(f"ledger segment {self.index.describe()}/{name} does not hold what its name says")
        segment = frozenset(ids)
        with _segments_lock:
            _segments[key] = segment
        return segment

    # --- writing -----------------------------------------------------------------------------------

    def mark(self, info: FileInfo, status: str = "ok", run_id: str = "") -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        doc = {"source": info.path, "size": info.size, "version": info.version, "status": status, "at": stamp}
        if run_id:
            doc["run_id"] = run_id
        self.root.write(f"{info.version_id}.json", json.dumps(doc).encode())
        self.marked += 1

    def record(self, infos: list[FileInfo], run_id: str = "") -> None:
        for info in infos:
            self.mark(info, run_id=run_id)

    def fold(self, at_least: int | None = None) -> int:
        """Fold the waiting markers into a new segment when at least ``at_least`` (default ``FOLD_AT``)
        wait, then retire and merge segments. Returns how many markers were folded. Safe to run in
        several tasks at once and to interrupt anywhere (see the module)."""
        markers = self._markers()
        if not markers or len(markers) < (FOLD_AT if at_least is None else at_least):
            self._merge()  # an interrupted merge is finished by the next run
            return 0
        docs = []
        for f in markers:
            vid = f.path[: -len(".json")]
            try:
                self.requests += 1
                doc = json.loads(self.root.read(f.path))
            except FileNotFoundError:  # folded by another task just now: it is in that task's segment
                continue
            except ValueError:  # an unreadable marker still says its version was settled
                doc = {"unreadable": True}
            docs.append({"id": vid, **doc} if isinstance(doc, dict) else {"id": vid})
        if not docs:
            return 0
        ids = sorted({d["id"] for d in docs})
        name, body = _segment_name(ids)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        self.requests += 2
        self.root.write(f"{ARCHIVE}/{stamp}-{name[:-4]}.jsonl", "".join(json.dumps(d) + "\n" for d in docs).encode())
        self.root.write(f"{INDEX}/{name}", body)
        for d in docs:
            self._delete(f"{d['id']}.json")
        log.info("ledger %s: folded %d marker(s) into %s", self.root.describe(), len(ids), name)
        self._merge()
        return len(ids)

    def _merge(self) -> None:
        """Delete segments retired long enough ago, then merge the two smallest live segments while
        more than ``MAX_SEGMENTS`` are live (see the module)."""
        listed = {f.path: f.mtime or 0.0 for f in self._segment_listing()}
        if not listed:
            return
        try:
            held = {name: self._segment(name) for name in listed}
        except FileNotFoundError:  # another task is retiring segments right now: next time
            return
        now = max(listed.values())  # the storage's clock: the newest segment was written last
        live: list[str] = []
        for name in sorted(held, key=lambda n: (-len(held[n]), n)):
            holder = next((other for other in live if held[name] <= held[other]), None)
            if holder is None:
                live.append(name)
            elif listed[holder] <= now - RETIRE_AFTER_S:
                self._delete(f"{INDEX}/{name}")
        while len(live) > MAX_SEGMENTS:
            a, b = sorted(live, key=lambda n: (len(held[n]), n))[:2]
            merged = sorted(held[a] | held[b])
            name, body = _segment_name(merged)
            self.requests += 1
            self.index.write(name, body)  # the same ids make the same name: a twin merge is harmless
            held[name] = frozenset(merged)
            live = [n for n in live if n not in (a, b)] + [name]
            log.info("ledger %s: merged %s and %s into %s", self.root.describe(), a, b, name)

    def _delete(self, rel: str) -> None:
        self.requests += 1
        try:
            self.root.delete(rel)
        except FileNotFoundError:
            pass
