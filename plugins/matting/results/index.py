"""The results pages' paged index of a run: what one page or one image needs, without the whole
manifest. Pure core, no Airflow import.

Written beside ``manifest.json`` by every step that writes it (``publish_manifest``): ``results/index.json``
(the run it belongs to, the manifest version it was made from, counts, per-filter sizes, the manifest's
header without its entries) and, under ``results/<generation>/``, the entries in chunks of ``CHUNK`` per
filter (``all-00000.json``, ``failed-…``, ``held-…``: raw manifest entries with their position) and the
content keys in shards (``keys-00000.json``: key -> position). A page reads the index and at most two
chunks per list it shows; an image, the index, one chunk and at most one key shard.

The chunks are written first, the index last (one atomic write): a reader sees the old generation or the
new one. An index whose recorded manifest version is not the manifest's (a writer that rewrote the
manifest without it, or a step that failed between the two) is not used: the pages parse the manifest.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Sequence

from matting import layout
from matting.pipeline.manifest import write_manifest_stream
from matting.results.gallery import KINDS, VIEWS, Item, Tally, entry_item, manifest_entries
from matting.storage import FileInfo, Storage

log = logging.getLogger("matting.results.index")

MANIFEST = layout.MANIFEST
INDEX_DIR = layout.INDEX_DIR
INDEX = f"{INDEX_DIR}/index.json"
FORMAT = 1
CHUNK = 200  # entries per chunk: a page (at most 96) spans at most two, the quarantine's head one
KEYS_PER_SHARD = 4096


def publish_manifest(run: Storage, manifest: dict, data: bytes | None = None) -> None:
    """Write ``manifest.json`` (``data``, else ``manifest`` dumped) and then its paged index."""
    if data is None:
        data = json.dumps(manifest, indent=2, ensure_ascii=False).encode()
    run.write(MANIFEST, data)
    del data
    total = sum(len(manifest.get(kind) or []) for kind in KINDS)
    _index_written(run, manifest, manifest_entries(manifest), total)


def publish_stream(run: Storage, header: dict, kind: str, entries: Sequence[tuple[str, bytes]]) -> None:
    """``manifest.json`` streamed from ``header`` and ``entries`` (``(source, compact JSON)`` of ``kind``,
    in manifest order: ``write_manifest_stream``), then its paged index, the entries parsed one at a
    time: neither the parsed manifest nor its whole text is ever held."""
    write_manifest_stream(run, MANIFEST, header, kind, entries)
    parsed = ((kind, i, json.loads(data)) for i, (_, data) in enumerate(entries))
    _index_written(run, header, parsed, len(entries))


def _index_written(run: Storage, header: dict, entries: Iterable[tuple[str, int, dict]], total: int) -> None:
    """The index of the manifest just written (``entries``: a lazy iterable, read only if it is there)."""
    info = run.stat(MANIFEST)
    if info is None:  # a storage that does not show what it just wrote: the pages parse the manifest
        log.warning("%s: manifest written but not found; no results index", run.describe())
        return
    write_index(run, header, entries, total, info)


def write_index(
    run: Storage, header: dict, entries: Iterable[tuple[str, int, dict]], total: int, info: FileInfo
) -> dict:
    """The paged index of a manifest (``header``: its keys but the entries; ``entries``: its ``total``
    ``(kind, index, entry)`` in gallery order), whose stored version is ``info``; returns the index
    document. Memory: one chunk per filter and the keys (16 characters and a number per entry) at a time."""
    prefix = str(header.get("run_prefix") or "")
    generation = info.version_id[:12]
    folder = f"{INDEX_DIR}/{generation}"
    shards = max(1, math.ceil(total / KEYS_PER_SHARD))
    keys: list[dict[str, int]] = [{} for _ in range(shards)]
    buffers: dict[str, list] = {view: [] for view in VIEWS}
    sizes = dict.fromkeys(VIEWS, 0)
    tally = Tally()

    def flush(view: str) -> None:
        chunk = (sizes[view] - 1) // CHUNK
        run.write(f"{folder}/{view}-{chunk:05d}.json", json.dumps(buffers[view], ensure_ascii=False).encode())
        buffers[view] = []

    for position, (kind, i, entry) in enumerate(entries):
        # the position, as the run's own prefix makes it (the pages re-derive it with theirs)
        item = entry_item(kind, i, entry, prefix)
        key = item.key
        keys[shard_of(key, shards)][key] = position
        tally.add(item)
        for view in item.views():
            buffers[view].append([position, kind, i, entry])
            sizes[view] += 1
            if len(buffers[view]) == CHUNK:
                flush(view)
    for view in VIEWS:
        if buffers[view]:
            flush(view)
    for n, shard in enumerate(keys):
        run.write(f"{folder}/keys-{n:05d}.json", json.dumps(shard).encode())
    doc = {
        "format": FORMAT,
        "dag_id": str(header.get("dag_id") or ""),
        "run_id": str(header.get("run_id") or ""),
        "manifest": {"size": info.size, "version": info.version},
        "generation": generation,
        "chunk": CHUNK,
        "key_shards": shards,
        "views": sizes,
        "counts": tally.result(),
        "header": {k: v for k, v in header.items() if k not in KINDS},
    }
    run.write(INDEX, json.dumps(doc, ensure_ascii=False).encode())
    _drop_other_generations(run, generation)
    return doc


def _drop_other_generations(run: Storage, generation: str) -> None:
    """Earlier indexes' chunks (a reader that still holds their index falls back to the manifest)."""
    try:
        stale = [f.path for f in run.sub(INDEX_DIR).list() if "/" in f.path and not f.path.startswith(generation)]
        for rel in stale:
            run.delete(f"{INDEX_DIR}/{rel}")
    except Exception as exc:  # left over: costs space, not correctness
        log.warning("%s: old results index not removed: %s: %s", run.describe(), type(exc).__name__, exc)


def shard_of(key: str, shards: int) -> int:
    return int(key[:8], 16) % shards


class StaleIndex(LookupError):
    """The index's files are gone or not the manifest's (rewritten meanwhile): parse the manifest."""


class ResultIndex:
    """A run's paged index as read by one request: chunks read at most once each."""

    def __init__(self, run: Storage, doc: dict) -> None:
        self.run, self.doc = run, doc
        self.folder = f"{INDEX_DIR}/{doc['generation']}"
        self.chunk = int(doc["chunk"])
        self.views: dict[str, int] = {view: int(doc["views"].get(view, 0)) for view in VIEWS}
        self.total = self.views["all"]
        self._chunks: dict[tuple[str, int], list] = {}

    @classmethod
    def open(cls, run: Storage) -> ResultIndex | None:
        """The run's index when there is one made from the manifest there now; else None (no index:
        a run from before it, or a step that rewrote the manifest without it)."""
        try:
            doc = json.loads(run.read(INDEX))
        except FileNotFoundError:
            return None
        except ValueError as exc:
            log.warning("%s: unreadable results index (%s); parsing the manifest", run.describe(), exc)
            return None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            return None
        recorded = doc.get("manifest") or {}
        info = run.stat(MANIFEST)
        if info is None or (info.size, info.version) != (recorded.get("size"), recorded.get("version")):
            log.info("%s: results index not made from the manifest there now; parsing the manifest", run.describe())
            return None
        return cls(run, doc)

    def _chunk(self, view: str, n: int) -> list:
        if (view, n) not in self._chunks:
            try:
                self._chunks[(view, n)] = json.loads(self.run.read(f"{self.folder}/{view}-{n:05d}.json"))
            except (FileNotFoundError, ValueError) as exc:
                raise StaleIndex(f"{view} chunk {n}: {exc}") from exc
        return self._chunks[(view, n)]

    def entries(self, view: str, start: int, stop: int) -> list[list]:
        """``[position, kind, index, entry]`` of the filter's entries ``start`` to ``stop``."""
        stop = min(stop, self.views[view])
        out: list[list] = []
        for n in range(start // self.chunk, (stop - 1) // self.chunk + 1 if stop > start else 0):
            chunk = self._chunk(view, n)
            lo = max(start - n * self.chunk, 0)
            out.extend(chunk[lo : stop - n * self.chunk])
        return out

    def items(self, view: str, start: int, stop: int, run_prefix: str) -> list[Item]:
        return [entry_item(kind, i, entry, run_prefix) for _, kind, i, entry in self.entries(view, start, stop)]

    def position_of(self, key: str) -> int | None:
        """Where the item of content key ``key`` sits in the run (its key as the run's prefix makes it)."""
        try:
            shard = int(self.doc["key_shards"])
            found = json.loads(self.run.read(f"{self.folder}/keys-{shard_of(key, shard):05d}.json")).get(key)
        except (FileNotFoundError, ValueError) as exc:
            raise StaleIndex(f"keys: {exc}") from exc
        return found if isinstance(found, int) else None
