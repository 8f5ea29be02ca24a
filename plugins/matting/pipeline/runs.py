"""One run of a job, the way every operator and the CLI run it: the batch (``BatchRunner``) with its
in-task rounds, progress and summary lines, and the manifest written on every way out, failures
included. Pure core: the operators turn an Airflow context into a ``RunInfo``, call ``run_job`` (through
``remove_backgrounds`` or ``make_id_photos``), and hand the outcome to XCom; the CLI calls the same
with local folders.

``ConfigError`` (an option, a missing model or dependency) propagates: no retry can help, so the
operators fail the task with its message. An ``InfrastructureError`` (storage still failing after the
rounds) propagates too, after the manifest is written: Airflow retries the task.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from matting import layout
from matting.errors import ConfigError
from matting.pipeline.jobs import IdPhotoJob, Job, MattingJob
from matting.pipeline.manifest import RunManifest, compact_json, run_counts, utc_now, write_manifest_stream
from matting.pipeline.progress import BatchProgress
from matting.pipeline.runner import BatchConfig, BatchRunner
from matting.results.index import publish_stream
from matting.storage import FileInfo, Storage

if TYPE_CHECKING:
    from matting.engine import Engine
    from matting.idphoto.compose import IdPhotoOptions

log = logging.getLogger("matting.task")  # the per-image and progress lines of a task's log


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
    left: list[str] = field(default_factory=list)  # changed since detection or maybe still uploading: untouched

    def xcom(self) -> dict[str, Any]:
        return {"run_prefix": self.run_prefix, "manifest": self.manifest, **self.counts}


def run_job(
    src: Storage,
    dest: Storage,
    job: Job,
    files: list[FileInfo],
    run: RunInfo,
    cfg: BatchConfig,
    *,
    stems: dict[str, str] | None = None,
    names: dict[str, str] | None = None,
    manifest: str | None = None,
    publish: bool = True,
    progress_every_s: float = 5.0,
) -> RunOutcome:
    """One batch of ``job`` from ``src`` into ``dest`` (the destination root; the run's folder is
    ``run.run_prefix`` in it, claimed for this run first). The manifest is written on every way out:
    ``manifest`` (``manifest.json``: the whole run in this batch, with the results pages' index unless
    ``publish`` is False), else this batch's part under ``parts/`` (``ArchiveOperator`` merges the
    parts). ``stems``: the output names planned for the whole run; ``names``: the caller's own plan."""
    folder = dest.sub(run.run_prefix) if run.run_prefix else dest
    log.info(
        "batch of %d %s from %s to %s%s; %s",
        len(files),
        job.noun,
        src.describe(),
        dest.describe(),
        f" under {run.run_prefix}/" if run.run_prefix else "",
        job.headline(),
    )
    claim_run_folder(folder, run)
    runner = BatchRunner(src, dest, job, cfg)
    doc = run.manifest(job.describe())
    part = f"{layout.PARTS}/part-{max(run.map_index, 0):04d}.json"

    def finish() -> str:  # also when the batch fails: what was settled is in the manifest
        doc.counts = run_counts(runner.records)
        doc.finished_at = utc_now()
        # a job's reports stand for its records; each entry held as its compact JSON, never the whole
        # document parsed and dumped at once (a 10k-photo batch: ~0.6 kB a photo)
        kind, docs = ("photos", runner.reports) if runner.reports else ("files", map(asdict, runner.records))
        entries = [(str(d.get("source", "")), compact_json(d)) for d in docs]
        header = {**vars(doc), "files": [], "photos": []}
        if manifest is not None and publish:  # with the results pages' index
            publish_stream(folder, header, kind, entries)
        else:
            write_manifest_stream(folder, manifest or part, header, kind, entries)
        if runner.reused:
            log.info("%d of them reused from the result cache (same bytes, same settings)", runner.reused)
        if runner.left_for_next_run:
            log.warning(
                "%d %s changed since detection or may still be uploading, left for the next run: %s",
                len(runner.left_for_next_run),
                job.noun,
                ", ".join(runner.left_for_next_run[:10]),
            )
        return manifest or (f"{run.run_prefix}/{part}" if run.run_prefix else part)

    progress = BatchProgress(total=len(files), log=log, every_s=progress_every_s)
    try:
        runner.run(files, progress, stems=stems, names=names)
    finally:
        log.info(progress.summary())
        path = finish()
    return RunOutcome(
        run.run_prefix,
        path,
        dict(doc.counts),
        progress,
        records=runner.records,
        reports=runner.reports,
        reused=runner.reused,
        left=list(runner.left_for_next_run),
    )


def remove_backgrounds(
    src: Storage,
    dest: Storage,
    job: MattingJob,
    files: list[FileInfo],
    run: RunInfo,
    cfg: BatchConfig,
    stems: dict[str, str] | None = None,
) -> RunOutcome:
    """One batch of background removal: records, outputs and moves in ``dest`` under
    ``run.run_prefix``, and this batch's manifest part. ``stems`` are the output names planned for the
    whole run (``matting.pipeline.naming``)."""
    return run_job(src, dest, job, files, run, cfg, stems=stems)


def make_id_photos(
    src: Storage,
    dest: Storage,
    engine: Engine,
    options: IdPhotoOptions,
    files: list[FileInfo],
    run: RunInfo,
    sheet: str | None = None,
) -> RunOutcome:
    """ID photos of ``files`` into the run's folder in ``dest``: photo, report (and print sheet) per
    portrait, refusals and held photos under ``review/``, and ``manifest.json``. Originals are left
    where they are. A failing read or write is retried in later rounds like any storage trouble, never
    blamed on the photo; a name the destination cannot hold is the photo's refusal, in the manifest."""
    cfg = BatchConfig(run_prefix=run.run_prefix, originals="leave", outputs=run.run_prefix, reuse=False)
    return run_job(src, dest, IdPhotoJob(engine, options, sheet), files, run, cfg, manifest=layout.MANIFEST)
