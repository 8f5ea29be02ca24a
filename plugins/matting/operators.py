"""Airflow operators: thin shells over the core (engine, batch runner) and the storage layer."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

from matting.archive import PARTS_DIR, close_run
from matting.detection import ScanOptions, scan
from matting.manifest import RunManifest, utc_now
from matting.pipeline import BatchConfig, BatchRunner, MattingJob, attempt_rounds, write_manifest
from matting.progress import BatchProgress
from matting.storage import FileInfo, open_storage


def default_run_prefix(context: Any) -> str:
    """``YYYY/MM/DD/<run_id>``: the day the run was due (``logical_date``; manual runs in Airflow 3
    have none, so ``dag_run.run_after``) and the run id made path-safe. Every task of a run computes
    the same prefix, so mapped batches and the archive step meet in one folder."""
    dag_run = context.get("dag_run")
    when = context.get("logical_date") or getattr(dag_run, "run_after", None) or context.get("data_interval_start")
    day = when.strftime("%Y/%m/%d") if when else time.strftime("%Y/%m/%d", time.gmtime())
    run_id = str(context.get("run_id") or "manual")
    for char, repl in (("/", "_"), (":", "-"), ("+", "_")):
        run_id = run_id.replace(char, repl)
    return f"{day}/{run_id}"


def _stats():
    try:
        from airflow.sdk.observability import stats
    except ImportError:  # pragma: no cover - older task SDKs
        return None
    return stats


class RemoveBackgroundOperator(BaseOperator):
    """Remove backgrounds from a batch: the sensor's XCom (``files``) or, without it, every settled
    image under ``source``. Outputs, per-file records and a manifest go to
    ``destination/<run_prefix>/``; originals move to ``processed/`` or ``quarantine/`` (with an
    ``.error.json``), or stay put with ``move_originals=False`` (read-only sources: ledger).

    Returns a small summary (counts and where the manifest is), never image bytes."""

    template_fields: Sequence[str] = (
        "source",
        "source_conn_id",
        "destination",
        "destination_conn_id",
        "files",
        "model",
        "scenario",
        "output_format",
        "background",
        "run_prefix",
    )
    ui_color = "#d6eaf8"

    def __init__(
        self,
        *,
        source: str,
        destination: str,
        files: list[dict] | str | None = None,
        source_conn_id: str | None = None,
        destination_conn_id: str | None = None,
        model: str | None = None,
        scenario: str = "default",
        output_format: str = "png",
        background: str | None = None,
        run_prefix: str | None = None,
        move_originals: bool = True,
        chunk_size: int = 16,
        max_files: int = 1000,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.source, self.source_conn_id = source, source_conn_id
        self.destination, self.destination_conn_id = destination, destination_conn_id
        self.files = files
        self.model, self.scenario = model, scenario
        self.output_format, self.background = output_format, background
        self.run_prefix = run_prefix
        self.move_originals, self.chunk_size, self.max_files = move_originals, chunk_size, max_files

    def execute(self, context: Any) -> dict:
        with (
            open_storage(self.source, self.source_conn_id or None) as src,
            open_storage(self.destination, self.destination_conn_id or None) as dest,
        ):
            return self._run(context, src, dest)

    def _run(self, context: Any, src, dest) -> dict:
        from matting.detection import Ledger
        from matting.engine import Engine, OutputOptions, RuntimeOptions

        if self.files is None:
            opts = ScanOptions(settle_seconds=0, max_files=self.max_files)
            infos = scan(src, opts, Ledger(dest).ids()).new
            planned: dict[str, str] = {}
        else:
            infos = [FileInfo.from_dict(d) for d in (self.files or [])]
            planned = {d["path"]: d["output_stem"] for d in self.files or [] if d.get("output_stem")}
        prefix = self.run_prefix or default_run_prefix(context)
        map_index = context["ti"].map_index if context.get("ti") is not None else -1
        engine = Engine(model=self.model or None, scenario=self.scenario, runtime=RuntimeOptions.from_env())
        job = MattingJob(engine, OutputOptions.build(self.output_format, self.background or None))
        cfg = BatchConfig(run_prefix=prefix, move_originals=self.move_originals, chunk_size=self.chunk_size)
        logger = logging.getLogger("matting.task")
        self.log.info(
            "batch of %d file(s) from %s to %s under %s/; model=%s providers=%s scenario=%s format=%s",
            len(infos),
            src.describe(),
            dest.describe(),
            prefix,
            engine.spec.name,
            ",".join(engine.providers),
            engine.scenario.name,
            job.out.format,
        )
        progress = BatchProgress(total=len(infos), log=logger, every_s=5.0)
        started = utc_now()
        runner = BatchRunner(src, dest, job, cfg)
        plan = {path: stem + job.out.extension for path, stem in planned.items()}
        dag_run = context.get("dag_run")
        manifest = RunManifest(
            dag_id=getattr(context.get("dag"), "dag_id", ""),
            run_id=str(context.get("run_id", "")),
            params=dict(getattr(dag_run, "conf", None) or {}),
            job=job.describe(),
            started_at=started,
            run_prefix=prefix,
        )
        # one part per (mapped) batch; ArchiveOperator merges the parts into manifest.json
        part = f"{PARTS_DIR}/part-{max(map_index if map_index is not None else 0, 0):04d}"
        try:
            runner.run(infos, progress, plan=plan)
        finally:  # also when the batch fails: what was settled is in the part, and in the manifest
            manifest.files = runner.records
            path = write_manifest(dest, cfg, manifest, name=part)
            self.log.info(progress.summary())
            if runner.left_for_next_run:
                self.log.warning(
                    "%d file(s) changed since detection, left for the next run: %s",
                    len(runner.left_for_next_run),
                    ", ".join(runner.left_for_next_run[:10]),
                )
        stats = _stats()
        if stats is not None:
            stats.incr("matting.images_ok", progress.ok)
            stats.incr("matting.images_failed", progress.failed)
            for rec in runner.records:
                if rec.timings_ms:
                    stats.timing("matting.image_ms", sum(rec.timings_ms.values()))
        return {"run_prefix": prefix, "manifest": path, **manifest.counts}


class ArchiveOperator(BaseOperator):
    """Close a run: merge the batch parts into ``manifest.json``, zip the outputs (optional) and draw
    a before/after contact sheet, all in ``destination/<run_prefix>/``."""

    template_fields: Sequence[str] = ("destination", "destination_conn_id", "source", "source_conn_id", "run_prefix")

    def __init__(
        self,
        *,
        destination: str,
        run_prefix: str | None = None,
        destination_conn_id: str | None = None,
        source: str | None = None,
        source_conn_id: str | None = None,
        make_zip: bool = True,
        contact_sheet: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.destination, self.destination_conn_id = destination, destination_conn_id
        self.source, self.source_conn_id = source, source_conn_id
        self.run_prefix, self.make_zip, self.contact_sheet = run_prefix, make_zip, contact_sheet

    def execute(self, context: Any) -> dict:
        prefix = self.run_prefix or default_run_prefix(context)
        run = open_storage(self.destination, self.destination_conn_id or None).sub(prefix)
        source = open_storage(self.source, self.source_conn_id or None) if self.source else None
        if not any(f.path.startswith(f"{PARTS_DIR}/") for f in run.list()):
            self.log.info("nothing to archive under %s: no batch ran", run.describe())
            return {"files": 0, "ok": 0, "failed": 0}
        summary = close_run(run, source, make_zip=self.make_zip, make_sheet=self.contact_sheet)
        self.log.info("archived %s: %s", run.describe(), summary)
        return {"run_prefix": prefix, **summary}


class IdPhotoOperator(BaseOperator):
    """Standard ID photos for every portrait under ``source``: photo + ``.report.json`` (+ print
    sheet) per input in ``destination/<run_prefix>/``, refusals and strict-mode failures under
    ``review/``, and a ``manifest.json``. Bad options fail the task at once, without retries."""

    template_fields: Sequence[str] = (
        "source",
        "source_conn_id",
        "destination",
        "destination_conn_id",
        "spec",
        "background",
        "output_format",
        "kb_max",
        "sheet",
        "strict",
        "run_prefix",
        "model",
    )
    ui_color = "#fdebd0"

    def __init__(
        self,
        *,
        source: str,
        destination: str,
        spec: str,
        background: str | None = None,
        output_format: str = "jpeg",
        kb_max: float | str | None = None,
        sheet: str | None = None,
        strict: bool | str = True,
        source_conn_id: str | None = None,
        destination_conn_id: str | None = None,
        run_prefix: str | None = None,
        model: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.source, self.source_conn_id = source, source_conn_id
        self.destination, self.destination_conn_id = destination, destination_conn_id
        self.spec, self.background, self.output_format = spec, background, output_format
        self.kb_max, self.sheet, self.strict = kb_max, sheet, strict
        self.run_prefix, self.model = run_prefix, model

    def _options(self):
        from airflow.sdk.exceptions import AirflowFailException

        from matting.errors import ConfigError
        from matting.idphoto.batch import options_from

        try:
            kb_max = float(self.kb_max) if self.kb_max not in (None, "", "None") else None
            strict = (
                self.strict if isinstance(self.strict, bool) else str(self.strict).lower() not in ("false", "lenient")
            )
            return options_from(self.spec, self.background or None, self.output_format, kb_max, strict=strict)
        except (ConfigError, ValueError) as exc:
            raise AirflowFailException(f"bad parameters: {exc}") from exc

    def _check_access(self) -> None:
        """Source, destination and connection ids must be on the allow-list (Variables
        ``matting_allowed_locations``, ``matting_allowed_conn_ids``; defaults: the data folder and the
        default connections) before any storage is opened."""
        import json

        from airflow.sdk import Variable
        from airflow.sdk.exceptions import AirflowFailException

        from matting.access import check_allowed
        from matting.dag_defaults import data_dir
        from matting.errors import ConfigError

        def listed(name: str, default: list[str]) -> list[str]:
            raw = Variable.get(name, default=None)
            if raw in (None, ""):
                return default
            value = json.loads(raw) if isinstance(raw, str) else raw
            return [value] if isinstance(value, str) else list(value)

        try:
            check_allowed(
                {"source": self.source, "destination": self.destination},
                {"source_conn_id": self.source_conn_id or "", "destination_conn_id": self.destination_conn_id or ""},
                listed("matting_allowed_locations", [data_dir()]),
                listed("matting_allowed_conn_ids", ["", "aws_default", "sftp_default"]),
            )
        except (ConfigError, ValueError) as exc:
            raise AirflowFailException(str(exc)) from exc

    def execute(self, context: Any) -> dict:
        from matting.engine import Engine, RuntimeOptions
        from matting.idphoto.compose import face_mesh

        options = self._options()
        self._check_access()
        engine = Engine(model=self.model or None, scenario="id_photo", runtime=RuntimeOptions.from_env())
        face_mesh(engine.store)  # the face mesh and iris models: missing ones fail the task now, not per photo
        prefix = self.run_prefix or default_run_prefix(context)
        with (
            open_storage(self.source, self.source_conn_id or None) as src,
            open_storage(self.destination, self.destination_conn_id or None) as root,
        ):
            return self._run(context, options, engine, src, root.sub(prefix), prefix)

    def _run(self, context: Any, options, engine, src, dest, prefix: str) -> dict:
        import json

        from matting import limits
        from matting.errors import InfrastructureError
        from matting.idphoto.batch import process_portrait
        from matting.naming import plan_outputs

        sheet = None if self.sheet in (None, "", "none", "None") else str(self.sheet)
        infos = scan(src, ScanOptions(settle_seconds=0, max_files=10_000)).new
        plan = plan_outputs([f.path for f in infos], ".jpg" if options.format == "jpeg" else ".png")
        self.log.info(
            "ID photos: %d portrait(s) from %s, spec %s, background %s, %s -> %s under %s/",
            len(infos),
            src.describe(),
            options.spec.name,
            options.background_name,
            "strict" if options.strict else "lenient",
            dest.describe(),
            prefix,
        )
        progress = BatchProgress(total=len(infos), log=logging.getLogger("matting.task"), every_s=5.0)
        reports: list[dict] = []

        def attempt(todo: list) -> dict[str, str]:
            errors = {}
            for info in todo:
                load = functools.partial(src.read, info.path, info)
                outcome = process_portrait(engine, load, info.path, plan[info.path], options, sheet)
                if outcome.result.retryable:  # storage trouble, not the photo's fault
                    errors[info.path] = outcome.result.error
                    continue
                for rel, blob in outcome.files.items():
                    dest.write(rel, blob)
                reports.append(outcome.report)
                progress.add(outcome.result)
            return errors

        attempts = limits.attempts()
        pending, errors = attempt_rounds(infos, attempt, attempts, what="portrait(s)")
        self.log.info(progress.summary())
        manifest = {
            "dag_id": getattr(context.get("dag"), "dag_id", ""),
            "run_id": str(context.get("run_id", "")),
            "params": dict(getattr(context.get("dag_run"), "conf", None) or {}),
            "spec": options.spec.name,
            "background": options.background_name,
            "strict": options.strict,
            "model": engine.spec.name,
            "model_sha256": engine.model_sha256,
            "providers": engine.providers,
            "started_at": utc_now(),
            "counts": {"files": len(reports), "ok": progress.ok, "failed": progress.failed},
            "photos": reports,
        }
        dest.write("manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False).encode())
        if pending:
            raise InfrastructureError(
                f"{len(pending)} portrait(s) not processed after {attempts} attempt(s): "
                + "; ".join(f"{p}: {e}" for p, e in list(errors.items())[:5])
            )
        from matting.idphoto.review import held_photos

        held = held_photos(reports)
        if held:
            self.log.info("%d photo(s) held for review: %s", len(held), ", ".join(h["photo"] for h in held))
        return {
            "run_prefix": prefix,
            "manifest": "manifest.json",
            **manifest["counts"],
            "held": held,
            "destination": self.destination,
            "destination_conn_id": self.destination_conn_id or "",
        }


def _hitl_operator():
    from airflow.providers.standard.operators.hitl import HITLOperator

    return HITLOperator


class ReviewHeldPhotosOperator(_hitl_operator()):
    """Human review of the ID photos strict mode held back (Airflow's Required Actions).

    Lists each held photo with its reasons; the reviewer ticks the ones to approve (they join the
    run's outputs) and may leave a note for the rest (they go to ``rejected/`` with it). Nothing
    held: done at once. No answer within ``response_timeout`` (7 days): the photos stay in
    ``review/``. Where the run's files are comes from the photo task's XCom.

    :param photos_task_id: the ``IdPhotoOperator`` task whose XCom lists the held photos.
    :param response_timeout: how long to wait for a reviewer.
    """

    ui_color = "#fcf3cf"

    def __init__(self, *, photos_task_id: str = "make_id_photos", response_timeout=None, **kwargs: Any) -> None:
        from datetime import timedelta

        from airflow.sdk import Param

        from matting.idphoto.review import DECIDE_LATER, REJECT_ALL

        kwargs.pop("params", None)  # the DAG's trigger form is not this step's form
        # Airflow 3.3.2's LocalExecutor can report a task that just parked in awaiting_input as finished
        # while the scheduler still sees it queued, and marks it up for retry: the retry asks again within seconds
        kwargs["retries"] = max(int(kwargs.get("retries") or 0), 3)
        kwargs["retry_delay"] = timedelta(seconds=5)  # then 10, 20 s (the DAGs' exponential backoff)
        super().__init__(
            subject="ID photos held for review",
            options=[REJECT_ALL, DECIDE_LATER],
            defaults=[DECIDE_LATER],
            multiple=True,
            params={"note": Param("", type="string", title="Note for the rejected photos")},
            response_timeout=response_timeout or timedelta(days=7),
            **kwargs,
        )
        self.photos_task_id = photos_task_id

    def _photos(self, context: Any) -> dict:
        return context["ti"].xcom_pull(task_ids=self.photos_task_id) or {}

    def execute(self, context: Any) -> Any:
        from matting.idphoto.review import DECIDE_LATER, REJECT_ALL, review_body

        photos = self._photos(context)
        held = list(photos.get("held") or [])
        if not held:
            self.log.info("no photo held for review")
            return {"approved": [], "rejected": [], "kept": []}
        self.options = [*(h["photo"] for h in held), REJECT_ALL, DECIDE_LATER]
        with open_storage(photos["destination"], photos.get("destination_conn_id") or None) as root:
            run = root.sub(photos["run_prefix"])
            expires = int(self.response_timeout.total_seconds()) if self.response_timeout else 7 * 24 * 3600
            links = {h["photo"]: run.share_url(f"review/{h['photo']}", expires) for h in held}
            self.body = review_body(held, {k: v for k, v in links.items() if v}, run.describe())
        self.log.info("%d photo(s) wait for a reviewer under Required Actions", len(held))
        return super().execute(context)

    def validate_chosen_options(self, chosen_options: list[str]) -> None:
        """Checked by ``settle_review`` against the photos held in this run (options are set at run time)."""

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        from matting.idphoto.review import settle_review

        answer = super().execute_complete(context, event)
        photos = self._photos(context)
        user = event.get("responded_by_user")
        reviewer = user.get("name") if isinstance(user, dict) else user
        note = str((answer.get("params_input") or {}).get("note") or "")
        with open_storage(photos["destination"], photos.get("destination_conn_id") or None) as root:
            outcome = settle_review(
                root.sub(photos["run_prefix"]), list(photos["held"]), list(answer["chosen_options"]), note, reviewer
            )
        self.log.info(
            "review by %s: approved %s; rejected %s; kept %s",
            reviewer or "the timeout default",
            outcome["approved"] or "none",
            outcome["rejected"] or "none",
            outcome["kept"] or "none",
        )
        return outcome
