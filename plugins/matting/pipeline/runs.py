"""One run of a job, the way every operator runs it: the batch with its in-task rounds, progress and
summary lines, and the manifest written on every way out, failures included. Pure core: the
operators turn an Airflow context into a ``RunInfo``, call ``remove_backgrounds`` or
``make_id_photos``, and hand the outcome to XCom.

``ConfigError`` (an option, a missing model or dependency) propagates: no retry can help, so the
operators fail the task with its message. An ``InfrastructureError`` (storage still failing after the
rounds) propagates too, after the manifest is written: Airflow retries the task.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from matting import layout, settings
from matting.errors import ConfigError, InfrastructureError, UnwritableName
from matting.pipeline.manifest import RunManifest, utc_now
from matting.pipeline.progress import BatchProgress
from matting.pipeline.runner import BatchConfig, BatchRunner, MattingJob, RoundErrors, attempt_rounds, write_manifest
from matting.results.index import publish_manifest
from matting.storage import FileInfo, Storage

if TYPE_CHECKING:
    from matting.engine import Engine
    from matting.idphoto.compose import IdPhotoOptions

log = logging.getLogger("matting.task")  # the per-image and progress lines of a task's log
T = TypeVar("T")


@dataclass(frozen=True)
class RunInfo:
    """What a run's manifest says about the run (from the Airflow context, or the CLI's own)."""

    run_prefix: str
    dag_id: str = ""
    run_id: str = ""
    params: dict = field(default_factory=dict)
    map_index: int = -1  # a mapped batch writes its own manifest part
    started_at: str = field(default_factory=utc_now)

    def manifest(self, job: dict) -> RunManifest:
        return RunManifest(
            dag_id=self.dag_id,
            run_id=self.run_id,
            params=dict(self.params),
            job=job,
            started_at=self.started_at,
            run_prefix=self.run_prefix,
        )


def _owner(folder: Storage) -> dict | None:
    """Who a run folder belongs to: its ``run.json``, else (folders from before it) its manifest."""
    for name in (layout.RUN_FILE, layout.MANIFEST):
        if folder.exists(name):
            try:
                doc = json.loads(folder.read(name))
            except ValueError:
                return {"dag_id": "?", "run_id": f"(unreadable {name})"}
            return {"dag_id": str(doc.get("dag_id") or ""), "run_id": str(doc.get("run_id") or "")}
    return None


def claim_run_folder(folder: Storage, run: RunInfo) -> None:
    """Make ``folder`` this run's, or refuse: a folder another DAG or run wrote (a run id reused by
    hand, a ``run_prefix`` shared by two DAGs) is never written into, so no run's records, manifest
    or outputs replace another's. Raises ``ConfigError`` (no retry can help). CLI runs (no DAG) claim
    nothing."""
    if not run.dag_id:
        return
    me = {"dag_id": run.dag_id, "run_id": run.run_id}
    owner = _owner(folder)
    if owner is None:
        folder.write(layout.RUN_FILE, json.dumps(me).encode())
        owner = _owner(folder)  # two claimers at once: the last write wins, the other one stops here
    if owner != me:
        raise ConfigError(
            f"{folder.describe()} belongs to DAG {owner['dag_id']!r} run {owner['run_id']!r}, not to DAG "
            f"{run.dag_id!r} run {run.run_id!r}: refusing to write into another run's folder (give this "
            "run its own run_prefix)"
        )


@dataclass
class RunOutcome:
    """What a run did, for its task's XCom and metrics (never image bytes)."""

    run_prefix: str
    manifest: str  # the manifest's path, relative to the destination the run wrote to
    counts: dict[str, int]  # the manifest's: what earlier tries of the task settled included
    progress: BatchProgress  # what this try did (the metrics count it, so a retry counts nothing twice)
    records: list = field(default_factory=list)  # background removal: one FileRecord per input
    reports: list[dict] = field(default_factory=list)  # ID photos: one report per portrait
    reused: int = 0

    def xcom(self) -> dict[str, Any]:
        return {"run_prefix": self.run_prefix, "manifest": self.manifest, **self.counts}


def _tracked(
    total: int, work: Callable[[BatchProgress], None], finish: Callable[[BatchProgress], T]
) -> tuple[BatchProgress, T]:
    """Run ``work`` with progress lines; on every way out log the summary and ``finish`` (write the
    manifest). Returns the progress and what ``finish`` returned (when ``work`` raised, it propagates)."""
    progress = BatchProgress(total=total, log=log, every_s=5.0)
    try:
        work(progress)
    finally:
        log.info(progress.summary())
        finished = finish(progress)
    return progress, finished


def remove_backgrounds(
    src: Storage,
    dest: Storage,
    job: MattingJob,
    files: list[FileInfo],
    run: RunInfo,
    cfg: BatchConfig,
    stems: dict[str, str] | None = None,
) -> RunOutcome:
    """One batch of background removal (``BatchRunner``): records, outputs and moves in ``dest``
    under ``run.run_prefix``, and this batch's manifest part (``ArchiveOperator`` merges the parts).
    ``stems`` are the output names planned for the whole run (``matting.pipeline.naming``)."""
    log.info(
        "batch of %d file(s) from %s to %s under %s/; model=%s providers=%s scenario=%s format=%s",
        len(files),
        src.describe(),
        dest.describe(),
        run.run_prefix,
        job.engine.model_label,
        ",".join(job.engine.providers),
        job.engine.scenario.name,
        job.out.format,
    )
    claim_run_folder(dest.sub(run.run_prefix), run)
    runner = BatchRunner(src, dest, job, cfg)
    manifest = run.manifest(job.describe())
    part = f"{layout.PARTS}/part-{max(run.map_index, 0):04d}"

    def finish(_: BatchProgress) -> str:  # also when the batch fails: what was settled is in the part
        manifest.files = runner.records
        path = write_manifest(dest, cfg, manifest, name=part)
        if runner.reused:
            log.info("%d of them reused from the result cache (same bytes, same settings)", runner.reused)
        if runner.left_for_next_run:
            log.warning(
                "%d file(s) changed since detection, left for the next run: %s",
                len(runner.left_for_next_run),
                ", ".join(runner.left_for_next_run[:10]),
            )
        return path

    progress, path = _tracked(len(files), lambda progress: runner.run(files, progress, stems=stems), finish)
    return RunOutcome(run.run_prefix, path, manifest.counts, progress, records=runner.records, reused=runner.reused)


def make_id_photos(
    src: Storage,
    dest: Storage,
    engine: Engine,
    options: IdPhotoOptions,
    files: list[FileInfo],
    run: RunInfo,
    sheet: str | None = None,
) -> RunOutcome:
    """ID photos of ``files`` into ``dest`` (the run's folder): photo, report (and print sheet) per
    portrait, refusals and held photos under ``review/``, and ``manifest.json``. A failing read or
    write is retried in later rounds like any storage trouble, never blamed on the photo; a name the
    destination cannot hold (``UnwritableName``) is the photo's refusal, recorded in the manifest."""
    from matting.idphoto.batch import process_portrait, refused
    from matting.pipeline.naming import plan_outputs

    claim_run_folder(dest, run)
    # names fit the run's folder with room for the deepest place a photo's files go (rejected/)
    extension = ".jpg" if options.format == "jpeg" else ".png"
    plan = plan_outputs([f.path for f in files], extension, limits=dest.name_limits(), under=layout.REJECTED)
    log.info(
        "ID photos: %d portrait(s) from %s, spec %s, background %s, %s -> %s under %s/",
        len(files),
        src.describe(),
        options.spec.name,
        options.background_name,
        "strict" if options.strict else "lenient",
        dest.describe(),
        run.run_prefix,
    )
    reports: list[dict] = []
    manifest = run.manifest(
        {
            "kind": "id_photo",
            "spec": options.spec.name,
            "background": options.background_name,
            "strict": options.strict,
            "model": engine.spec.name,
            "model_sha256": engine.model_sha256,
            "providers": engine.providers,
        }
    )

    def attempt(todo: list[FileInfo], progress: BatchProgress) -> RoundErrors:
        errors = RoundErrors()
        for info in todo:
            load = functools.partial(src.read, info.path, info)
            outcome = process_portrait(engine, load, info.path, plan[info.path], options, sheet)
            if outcome.result.retryable:  # storage trouble, not the photo's fault
                errors.add(info.path, outcome.result.error, outcome.result.retry_in_task)
                continue
            written: list[str] = []
            try:  # the destination failing is not the photo's fault either: retried like a read
                for rel, blob in outcome.files.items():
                    dest.write(rel, blob)
                    written.append(rel)
            except UnwritableName as exc:  # but a name it cannot hold is: refused, with why, in the manifest
                log.warning("refused %s: %s", info.path, exc)
                for rel in written:
                    dest.delete(rel)
                outcome = refused(info.path, exc, options)
            except Exception as exc:
                log.warning("writing %s failed: %s: %s", info.path, type(exc).__name__, exc)
                errors.add_exception(info.path, exc)
                continue
            reports.append(outcome.report)
            progress.add(outcome.result)
        return errors

    attempts = settings.value("io_attempts")

    def work(progress: BatchProgress) -> None:
        pending, errors = attempt_rounds(files, lambda todo: attempt(todo, progress), attempts, what="portrait(s)")
        if pending:
            raise InfrastructureError(
                f"{len(pending)} portrait(s) not processed after {attempts} attempt(s): "
                + "; ".join(f"{p}: {e}" for p, e in list(errors.items())[:5])
            )

    def finish(progress: BatchProgress) -> None:  # also when the attempt fails: what was done is recorded
        manifest.finished_at = utc_now()
        manifest.counts = {"files": len(reports), "ok": progress.ok, "failed": progress.failed}
        manifest.photos = reports
        # with the results pages' index (``photos`` are dicts already; ``files``, none here, records)
        publish_manifest(dest, {**vars(manifest), "files": [asdict(f) for f in manifest.files]}, manifest.to_json())

    progress, _ = _tracked(len(files), work, finish)
    return RunOutcome(run.run_prefix, layout.MANIFEST, dict(manifest.counts), progress, reports=reports)
