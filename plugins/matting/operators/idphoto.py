"""ID photos and their human review: operator shells over ``matting.idphoto``. The core is imported
when a task runs, never when a DAG file is parsed."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from matting.operators.assets import PublishesResults, lineage_of
from matting.operators.base import MattingBaseOperator, config_errors_fail_the_task, matting_template_fields, run_info


class IdPhotoOperator(PublishesResults, MattingBaseOperator):
    """Standard ID photos for every portrait under ``source``: photo + ``.report.json`` (+ print
    sheet) per input in ``destination/<run_prefix>/``, refusals and strict-mode failures under
    ``review/``, and a ``manifest.json``. Bad options fail the task at once, without retries.

    :param source: folder, ``s3://bucket/prefix`` or ``sftp:///dir`` of portraits (templated).
    :param destination: where the run folder goes (templated).
    :param spec: preset name (``matting/data/idphoto_specs.yaml`` plus ``[matting] idphoto_specs``).
    :param background: colour name, colour family (``off-white``) or ``#RRGGBB`` (default: the preset's
        first). One the preset does not accept fails the task before any photo is read, like a format it
        does not take or a ``kb_max`` above its own.
    :param output_format: ``jpeg`` or ``png``.
    :param kb_max: file size limit in KB, at most the preset's own (None: the preset's own, if any).
    :param sheet: print sheet ``4x6`` or ``5x7`` (None or ``none``: no sheet).
    :param strict: True sends photos failing a rule to ``review/``; False emits them with warnings.
    :param source_conn_id: Airflow connection for an S3 or SFTP source.
    :param destination_conn_id: Airflow connection for an S3 or SFTP destination.
    :param run_prefix: the run's folder (default ``<dag_id>/YYYY/MM/DD/<run_id>``; a given
        prefix goes under ``<dag_id>/`` too).
    :param model: matting model (default: the ``id_photo`` scenario's, ``modnet``).
    :param publish_asset: declare the results asset ``x-matting://<dag_id>/<task_id>`` as an outlet and
        emit one event per run that made a photo (``matting.operators.assets``; default True).
    """

    template_fields: Sequence[str] = matting_template_fields(
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
        kb_max: float | None = None,
        sheet: str | None = None,
        strict: bool = True,
        source_conn_id: str | None = None,
        destination_conn_id: str | None = None,
        run_prefix: str | None = None,
        model: str | None = None,
        publish_asset: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            source=source,
            destination=destination,
            source_conn_id=source_conn_id,
            destination_conn_id=destination_conn_id,
            **kwargs,
        )
        self.spec, self.background, self.output_format = spec, background, output_format
        self.kb_max, self.sheet, self.strict = kb_max, sheet, strict
        self.run_prefix, self.model = run_prefix, model
        self.declare_results_asset(publish_asset)

    def _options(self):
        from matting.errors import ConfigError
        from matting.idphoto.portrait import options_from

        # templated fields render as native values (the DAG sets render_template_as_native_obj)
        with config_errors_fail_the_task("bad parameters: ", also=(ValueError,)):
            if self.kb_max is not None and (isinstance(self.kb_max, bool) or not isinstance(self.kb_max, int | float)):
                raise ConfigError(f"kb_max must be a number or None, got {self.kb_max!r}")
            if not isinstance(self.strict, bool):
                raise ConfigError(f"strict must be True or False, got {self.strict!r}")
            kb_max = float(self.kb_max) if self.kb_max is not None else None
            return options_from(self.spec, self.background or None, self.output_format, kb_max, strict=self.strict)

    def execute(self, context: Any) -> dict:
        self._options()  # bad parameters fail the task first, with what is wrong with them
        return super().execute(context)

    def execute_matting(self, context: Any) -> dict:
        from matting.engine import Engine, RuntimeOptions
        from matting.idphoto.detect import load_models
        from matting.idphoto.review import held_photos
        from matting.pipeline.detection import ScanOptions, scan
        from matting.pipeline.runs import make_id_photos

        run = run_info(context, self.run_prefix)
        options = self._options()
        sheet = None if self.sheet in (None, "", "none", "None") else str(self.sheet)
        engine = Engine(model=self.model or None, scenario="id_photo", runtime=RuntimeOptions.from_env())
        load_models(engine.store)  # a missing face, iris or hand model fails the task now, not each photo
        with self.open_source() as src, self.open_destination() as root:
            infos = scan(src, ScanOptions(settle_seconds=0, max_files=10_000)).new
            outcome = make_id_photos(src, root, engine, options, infos, run, sheet)
            self._publish(context, outcome, root.sub(outcome.run_prefix))
        held = held_photos(outcome.reports)
        if held:
            self.log.info("%d photo(s) held for review: %s", len(held), ", ".join(h["photo"] for h in held))
        return {**outcome.xcom(), "held": held, **self.locations()}

    def _publish(self, context: Any, outcome, run) -> None:
        """The run's asset event (photos approved later by a reviewer are not announced again) and its
        lineage: the portraits read (those the run settled; one left for the next run is not); what the
        run folder holds (photos, reports, sheets, refusals under ``review/``, the manifest), without the
        results pages' index and the folder's claim."""
        from matting import layout

        prefix = outcome.run_prefix
        self.publish_run(context, run, prefix, outcome.counts, outputs_prefix=prefix)

        def written() -> list[str]:
            skip = (f"{layout.INDEX_DIR}/", layout.RUN_FILE)
            with self.open_destination() as root:
                return [f"{prefix}/{f.path}" for f in root.sub(prefix).list() if not f.path.startswith(skip)]

        self.record_lineage(
            lambda: (
                lineage_of(self.source, self.source_conn_id, [str(r["source"]) for r in outcome.reports]),
                lineage_of(self.destination, self.destination_conn_id, written()),
            )
        )


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
        # while the scheduler still sees it queued, and marks it up for retry: the retry asks again within
        # seconds. Defaults only: the caller's own arguments, or the DAG's default_args, win.
        defaults = kwargs.get("default_args") or {}
        if "retries" not in kwargs and "retries" not in defaults:
            kwargs["retries"] = 3
        if "retry_delay" not in kwargs and "retry_delay" not in defaults:
            kwargs["retry_delay"] = timedelta(seconds=5)
        super().__init__(
            subject="ID photos held for review",
            options=[REJECT_ALL, DECIDE_LATER],
            defaults=[DECIDE_LATER],
            multiple=True,
            params={"note": Param(None, type=["null", "string"], title="Note for the rejected photos (optional)")},
            response_timeout=response_timeout or timedelta(days=7),
            **kwargs,
        )
        self.photos_task_id = photos_task_id

    @contextlib.contextmanager
    def _held(self, context: Any):
        """The photo task's run folder and the photos held there. Where it is comes from that task's
        XCom, which anyone who may edit the run's XComs can change: it is used only when the manifest
        found there is this run's, and the held photos are read from that manifest, not the XCom."""
        from matting.idphoto.review import held_photos
        from matting.results.run import NotThisRun, RunResults, Where
        from matting.storage import open_storage

        ti = context["ti"]
        where = Where.from_xcom(ti.xcom_pull(task_ids=self.photos_task_id), ti.dag_id, ti.run_id)
        if where is None:
            yield None, None, []
            return
        with (
            open_storage(where.destination, where.destination_conn_id or None) as root,
            config_errors_fail_the_task(also=(NotThisRun,)),
        ):
            run = root.sub(where.run_prefix)
            results = RunResults(where, run, None)
            yield run, results, held_photos(results.manifest.get("photos") or [])

    def execute(self, context: Any) -> Any:
        from matting.idphoto.review import DECIDE_LATER, REJECT_ALL, review_body
        from matting.results.links import results_path
        from matting.results.run import held_views

        with self._held(context) as (run, results, held):
            if not held:
                self.log.info("no photo held for review")
                return {"approved": [], "rejected": [], "kept": []}
            self.options = [*(h["photo"] for h in held), REJECT_ALL, DECIDE_LATER]
            # thumbnails from the results pages, behind Airflow's login, whatever the storage (no
            # presigned URL: the form is readable by everyone who may see the run)
            page = results_path(context["ti"].dag_id, context["ti"].run_id)
            self.body = review_body(held, held_views(results.items, page), run.describe())
        self.log.info("%d photo(s) wait for a reviewer under Required Actions", len(held))
        return super().execute(context)

    def validate_chosen_options(self, chosen_options: list[str]) -> None:
        """Checked by ``settle_review`` against the photos held in this run (options are set at run time)."""

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        from matting.idphoto.review import settle_review

        answer = super().execute_complete(context, event)
        user = event.get("responded_by_user")
        reviewer = user.get("name") if isinstance(user, dict) else user
        note = str((answer.get("params_input") or {}).get("note") or "")
        with self._held(context) as (run, _, held):
            if run is None:
                raise AirflowFailException(f"task {self.photos_task_id} left no results to review")
            outcome = settle_review(run, held, list(answer["chosen_options"]), note, reviewer)
        self.log.info(
            "review by %s: approved %s; rejected %s; kept %s",
            reviewer or "the timeout default",
            outcome["approved"] or "none",
            outcome["rejected"] or "none",
            outcome["kept"] or "none",
        )
        return outcome
