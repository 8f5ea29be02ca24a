"""New-file detection over any Storage: filters, temp names, settling, already-processed files.

Shared by the sensors' poke path and the deferrable trigger (which runs the same scan in a thread),
so both hand out exactly the same batch. No Airflow import.
"""

from __future__ import annotations

import fnmatch
import logging
import re
import time
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from matting import layout
from matting.storage import FileInfo, Ledger, Storage
from matting.storage.atomic import is_temp_name

log = logging.getLogger("matting.pipeline.detection")

DEFAULT_EXCLUDE = tuple(f"{name}/*" for name in layout.SOURCE_RESERVED)


@dataclass(frozen=True)
class ScanOptions:
    include: tuple[str, ...] = ("*",)  # globs on the relative path or the file name
    exclude: tuple[str, ...] = DEFAULT_EXCLUDE
    regex: str | None = None  # optional extra filter on the relative path
    recursive: bool = True
    settle_seconds: float = 10.0  # size and mtime must stay unchanged this long (0: trust listing)
    max_files: int = 100
    images_only: bool = True  # by extension here; content is checked when decoding

    @classmethod
    def from_dict(cls, d: dict) -> ScanOptions:
        d = dict(d)
        for key in ("include", "exclude"):
            if key in d and d[key] is not None:
                d[key] = (d[key],) if isinstance(d[key], str) else tuple(d[key])
        return cls(**d)

    def to_dict(self) -> dict:
        return {
            "include": list(self.include),
            "exclude": list(self.exclude),
            "regex": self.regex,
            "recursive": self.recursive,
            "settle_seconds": self.settle_seconds,
            "max_files": self.max_files,
            "images_only": self.images_only,
        }


@dataclass
class ScanResult:
    new: list[FileInfo] = field(default_factory=list)
    unsettled: list[str] = field(default_factory=list)
    processed: int = 0
    ignored: int = 0
    more: int = 0  # new files beyond max_files, left for the next batch

    def summary(self) -> str:
        return (
            f"new={len(self.new)} unsettled={len(self.unsettled)} already-processed={self.processed} "
            f"ignored={self.ignored} waiting-beyond-max_files={self.more}"
        )

    def to_xcom(self) -> list[dict]:
        return [f.to_dict() for f in self.new]


def _match(path: str, patterns: tuple[str, ...]) -> bool:
    name = path.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatchcase(path, p) or fnmatch.fnmatchcase(name, p) for p in patterns)


def wanted(info: FileInfo, opts: ScanOptions) -> bool:
    """Passes the include/exclude/regex filters and is not a temp, hidden or non-image name."""
    parts = info.path.split("/")
    if any(is_temp_name(p) for p in parts):
        return False
    if opts.images_only and ("." + parts[-1].rsplit(".", 1)[-1].lower()) not in layout.IMAGE_EXTENSIONS:
        return False
    if opts.exclude and _match(info.path, opts.exclude):
        return False
    if not _match(info.path, opts.include):
        return False
    return not (opts.regex and not re.search(opts.regex, info.path))


def pruned_dirs(exclude: tuple[str, ...]) -> tuple[str, ...]:
    """Top-level folders an exclude pattern rules out whole (``processed/*``): never walked, so a
    poke's cost does not grow with everything ever processed."""
    return tuple(p[:-2] for p in exclude if p.endswith("/*") and not any(c in p[:-2] for c in "*?[/"))


def scan(
    storage: Storage,
    opts: ScanOptions,
    processed_ids: AbstractSet[str] = frozenset(),
    sleep: Callable[[float], None] = time.sleep,
) -> ScanResult:
    """List, filter, drop already-processed versions (ledger ids), then keep only settled files."""
    result = ScanResult()
    candidates = []
    skip = pruned_dirs(opts.exclude)
    for info in storage.list(opts.recursive, skip_dirs=skip):
        if not wanted(info, opts):
            result.ignored += 1
        elif info.version_id in processed_ids:
            result.processed += 1
        else:
            candidates.append(info)
    if candidates and opts.settle_seconds > 0:
        sleep(opts.settle_seconds)
        again = {f.path: f for f in storage.list(opts.recursive, skip_dirs=skip)}
        settled = []
        for info in candidates:
            if again.get(info.path) == info:
                settled.append(info)
            else:
                result.unsettled.append(info.path)
        candidates = settled
    candidates.sort(key=lambda f: (f.mtime or 0.0, f.path))
    result.new, result.more = candidates[: opts.max_files], max(0, len(candidates) - opts.max_files)
    return result


class NewFilesCheck:
    """Checks of one location, as the sensor's poke and the trigger's loop run them. The connection
    (and the ledger's) is opened on the first check and kept for the next ones; a failed check
    drops it, so the next check reconnects. ``close()`` when done."""

    def __init__(
        self,
        location: str,
        conn_id: str | None,
        opts: ScanOptions,
        ledger_location: str | None = None,
        ledger_conn_id: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.location, self.conn_id, self.opts = location, conn_id, opts
        self.ledger_location, self.ledger_conn_id = ledger_location, ledger_conn_id
        self.sleep = sleep
        self._storage: Storage | None = None
        self._ledger: Ledger | None = None

    def __call__(self) -> tuple[ScanResult, str]:
        """(result, where) of one check."""
        from matting.storage import open_storage

        try:
            if self._storage is None:
                self._storage = open_storage(self.location, self.conn_id)
            ids: AbstractSet[str] = frozenset()
            if self.ledger_location:
                if self._ledger is None:
                    self._ledger = Ledger(open_storage(self.ledger_location, self.ledger_conn_id or None))
                ids = self._ledger.ids()
            return scan(self._storage, self.opts, ids, self.sleep), self._storage.describe()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        for storage in (self._storage, self._ledger and self._ledger.storage):
            if storage is not None:
                try:
                    storage.close()
                except Exception as exc:  # closing a broken connection: nothing left to save
                    log.debug("closing %s: %s", storage.describe(), exc)
        self._storage = self._ledger = None

    def __enter__(self) -> NewFilesCheck:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def check_for_new_files(
    location: str,
    conn_id: str | None,
    opts: ScanOptions,
    ledger_location: str | None = None,
    ledger_conn_id: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[ScanResult, str]:
    """One check with its own connection (a sensor's poke): (result, where)."""
    with NewFilesCheck(location, conn_id, opts, ledger_location, ledger_conn_id, sleep) as check:
        return check()


def ledger_ids(location: str, conn_id: str | None = None) -> AbstractSet[str]:
    """The versions the ledger at a destination has settled (empty when no destination is named)."""
    from matting.storage import open_storage

    if not location:
        return frozenset()
    with open_storage(location, conn_id or None) as storage:
        return Ledger(storage).ids()
