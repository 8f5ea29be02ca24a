"""Which versions a source that keeps its files has already settled: one marker object per version."""

from __future__ import annotations

import json
import time

from matting.storage.base import FileInfo, Storage


class Ledger:
    """Versions already settled from a source that keeps its files (read-only, or one that refused
    a move), kept at the destination as one small marker object per version (``_ledger/<id>.json``):
    concurrent mapped tasks each write their own markers, so none can lose another's. A file
    replaced under the same name has a new version, so it counts as new."""

    def __init__(self, storage: Storage, folder: str = "_ledger") -> None:
        self.storage, self.folder = storage, folder

    def ids(self) -> set[str]:
        return {f.path[: -len(".json")] for f in self.storage.sub(self.folder).list() if f.path.endswith(".json")}

    def mark(self, info: FileInfo, status: str = "ok", run_id: str = "") -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        doc = {"source": info.path, "size": info.size, "version": info.version, "status": status, "at": stamp}
        if run_id:
            doc["run_id"] = run_id
        self.storage.write(f"{self.folder}/{info.version_id}.json", json.dumps(doc).encode())

    def record(self, infos: list[FileInfo], run_id: str = "") -> None:
        for info in infos:
            self.mark(info, run_id=run_id)
