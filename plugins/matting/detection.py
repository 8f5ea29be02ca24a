"""New-file detection over any Storage: filters, temp names, settling, already-processed files.

Shared by the sensors' poke path and the deferrable trigger (which runs the same scan in a thread),
so both hand out exactly the same batch. No Airflow import.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from matting.atomic import is_temp_name
from matting.images import IMAGE_EXTENSIONS
from matting.storage import FileInfo, Storage

log = logging.getLogger("matting.detection")

DEFAULT_EXCLUDE = ("processed/*", "quarantine/*", "review/*", "_ledger/*")


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
    if opts.images_only and ("." + parts[-1].rsplit(".", 1)[-1].lower()) not in IMAGE_EXTENSIONS:
        return False
    if opts.exclude and _match(info.path, opts.exclude):
        return False
    if not _match(info.path, opts.include):
        return False
    return not (opts.regex and not re.search(opts.regex, info.path))


def scan(
    storage: Storage,
    opts: ScanOptions,
    processed_keys: set[str] | frozenset[str] = frozenset(),
    sleep: Callable[[float], None] = time.sleep,
) -> ScanResult:
    """List, filter, drop already-processed files, then keep only files that have settled."""
    result = ScanResult()
    candidates = []
    for info in storage.list(opts.recursive):
        if not wanted(info, opts):
            result.ignored += 1
        elif info.ledger_key in processed_keys:
            result.processed += 1
        else:
            candidates.append(info)
    if candidates and opts.settle_seconds > 0:
        sleep(opts.settle_seconds)
        again = {f.path: f for f in storage.list(opts.recursive)}
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


class Ledger:
    """Files already processed from a read-only source, kept as JSON at the destination.

    Keyed by path + size + version (ETag or size-mtime), so a file replaced under the same name
    counts as new. Written atomically through the destination Storage."""

    def __init__(self, storage: Storage, path: str = "_ledger/processed.json") -> None:
        self.storage, self.path = storage, path

    def keys(self) -> set[str]:
        if not self.storage.exists(self.path):
            return set()
        return set(json.loads(self.storage.read(self.path)).get("entries", {}))

    def record(self, infos: list[FileInfo], run_id: str = "") -> None:
        entries: dict = {}
        if self.storage.exists(self.path):
            entries = json.loads(self.storage.read(self.path)).get("entries", {})
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        for info in infos:
            entries[info.ledger_key] = {"processed_at": stamp, "run_id": run_id}
        self.storage.write(self.path, json.dumps({"version": 1, "entries": entries}, indent=1).encode())


def check_for_new_files(
    location: str,
    conn_id: str | None,
    opts: ScanOptions,
    ledger_location: str | None = None,
    ledger_conn_id: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[ScanResult, str]:
    """One check, as the sensor's poke and the trigger's loop both run it: (result, where)."""
    from matting.storage import open_storage

    storage = open_storage(location, conn_id)
    try:
        keys = Ledger(open_storage(ledger_location, ledger_conn_id)).keys() if ledger_location else set()
        return scan(storage, opts, keys, sleep), storage.describe()
    finally:
        close = getattr(storage, "close", None)
        if close:
            close()
