"""One batch of a pipeline run, between two Storages: read -> matte -> write outputs -> record ->
move the original to processed/ (or quarantine/ with an .error.json). No Airflow import: the
operators (next step) call this.

Nothing is lost, nothing is done twice. Per input, in this order: the output is written (atomic),
then the input's record (atomic), then the original is moved. A retry after a crash anywhere finds
the record and only finishes the move; an output without a record is simply rewritten under the
same name; an input that vanished without a record is reported, never silently skipped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import posixpath
from collections.abc import Iterator
from dataclasses import asdict, dataclass

from matting.detection import Ledger
from matting.engine.core import Engine, ImageResult, OutputOptions
from matting.manifest import FileRecord, RunManifest, utc_now
from matting.naming import plan_outputs
from matting.progress import BatchProgress
from matting.storage import FileInfo, Storage

log = logging.getLogger("matting.pipeline")


@dataclass(frozen=True)
class BatchConfig:
    run_prefix: str  # where this run's outputs, records and manifest go in the destination
    processed_dir: str = "processed"
    quarantine_dir: str = "quarantine"
    move_originals: bool = True  # False for read-only sources: keep them, record them in the ledger
    chunk_size: int = 16  # images in flight per engine batch; memory stays flat whatever the batch

    @property
    def records_dir(self) -> str:
        return f"{self.run_prefix}/records"

    @property
    def outputs_dir(self) -> str:
        return f"{self.run_prefix}/outputs"


class MattingJob:
    """Background removal with one engine and output options."""

    kind = "matting"

    def __init__(self, engine: Engine, out: OutputOptions) -> None:
        self.engine, self.out = engine, out

    def describe(self) -> dict:
        return {
            "kind": self.kind,
            "model": self.engine.spec.name,
            "model_sha256": self.engine.model_sha256,
            "providers": self.engine.providers,
            "scenario": self.engine.scenario.name,
            "output": asdict(self.out),
        }


def _chunks(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), max(1, size)):
        yield items[i : i + size]


class BatchRunner:
    def __init__(self, source: Storage, dest: Storage, job: MattingJob, cfg: BatchConfig) -> None:
        self.source, self.dest, self.job, self.cfg = source, dest, job, cfg
        self.ledger = None if cfg.move_originals else Ledger(dest)

    def _record_path(self, info: FileInfo) -> str:
        rec = FileRecord(source=info.path, source_size=info.size, source_version=info.version)
        return f"{self.cfg.records_dir}/{rec.record_name}"

    def _target(self, rec: FileRecord) -> str | None:
        """Where the original goes: processed/ when ok, quarantine/ when not; None when kept."""
        if not self.cfg.move_originals:
            return None
        return posixpath.join(self.cfg.processed_dir if rec.status == "ok" else self.cfg.quarantine_dir, rec.source)

    def _move_original(self, rec: FileRecord) -> None:
        """Idempotent: moves only if the original is still in the incoming root."""
        if rec.moved_to and self.source.exists(rec.source):
            self.source.move(rec.source, rec.moved_to)

    def _quarantine_note(self, rec: FileRecord, data: bytes | None) -> None:
        note = json.dumps(
            {"source": rec.source, "error_type": rec.error_type, "error": rec.error, "at": rec.finished_at}, indent=1
        ).encode()
        where = self.source if self.cfg.move_originals else self.dest
        where.write(posixpath.join(self.cfg.quarantine_dir, rec.source) + ".error.json", note)
        if not self.cfg.move_originals and data is not None:  # read-only source: keep a copy with the note
            self.dest.write(posixpath.join(self.cfg.quarantine_dir, rec.source), data)

    def _finish(self, info: FileInfo, rec: FileRecord, data: bytes | None) -> FileRecord:
        rec.finished_at = utc_now()
        if rec.status != "ok":
            self._quarantine_note(rec, data)
        rec.moved_to = self._target(rec)
        self.dest.write(self._record_path(info), rec.to_json())  # record first: a retry knows it is done
        self._move_original(rec)
        return rec

    def run(self, files: list[FileInfo], progress: BatchProgress | None = None) -> list[FileRecord]:
        records: list[FileRecord] = []
        todo: list[FileInfo] = []
        for info in files:
            path = self._record_path(info)
            if self.dest.exists(path):  # done by an earlier attempt: finish its move, never redo it
                rec = FileRecord.from_json(self.dest.read(path))
                self._move_original(rec)
                records.append(rec)
                log.info("already done %s (%s)", info.path, rec.status)
            elif not self.source.exists(info.path):
                rec = FileRecord(
                    source=info.path,
                    source_size=info.size,
                    source_version=info.version,
                    status="failed",
                    error_type="vanished",
                    error=f"{info.path}: gone from the source before it was processed",
                )
                rec.finished_at = utc_now()
                self.dest.write(path, rec.to_json())
                records.append(rec)
                log.warning("vanished %s: no record of it and no longer in the source", info.path)
            else:
                todo.append(info)
        plan = plan_outputs([f.path for f in todo], self.job.out.extension)
        for chunk in _chunks(todo, self.cfg.chunk_size):
            records.extend(self._run_chunk(chunk, plan, progress))
            if self.ledger is not None:
                self.ledger.record(chunk)
        return records

    def _run_chunk(self, chunk: list[FileInfo], plan: dict[str, str], progress) -> list[FileRecord]:
        by_path = {f.path: f for f in chunk}
        payloads: dict[str, bytes] = {}

        def loader(rel: str):
            def load() -> bytes:
                data = self.source.read(rel)
                payloads[rel] = data
                return data

            return load

        def sink(name: str, data: bytes, _out) -> str:
            rel = posixpath.join(self.cfg.outputs_dir, plan[name])
            self.dest.write(rel, data)
            return rel

        out: list[FileRecord] = []
        results: Iterator[ImageResult] = self.job.engine.run_batch(
            [(f.path, loader(f.path)) for f in chunk], self.job.out, sink=sink
        )
        for result in results:
            info = by_path[result.source]
            data = payloads.pop(result.source, None)
            rec = FileRecord(
                source=info.path,
                source_size=info.size,
                source_version=info.version,
                source_sha256=hashlib.sha256(data).hexdigest() if data is not None else None,
                status="ok" if result.ok else "failed",
                outputs=[result.output] if result.output else [],
                error_type=result.error_type,
                error=result.error,
                timings_ms=result.timings_ms,
                width=result.width,
                height=result.height,
            )
            out.append(self._finish(info, rec, data))
            if progress is not None:
                progress.add(result)
        return out


def write_manifest(dest: Storage, cfg: BatchConfig, manifest: RunManifest, name: str = "manifest") -> str:
    manifest.counts = {
        "files": len(manifest.files),
        "ok": sum(1 for r in manifest.files if r.status == "ok"),
        "failed": sum(1 for r in manifest.files if r.status != "ok"),
    }
    manifest.finished_at = utc_now()
    path = f"{cfg.run_prefix}/{name}.json"
    dest.write(path, manifest.to_json())
    return path
