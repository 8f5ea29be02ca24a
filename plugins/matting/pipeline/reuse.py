"""The same photo with the same settings is matted once: a content-addressed result cache kept
beside the destination's ledger (no Airflow import).

The key is everything that determines the output bytes: the input's sha256, the model file's
sha256, the scenario (its name and every parameter), every output option (format, background,
quality, PNG encoder and level, WebP mode) and the package version (the code that composes and
encodes). Not in the key: execution providers and threads (CPU and GPU workers give the same
picture up to float rounding), the input's name or folder, the run.

One small object per key (``_cache/<key>.json``, written whole like the ledger's markers, so mapped
tasks writing at once cannot lose each other's) points at the output it came from and holds that
output's sha256. A hit re-reads the output, checks the sha256 and writes the same bytes under this
run's name (S3: a server-side copy conditioned on the output's ETag); an output that is gone or
differs is a miss, and the photo is processed as if never seen. Entries older than
``[matting] reuse_max_age_days`` are ignored, and deleted by the archive step (``prune``).

Pruning costs what expired, not what is kept: ``put`` also writes an empty marker
``_cache/_expiry/<UTC day of creation>/<key>`` (before the entry, so no entry lacks one), and
``prune`` walks only the days that expired since it last ran (``_expiry/state.json`` says through
which day it is done), reading each of their entries (one re-made since on a later day is kept: its
new marker is in that day). A cache written before this scheme is scanned whole once, by the first
prune, which gives its live entries their markers.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, is_dataclass

from matting import __version__, layout
from matting.pipeline.jobs import Outputs
from matting.storage import Storage

log = logging.getLogger("matting.pipeline.reuse")

EXPIRY = "_expiry"  # under layout.CACHE: one folder per UTC day of creation, one empty marker per entry
STATE = f"{EXPIRY}/state.json"
WRITE_SLACK_S = 3600.0  # an entry's write time is at most this long after its ``created`` (clock skew included)


def result_key(input_sha256: str, model_sha256: str, scenario: object, output: object) -> str:
    """The cache key of one output: sha256 over everything that shapes its bytes (see the module)."""
    parts = {
        "input": input_sha256,
        "model": model_sha256,
        "scenario": asdict(scenario) if is_dataclass(scenario) else repr(scenario),
        "output": asdict(output) if is_dataclass(output) else repr(output),
        "code": __version__,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class Entry:
    output: str  # relative to the destination root: <run_prefix>/outputs/<name>
    sha256: str  # of the output's bytes
    size: int
    run: str  # the run prefix that made it
    source: str  # the input it was made from (for the log)
    created: float  # unix time
    version: str | None = None  # the output's storage version (S3 ETag), for a conditional copy
    ms: float = 0.0  # what making it took (the log's "saved")
    width: int | None = None
    height: int | None = None


class ResultCache:
    """The cache of one destination. ``reuse`` copies a cached output to a new name; ``put`` records
    a fresh one; ``prune`` deletes expired entries."""

    def __init__(self, dest: Storage, max_age_s: float, now=time.time) -> None:
        self.dest, self.max_age_s, self.now = dest, max_age_s, now
        self.folder = dest.sub(layout.CACHE)

    def get(self, key: str) -> Entry | None:
        try:
            raw = self.folder.read(f"{key}.json")
        except FileNotFoundError:
            return None
        try:
            entry = Entry(**json.loads(raw))
        except (ValueError, TypeError) as exc:
            log.warning("ignoring unreadable cache entry %s: %s", key, exc)
            return None
        if self.now() - entry.created > self.max_age_s:
            return None
        return entry

    def put(self, key: str, entry: Entry) -> None:
        self.folder.write(f"{EXPIRY}/{_day(entry.created)}/{key}", b"")  # first: no entry without a marker
        self.folder.write(f"{key}.json", json.dumps(asdict(entry)).encode())

    def reuse(self, key: str, target: str) -> Entry | None:
        """Write the cached output of ``key`` as ``target`` (relative to the destination root) after
        checking it is still the bytes that were recorded; None (a miss) when there is no live entry,
        the output is gone, or it changed."""
        entry = self.get(key)
        if entry is None:
            return None
        if entry.output == target:
            return entry if self._intact(entry) else None
        try:
            copied = self.dest.copy(entry.output, target, expect_sha256=entry.sha256, expect_version=entry.version)
        except FileNotFoundError:
            log.info("cached output %s is gone: processing %s again", entry.output, target)
            return None
        if not copied:
            log.warning("cached output %s changed since it was recorded: processing %s again", entry.output, target)
            return None
        return entry

    def _intact(self, entry: Entry) -> bool:
        try:
            return hashlib.sha256(self.dest.read(entry.output)).hexdigest() == entry.sha256
        except FileNotFoundError:
            return False

    def prune(self) -> int:
        """Delete the entries older than the maximum age; returns how many. Walks the days that
        expired since the last prune (see the module): its cost is what expired, whatever the cache
        holds. Safe to interrupt (the next prune walks those days again) and to run twice at once."""
        try:
            state = json.loads(self.folder.read(STATE))
            done = dt.date.fromisoformat(state["pruned_through"])
        except FileNotFoundError:
            return self._migrate()
        except (ValueError, KeyError, TypeError):
            log.warning("unreadable %s/%s: scanning the whole cache once", self.folder.describe(), STATE)
            return self._migrate()
        through = self._expired_through()
        removed = 0
        day = done + dt.timedelta(days=1)
        while day <= through:
            removed += self._prune_day(day.isoformat())
            day += dt.timedelta(days=1)
        if through > done:
            self._save_state(through)
        return removed

    def _expired_through(self) -> dt.date:
        """The last UTC day all of whose entries are past the maximum age."""
        return dt.datetime.fromtimestamp(self.now() - self.max_age_s, dt.UTC).date() - dt.timedelta(days=1)

    def _save_state(self, through: dt.date) -> None:
        self.folder.write(STATE, json.dumps({"pruned_through": through.isoformat()}).encode())

    def _prune_day(self, day: str) -> int:
        removed = 0
        folder = self.folder.sub(f"{EXPIRY}/{day}")
        for marker in folder.list(recursive=False):
            if self._expired(marker.path):
                removed += 1
            folder.delete(marker.path)  # after its entry: an interrupted prune finds it again
        return removed

    def _expired(self, key: str) -> bool:
        """Delete the entry ``key`` if it is past the maximum age (True when deleted)."""
        try:
            entry = Entry(**json.loads(self.folder.read(f"{key}.json")))
            expired = self.now() - entry.created > self.max_age_s
        except FileNotFoundError:
            return False
        except (ValueError, TypeError):
            expired = True  # unreadable: useless
        if expired:
            self.folder.delete(f"{key}.json")
        return expired

    def _migrate(self) -> int:
        """The first prune of a cache written before the expiry markers: the whole cache scanned
        once (expired entries deleted, live ones given a marker by their write time), then the state
        that lets every later prune walk only the days that expired."""
        removed = 0
        for info in self.folder.list(recursive=False):
            if not info.path.endswith(".json"):
                continue
            key = info.path[: -len(".json")]
            young = info.mtime is not None and self.now() - info.mtime < self.max_age_s - WRITE_SLACK_S
            if not young and self._expired(key):
                removed += 1
            else:
                self.folder.write(f"{EXPIRY}/{_day(info.mtime or self.now())}/{key}", b"")
        self._save_state(self._expired_through())
        return removed


def _day(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).date().isoformat()


class CachingJob:
    """A job (``matting.pipeline.jobs``) with the result cache in front: a photo whose bytes were
    made before with the same settings is copied from the cached output instead of being processed,
    and every output made here is recorded for later copies. Two photos of one call with the same bytes:
    the first is made, the second waits until the first's result is in and is then a copy of it (made
    again if the first failed). The cache never fails a photo: any trouble with it is a miss."""

    def __init__(self, job, cache: ResultCache, run_prefix: str) -> None:
        self.job, self.cache, self.run_prefix = job, cache, run_prefix
        self.kind, self.noun, self.deepest, self.cacheable = job.kind, job.noun, job.deepest, job.cacheable
        self.reused = 0

    @property
    def extension(self) -> str:
        return self.job.extension

    def describe(self) -> dict:
        return self.job.describe()

    def headline(self) -> str:
        return self.job.headline()

    def refused(self, name, exc, outputs):
        return self.job.refused(name, exc, outputs)

    def run(self, photos, outputs, shortcut=None):
        made: dict[str, tuple[str, int]] = {}  # output path -> (sha256, size) as written here
        recording = _Recording(outputs, made)
        todo = list(photos)
        while todo:
            keys: dict[str, str] = {}
            producing: set[str] = set()  # keys a photo of this pass is making
            held: set[str] = set()
            results = self.job.run(todo, recording, self._shortcut(outputs, keys, producing, held))
            try:
                for done in results:
                    name = done.result.source
                    if name in held:
                        continue  # answered after this pass, as a copy of its twin
                    key = keys.get(name)
                    if key is not None and not done.result.reused_from:
                        producing.discard(key)
                        output = done.result.output
                        if done.result.ok and output in made:
                            self._remember(key, done.result, made.pop(output))
                    yield done
            finally:
                results.close()
            todo = [p for p in todo if p.name in held]

    def _shortcut(self, outputs, keys: dict[str, str], producing: set[str], held: set[str]):
        from matting.engine import ImageResult

        def shortcut(name: str, data: bytes) -> ImageResult | None:
            target = outputs.output(name)
            try:
                key = keys[name] = self.job.result_key(hashlib.sha256(data).hexdigest())
                if key in producing:  # its twin is being made right now: copied once it is
                    held.add(name)
                    return ImageResult(source=name, ok=False, error_type="held")
                entry = self.cache.reuse(key, target)
            except Exception as exc:
                log.warning("result cache unavailable for %s (%s: %s): processing it", name, type(exc).__name__, exc)
                return None
            if entry is None:
                producing.add(key)
                return None
            self.reused += 1
            log.info("reused %s for %s (made by run %s; saved ~%.0f ms)", entry.output, name, entry.run, entry.ms)
            return ImageResult(
                source=name,
                ok=True,
                output=target,
                width=entry.width,
                height=entry.height,
                bytes_out=entry.size,
                reused_from=entry.output,
            )

        return shortcut

    def _remember(self, key: str, result, made: tuple[str, int]) -> None:
        sha, size = made
        try:
            info = self.cache.dest.stat(result.output)
            entry = Entry(
                output=result.output,
                sha256=sha,
                size=size,
                run=self.run_prefix,
                source=result.source,
                created=time.time(),
                version=info.version if info is not None else None,
                ms=result.total_ms,
                width=result.width,
                height=result.height,
            )
            self.cache.put(key, entry)
        except Exception as exc:  # a photo is done whether or not its result could be cached
            log.warning("could not cache the result of %s: %s: %s", result.source, type(exc).__name__, exc)


class _Recording(Outputs):
    """The job's ``Outputs`` with what it writes recorded (sha256, size), for the cache's entries."""

    def __init__(self, outputs: Outputs, made: dict[str, tuple[str, int]]) -> None:
        super().__init__(outputs.dest, outputs.folder, outputs.names)
        self._made = made

    def write(self, rel: str, data: bytes) -> str:
        path = super().write(rel, data)
        self._made[path] = (hashlib.sha256(data).hexdigest(), len(data))
        return path
