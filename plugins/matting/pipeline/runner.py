"""The batch runner: one batch of a run between two Storages, for every job (background removal, ID
photos; ``matting.pipeline.jobs``), in Airflow and in the CLI. The job makes each photo's outputs; the
runner does the rest, once: in-task rounds and the breaker, refusing what is too large, leaving what
changed or is still uploading, recording each input and moving its original to processed/ (or
quarantine/ with an .error.json), or keeping it (ledger), or leaving it alone (``originals``). No
Airflow import.

Nothing is lost, nothing is done twice:
- Per input, in this order: the output is written (atomic), then the input's record (atomic, it
  names where the original goes), then the original is moved. A retry finds the record and only
  finishes the move; an output without a record is rewritten under the same planned name.
- Only content errors (``ImageError``: not an image, truncated, too large, ...) quarantine a file.
  Infrastructure errors (storage, network, disk full, ONNX Runtime, out of memory) are retried in the
  task with backoff; what still fails makes the task fail (``InfrastructureError``) so that Airflow
  retries it, with those originals untouched and nothing quarantined.
- Identity is the version seen at detection (size+mtime, or the ETag): a file re-uploaded under the
  same name is a new file, never moved or recorded as the old one.
- Nothing in processed/, quarantine/ or the outputs is ever overwritten: a taken name gets a
  deterministic suffix from the file's version (``a~1f2e3d4c.jpg``).
- Names fit the storage they are written to (``matting.pipeline.naming``, ``Storage.name_limits()``): outputs
  are planned portable and short enough for the destination, originals' new names for the source. A
  name a storage still refuses (``UnwritableName``) is the photo's problem: it is quarantined with that
  reason, never retried as an outage.
- A source that refuses moves (read-only account) keeps its originals; the destination's ledger
  remembers each settled version so that no later run reprocesses it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import posixpath
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

from matting import layout, settings
from matting.errors import FileTooLarge, InfrastructureError, SourceChanged, UnwritableName, retry_in_task
from matting.images import could_become_image
from matting.pipeline.jobs import Done, Job, Outputs, Photo
from matting.pipeline.manifest import FileRecord, RunManifest, run_counts, utc_now
from matting.pipeline.naming import (
    NOTE_SUFFIX,
    fallback_name,
    plan_outputs,
    portable_path,
    unique_name,
    versioned_name,
)
from matting.pipeline.progress import BatchProgress
from matting.pipeline.reuse import CachingJob, ResultCache
from matting.storage import FileInfo, Ledger, Storage

log = logging.getLogger("matting.pipeline.runner")

BREAKER = 3
"""Photos in a row that hit infrastructure errors before an attempt stops: the storage is down, and
every further photo would cost the full retry budget of the storage client for nothing. The rest
of the attempt is left untouched for the next round (or Airflow's retry)."""

Originals = Literal["move", "keep", "leave"]


@dataclass(frozen=True)
class BatchConfig:
    run_prefix: str  # where this run's outputs, records and manifest go in the destination
    processed_dir: str = layout.PROCESSED
    quarantine_dir: str = layout.QUARANTINE
    move_originals: bool = True  # False for read-only sources: keep them, record them in the ledger
    chunk_size: int = 16  # images in flight per engine batch; memory stays flat whatever the batch
    max_bytes: int | None = None  # None: [matting] max_bytes
    attempts: int | None = None  # in-task attempts for infrastructure errors; None: [matting] io_attempts
    reuse: bool | None = None  # the result cache (matting.pipeline.reuse); None: [matting] reuse
    # what becomes of an original once its photo is settled: "move" (processed/, quarantine/) or "keep"
    # (the ledger remembers it) with a record per input; "leave": no record, no move (ID photos, the CLI)
    originals: Originals | None = None  # None: "move", or "keep" with move_originals=False
    outputs: str | None = None  # the outputs' folder in the destination; None: <run_prefix>/outputs
    breaker: int | None = BREAKER  # infrastructure failures in a row that stop an attempt; None: never (CLI)

    @property
    def records_dir(self) -> str:
        return f"{self.run_prefix}/{layout.RECORDS}"

    @property
    def outputs_dir(self) -> str:
        return self.outputs if self.outputs is not None else f"{self.run_prefix}/{layout.OUTPUTS}"

    @property
    def settle(self) -> Originals:
        return self.originals or ("move" if self.move_originals else "keep")


def backoff_s(attempt: int) -> float:
    """Seconds to wait before in-task attempt ``attempt + 1``: ``[matting] io_backoff_s`` x 2^(n-1)."""
    return settings.value("io_backoff_s") * 2 ** (attempt - 1)


def _chunks(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), max(1, size)):
        yield items[i : i + size]


class RoundErrors(dict):
    """{path: why} for the items of one in-task round that hit infrastructure errors, and which of
    them another round cannot help (``final``): permanent errors (``errors.is_permanent``), and S3
    errors botocore already retried ``[matting] s3_max_attempts`` times before raising them."""

    def __init__(self) -> None:
        super().__init__()
        self.final: set[str] = set()

    def add(self, path: str, why: str, retry_in_task: bool = True) -> None:
        self[path] = why
        if not retry_in_task:
            self.final.add(path)

    def add_exception(self, path: str, exc: BaseException) -> None:
        self.add(path, _why(exc), retry_in_task(exc))


def attempt_rounds(
    items: list,
    attempt: Callable[[list], dict[str, str]],
    attempts: int,
    sleep: Callable[[float], None] = time.sleep,
    what: str = "file(s)",
) -> tuple[list, dict[str, str]]:
    """In-task retries for infrastructure errors: ``attempt(pending)`` returns {path: why} for the items
    that failed (a ``RoundErrors`` says which of them not to retry); the others are tried again after
    ``backoff_s`` up to ``attempts`` rounds. Returns the items still failing and why (empty when
    all went through)."""
    todo, errors, final = list(items), {}, []
    for n in range(1, attempts + 1):
        found = attempt(todo)
        for item in todo:
            errors.pop(item.path, None)
        errors.update(found)
        no_retry = getattr(found, "final", set())
        failed = [item for item in todo if item.path in found]
        final += [item for item in failed if item.path in no_retry]
        todo = [item for item in failed if item.path not in no_retry]
        if not todo:
            break
        if n < attempts:
            wait = backoff_s(n)
            log.warning(
                "%d %s hit infrastructure errors (attempt %d/%d), retrying in %.1fs: %s",
                len(todo),
                what,
                n,
                attempts,
                wait,
                "; ".join(errors[item.path] for item in todo[:3]),
            )
            sleep(wait)
    left = {item.path for item in final + todo}
    return [item for item in items if item.path in left], errors


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class BatchRunner:
    """Runs one batch of ``job``; ``records`` (one per input) and ``reports`` (where the job writes
    them) hold every input settled so far, also when ``run`` raises."""

    INCOMPLETE = frozenset({"empty_file", "truncated_image", "not_an_image", "corrupt_image"})

    def __init__(
        self,
        source: Storage,
        dest: Storage,
        job: Job,
        cfg: BatchConfig,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.source, self.dest, self.cfg = source, dest, cfg
        self.ledger = Ledger(dest)
        self.sleep = sleep
        self.max_bytes = cfg.max_bytes if cfg.max_bytes is not None else settings.value("max_bytes")
        self.attempts = cfg.attempts if cfg.attempts is not None else settings.value("io_attempts")
        self.grace_s = settings.value("upload_grace_s")
        self.records: list[FileRecord] = []
        self.reports: list[dict] = []
        self.left_for_next_run: list[str] = []  # changed since detection, or maybe still uploading: untouched
        reuse = cfg.reuse if cfg.reuse is not None else settings.value("reuse")
        if reuse and job.cacheable:
            cache = ResultCache(dest, settings.value("reuse_max_age_days") * 86400)
            job = CachingJob(job, cache, cfg.run_prefix)
        self.job = job

    @property
    def reused(self) -> int:
        """Photos whose output was copied from the result cache."""
        return getattr(self.job, "reused", 0)

    def _record_path(self, info: FileInfo) -> str:
        return f"{self.cfg.records_dir}/{info.version_id}.json"

    # --- the batch ---------------------------------------------------------------------------------

    def run(
        self,
        files: list[FileInfo],
        progress: BatchProgress | None = None,
        stems: dict[str, str] | None = None,
        names: dict[str, str] | None = None,
    ) -> list[FileRecord]:
        """Settle every file of the batch. ``stems`` (source path -> output stem) are the names planned
        once over the whole run (``matting.pipeline.naming``), so mapped batches never collide; a file
        without one is planned here, around them; every name fits the destination under the outputs'
        folder. ``names`` (source path -> output name) replaces the planning (the CLI plans its own)."""
        if names is None:
            under = posixpath.join(self.cfg.outputs_dir, self.job.deepest).strip("/")
            names = plan_outputs(
                [f.path for f in files], self.job.extension, fixed=stems, limits=self.dest.name_limits(), under=under
            )
        outputs = Outputs(self.dest, self.cfg.outputs_dir, names)
        pending, errors = attempt_rounds(
            files, lambda todo: self._pass(todo, outputs, progress), self.attempts, self.sleep, self.job.noun
        )
        if self.ledger.marked:
            try:  # housekeeping: the photos are settled whether or not it succeeds now
                self.ledger.fold()
            except Exception as exc:
                log.warning("could not fold the ledger at %s (%s); a later run will", self.dest.describe(), exc)
        if pending:
            kept = "originals left in place, nothing quarantined" if self.cfg.settle != "leave" else "nothing written"
            raise InfrastructureError(
                f"{len(pending)} {self.job.noun} not processed after {self.attempts} attempt(s); {kept}: "
                + "; ".join(f"{f.path}: {errors[f.path]}" for f in pending[:5])
            )
        return self.records

    def _pass(self, files: list[FileInfo], outputs: Outputs, progress) -> dict[str, str]:
        """One attempt over ``files``; returns {path: why} for those that hit infrastructure errors."""
        errors = RoundErrors()
        self._streak, self._down = 0, None
        todo: list[FileInfo] = []
        for info in files:
            try:
                rec = self._existing_record(info)
                if rec is not None:  # settled by an earlier attempt: finish its move, never redo it
                    self._settle_original(info, rec)
                    self._done(rec, "already done")
                elif info.size > self.max_bytes:
                    self._settle(info, self._refused_too_large(info, outputs), None, progress, outputs)
                else:
                    todo.append(info)
            except Exception as exc:  # storage trouble: this file waits for the next attempt
                errors.add_exception(info.path, exc)
        for chunk in _chunks(todo, self.cfg.chunk_size):
            if self._down is not None:  # the storage is down: leave the rest untouched, fail sooner
                self._leave_untouched(chunk, errors)
                continue
            self._run_chunk(chunk, outputs, errors, progress)
        return errors

    def _existing_record(self, info: FileInfo) -> FileRecord | None:
        if self.cfg.settle == "leave":
            return None
        path = self._record_path(info)
        return FileRecord.from_json(self.dest.read(path)) if self.dest.exists(path) else None

    def _done(self, rec: FileRecord, how: str, report: dict | None = None) -> None:
        self.records.append(rec)
        if report is not None:
            self.reports.append(report)
        if how:
            log.info("%s %s (%s)", how, rec.source, rec.status)

    def _refused_too_large(self, info: FileInfo, outputs: Outputs) -> Done:
        err = FileTooLarge(
            f"{info.path}: {info.size / 1e6:.1f} MB exceeds the limit of {self.max_bytes / 1e6:.1f} MB "
            "(set [matting] max_bytes to raise it); not read"
        )
        log.warning("refused %s", err)
        return self.job.refused(info.path, err, outputs)

    def _run_chunk(self, chunk: list[FileInfo], outputs: Outputs, errors: RoundErrors, progress) -> None:
        """Run the job over ``chunk`` and settle each photo as its result comes in."""
        by_path = {f.path: f for f in chunk}
        payloads: dict[str, bytes] = {}  # each input's bytes, from when the job read them to its settling

        def loader(info: FileInfo) -> Callable[[], bytes]:
            def load() -> bytes:
                data = self.source.read(info.path, expect=info)  # only the version that was detected
                payloads[info.path] = data
                return data

            return load

        seen: set[str] = set()
        results = self.job.run([Photo(f, loader(f)) for f in chunk], outputs)
        try:
            for done in results:
                info = by_path[done.result.source]
                seen.add(info.path)
                if not self._settle_result(info, done, payloads.pop(info.path, None), errors, progress, outputs):
                    break  # the storage is down: no more requests to it
        finally:
            results.close()
        unseen = [rest for rest in chunk if rest.path not in seen]
        if self._down is not None:
            self._leave_untouched(unseen, errors)
        else:  # a job that ended without a photo's result: that photo is not done, it is retried
            for info in unseen:
                errors.add(info.path, "not processed: the job gave no result for it")

    def _settle_result(
        self, info: FileInfo, done: Done, data: bytes | None, errors: RoundErrors, progress, outputs: Outputs
    ) -> bool:
        """Settle one photo's result; False when the job should stop: its own work hit the breaker (the
        storage is down; the rest of the chunk is left untouched)."""
        result = done.result
        if result.retryable:
            errors.add(info.path, result.error or "infrastructure error", result.retry_in_task)
            return not self._failed_in_a_row(result.error, result.retry_in_task)
        if result.error_type == SourceChanged.code:
            log.warning("left for the next run: %s", result.error)
            self.left_for_next_run.append(info.path)
            self._streak = 0
            return True
        if self._maybe_still_uploading(info, result, data):
            age = time.time() - (info.mtime or 0)
            log.warning(
                "left for the next run: %s looks incomplete (%s) and changed %.0fs ago: it may still be uploading",
                info.path,
                result.error_type,
                age,
            )
            self.left_for_next_run.append(info.path)
            self._streak = 0
            return True
        try:
            self._settle(info, done, data, progress, outputs)
        except Exception as exc:
            errors.add_exception(info.path, exc)
            down = self._failed_in_a_row(_why(exc), retry_in_task(exc))  # the chunks after this one are left
            # photos the job has made already (written by the engine's pipeline) are settled one by one;
            # a job whose files the runner writes (ID photos) stops: the next photo's work would be lost
            return not (down and done.files)
        self._streak = 0  # settled: the storage works
        return True

    def _failed_in_a_row(self, why: str | None, retry: bool) -> bool:
        """Count one more infrastructure failure in a row; True once ``BREAKER`` are: the storage is
        down, and the rest of this attempt is to be left untouched (``_leave_untouched``)."""
        self._streak += 1
        limit = self.cfg.breaker
        if limit and self._streak >= limit and self._down is None:
            self._down = (f"not tried: {limit} photos in a row hit infrastructure errors ({why})", retry)
            log.warning("%s; the rest of this attempt is left untouched", self._down[0])
        return self._down is not None

    def _leave_untouched(self, infos: list[FileInfo], errors: RoundErrors) -> None:
        why, retry = self._down
        for info in infos:
            errors.add(info.path, why, retry_in_task=retry)

    def _maybe_still_uploading(self, info: FileInfo, result, data: bytes | None) -> bool:
        """Filesystems show a file while it is written (S3 never does): a fresh, incomplete-looking
        file gets the benefit of the doubt until it is ``[matting] upload_grace_s`` old, unless its first
        bytes can never start an image (a text file named .jpg is quarantined at once)."""
        if result.ok or result.error_type not in self.INCOMPLETE or info.mtime is None:
            return False
        if not self.source.shows_partial_writes:
            return False
        if data is not None and not could_become_image(data[:32], info.path):
            return False
        return time.time() - info.mtime < self.grace_s

    # --- settling one file -------------------------------------------------------------------------

    def _write_files(self, info: FileInfo, done: Done, outputs: Outputs) -> Done:
        """The files a job left to write (ID photos: photo, report, sheet). A name the destination cannot
        hold refuses the photo (what was written is removed again; the manifest says why); any other
        failure is the destination's: it propagates, and the photo is retried like any storage trouble."""
        written: list[str] = []
        try:
            for rel, blob in done.files.items():
                outputs.write(rel, blob)
                written.append(rel)
        except UnwritableName as exc:
            log.warning("refused %s: %s", info.path, exc)
            for rel in written:
                outputs.delete(rel)
            refusal = self.job.refused(info.path, exc, outputs)
            return Done(refusal.result, refusal.report)  # its report's name would not fit either
        except Exception as exc:
            log.warning("writing %s failed: %s: %s", info.path, type(exc).__name__, exc)
            raise
        return done

    def _settle(self, info: FileInfo, done: Done, data: bytes | None, progress, outputs: Outputs) -> None:
        """The photo's files (where the job left them to write), its record, then its original: the
        record is written first (with where the original goes), then the original moved, so a retry knows
        it is done. With ``originals="leave"`` only the manifest remembers the photo."""
        if done.files:
            done = self._write_files(info, done, outputs)
        result = done.result
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
            reused_from=result.reused_from,
            model=result.model,
        )
        rec.finished_at = utc_now()
        if self.cfg.settle != "leave":
            if self.cfg.settle == "move" and rec.error_type != "vanished":
                base = self.cfg.processed_dir if rec.status == "ok" else self.cfg.quarantine_dir
                rec.moved_to = unique_name(self.source, posixpath.join(base, info.path), info, self._note_room(rec))
            self.dest.write(self._record_path(info), rec.to_json())
            self._settle_original(info, rec, data)
        self._done(rec, "", done.report)
        if progress is not None:
            progress.add(result)

    def _settle_original(self, info: FileInfo, rec: FileRecord, data: bytes | None = None) -> None:
        """Move the original where its record says (idempotent), or keep it and mark it in the ledger."""
        if rec.error_type == "vanished":
            return
        if rec.moved_to is None:
            self._keep_in_source(info, rec, data)
            return
        limits, room = self.source.name_limits(), self._note_room(rec)
        while True:
            try:
                self.source.move(info.path, rec.moved_to, expect=info)
                break
            except UnwritableName as exc:  # the source refuses even the fitted name: a short one of its own
                base = self.cfg.processed_dir if rec.status == "ok" else self.cfg.quarantine_dir
                short = fallback_name(base, info.path, info)
                if rec.moved_to in (short, versioned_name(short, info)):
                    raise
                log.warning("cannot move %s to %s (%s): moving it to %s", info.path, rec.moved_to, exc, short)
                rec.moved_to = short
                self.dest.write(self._record_path(info), rec.to_json())
            except FileNotFoundError:  # moved by an earlier attempt, or deleted by someone
                if not self.source.exists(rec.moved_to):
                    log.warning("%s vanished from the source before its move to %s", info.path, rec.moved_to)
                    return
                break
            except SourceChanged as exc:  # re-uploaded under the same name: the new file is a new input
                log.warning("not moving %s: %s", info.path, exc)
                return
            except FileExistsError:  # taken since the record was written: this version's own name
                suffixed = versioned_name(rec.moved_to, info, limits, room)
                if rec.moved_to == suffixed:
                    raise
                rec.moved_to = suffixed
                self.dest.write(self._record_path(info), rec.to_json())
            except PermissionError as exc:  # a read-only source: keep the original, remember this version
                log.warning(
                    "cannot move %s on %s (%s): kept in place and marked in the ledger",
                    info.path,
                    self.source.describe(),
                    exc,
                )
                rec.moved_to = None
                rec.kept_reason = f"source refused the move: {exc}"
                self.dest.write(self._record_path(info), rec.to_json())
                self._keep_in_source(info, rec, data)
                return
        if rec.status != "ok":
            note = rec.moved_to + NOTE_SUFFIX
            if not self.source.exists(note):
                self.source.write(note, self._note(rec))

    @staticmethod
    def _note_room(rec: FileRecord) -> int:
        """What an original's new name leaves room for: a quarantined one's note beside it."""
        return 0 if rec.status == "ok" else len(NOTE_SUFFIX)

    def _keep_in_source(self, info: FileInfo, rec: FileRecord, data: bytes | None) -> None:
        """Read-only source: a failed file's copy and note go to the destination's quarantine/, under a
        name the destination can hold (the record keeps the original's)."""
        if rec.status != "ok":
            limits, qdir, room = self.dest.name_limits(), self.cfg.quarantine_dir, len(NOTE_SUFFIX)
            base = posixpath.join(qdir, portable_path(info.path, limits, room, under=qdir))
            for copy in (base, versioned_name(base, info, limits, room)):
                note = copy + NOTE_SUFFIX
                if self.dest.exists(note):
                    if json.loads(self.dest.read(note)).get("source_version") == info.version:
                        break  # written by an earlier attempt
                    continue  # another version's: never overwritten
                if data is None and rec.error_type != FileTooLarge.code:
                    try:
                        data = self.source.read(info.path, expect=info)
                    except (FileNotFoundError, SourceChanged):
                        data = None
                if data is not None:
                    self.dest.write(copy, data)
                self.dest.write(note, self._note(rec))
                break
        self.ledger.mark(info, rec.status)

    @staticmethod
    def _note(rec: FileRecord) -> bytes:
        doc = {
            "source": rec.source,
            "source_version": rec.source_version,
            "error_type": rec.error_type,
            "error": rec.error,
            "at": rec.finished_at,
        }
        return json.dumps(doc, indent=1).encode()


def write_manifest(dest: Storage, cfg: BatchConfig, manifest: RunManifest, name: str = "manifest") -> str:
    manifest.counts = run_counts(manifest.files)
    manifest.finished_at = utc_now()
    path = f"{cfg.run_prefix}/{name}.json"
    dest.write(path, manifest.to_json())
    return path
