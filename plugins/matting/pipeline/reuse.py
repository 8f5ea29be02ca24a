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
