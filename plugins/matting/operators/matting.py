"""Background removal and archiving: thin operator shells over the core (engine, batch runner)
and the storage layer. The core is imported when a task runs, never when a DAG file is parsed."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from matting.engine.scenarios import DEFAULT_SCENARIO
from matting.operators.assets import PublishesResults, lineage_of
from matting.operators.base import (
    MattingBaseOperator,
    config_errors_fail_the_task,
    matting_template_fields,
    run_folder,
    run_info,
    stats,
)


class RemoveBackgroundOperator(MattingBaseOperator):
    """Remove backgrounds from a batch: the sensor's XCom (``files``) or, without it, every settled
    image under ``source``. Outputs, per-file records and a manifest go to
    ``destination/<run_prefix>/``; originals move to ``processed/`` or ``quarantine/`` (with an
    ``.error.json``), or stay put with ``move_originals=False`` (read-only sources: ledger).

    Returns a small summary (counts and where the manifest is), never image bytes.

    :param source: folder, ``s3://bucket/prefix`` or ``sftp:///dir`` holding the originals (templated).
    :param destination: where results go, same forms (templated).
    :param files: the batch, as a new-file sensor or ``split_batches`` hands it on (a list of
        ``{"path", "size", "mtime", "version"}``); None: every settled image under ``source``.
    :param source_conn_id: Airflow connection for an S3 or SFTP source.
    :param destination_conn_id: Airflow connection for an S3 or SFTP destination.
    :param model: model name from the manifest (default: ``[matting] model``, else the scenario's);
        naming one turns ``auto``'s per-photo choice off.
    :param scenario: scenario (``matting/data/scenarios.yaml``); ``auto`` (default) picks the model per
        photo: MODNet for people, ISNet for everything else; ``fast``: u2netp.
    :param output_format: ``png``, ``webp``, ``jpeg`` or ``mask``.
    :param background: colour name or ``#RRGGBB``; None keeps transparency (white for JPEG).
    :param run_prefix: the run's folder under ``destination`` (default ``<dag_id>/YYYY/MM/DD/<run_id>``;
        a given prefix goes under ``<dag_id>/`` too).
    :param move_originals: move originals to ``processed/`` / ``quarantine/``; False for read-only
        sources (a ledger at the destination remembers what was done).
    :param chunk_size: images read ahead and processed per round.
    :param max_files: at most this many files when listing ``source`` itself.
    :param reuse: the result cache (an input's bytes seen before with the same model, scenario and
        output options: its output is copied, not made again); None: ``[matting] reuse`` (on).
    """

    template_fields: Sequence[str] = matting_template_fields(
        "files",
        "model",
        "scenario",
        "output_format",
        "background",
        "run_prefix",
        "reuse",
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
        scenario: str = DEFAULT_SCENARIO,
        output_format: str = "png",
        background: str | None = None,
        run_prefix: str | None = None,
        move_originals: bool = True,
        chunk_size: int = 16,
        max_files: int = 1000,
        reuse: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            source=source,
            destination=destination,
            source_conn_id=source_conn_id,
            destination_conn_id=destination_conn_id,
            **kwargs,
        )
        self.files = files
        self.model, self.scenario = model, scenario
        self.output_format, self.background = output_format, background
        self.run_prefix = run_prefix
        self.move_originals, self.chunk_size, self.max_files = move_originals, chunk_size, max_files
        self.reuse = reuse

    def execute_matting(self, context: Any) -> dict:
        with self.open_source() as src, self.open_destination() as dest:
            return self._run(context, src, dest)

    def _run(self, context: Any, src, dest) -> dict:
        from matting import layout
        from matting.engine import Engine, OutputOptions, RuntimeOptions
        from matting.pipeline.detection import ScanOptions, scan
        from matting.pipeline.jobs import MattingJob
        from matting.pipeline.naming import stems_of
        from matting.pipeline.runner import BatchConfig
        from matting.pipeline.runs import remove_backgrounds
        from matting.storage import FileInfo, Ledger

        if self.files is None:
            opts = ScanOptions(settle_seconds=0, max_files=self.max_files)
            infos = scan(src, opts, Ledger(dest).ids()).new
            stems: dict[str, str] = {}
        else:
            infos = [FileInfo.from_dict(d) for d in (self.files or [])]
            stems = stems_of(self.files)
        run = run_info(context, self.run_prefix)
        cfg = BatchConfig(
            run_prefix=run.run_prefix,
            move_originals=self.move_originals,
            chunk_size=self.chunk_size,
            reuse=_flag(self.reuse),
        )
        with config_errors_fail_the_task():
            engine = Engine(model=self.model or None, scenario=self.scenario, runtime=RuntimeOptions.from_env())
            job = MattingJob(engine, OutputOptions.build(self.output_format, self.background or None))
            outcome = remove_backgrounds(src, dest, job, infos, run, cfg, stems)
        metrics = stats()
        if metrics is not None:
            metrics.incr("matting.images_ok", outcome.progress.ok)
            metrics.incr("matting.images_failed", outcome.progress.failed)
            metrics.incr("matting.images_reused", outcome.reused)
            for rec in outcome.records:
                if rec.timings_ms:
                    metrics.timing("matting.image_ms", sum(rec.timings_ms.values()))
        self.record_lineage(
            lambda: (
                lineage_of(self.source, self.source_conn_id, [r.source for r in outcome.records]),
                lineage_of(
                    self.destination,
                    self.destination_conn_id,
                    # + the outputs folder, the archive step's input: the chain photo -> cut-out -> zip joins
                    [o for r in outcome.records for o in r.outputs]
                    + [outcome.manifest, f"{outcome.run_prefix}/{layout.OUTPUTS}"],
                ),
            )
        )
        return {**outcome.xcom(), **self.locations()}


def _flag(value: Any) -> bool | None:
    """The templated ``reuse``: True, False, or None (unset: the setting decides)."""
    from matting import settings

    with config_errors_fail_the_task():
        return settings.flag(value, "reuse")


class ArchiveOperator(PublishesResults, MattingBaseOperator):
    """Close a run: merge the batch parts into ``manifest.json``, zip the outputs (optional) and draw
    a before/after contact sheet, all in ``destination/<run_prefix>/``. Its XCom says where the run's
    files are (the results pages read it).

    Publishes the run on the asset ``x-matting://<dag_id>/<task_id>`` (``matting.operators.assets``): one
    event per run that made an output, its ``extra`` saying where the manifest, the outputs and the zip
    are and the run's counts; none for a run without output.

    :param destination: where the batches wrote (templated).
    :param run_prefix: the run's folder (default ``<dag_id>/YYYY/MM/DD/<run_id>``, as the batches
        computed it).
    :param destination_conn_id: Airflow connection for an S3 or SFTP destination.
    :param source: the originals' location, for the contact sheet's "before" pictures.
    :param source_conn_id: Airflow connection for the source.
    :param make_zip: write ``outputs.zip``.
    :param contact_sheet: draw ``contact_sheet.jpg``.
    :param publish_asset: declare the results asset as an outlet and emit its event (default True).
    """

    template_fields: Sequence[str] = matting_template_fields("run_prefix")
    source_required = False  # only for the contact sheet's "before" pictures

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
        self.run_prefix, self.make_zip, self.contact_sheet = run_prefix, make_zip, contact_sheet
        self.declare_results_asset(publish_asset)

    def execute_matting(self, context: Any) -> dict:
        from matting import layout
        from matting.pipeline.archive import close_run
        from matting.pipeline.lineage import run_written

        prefix = run_folder(context, self.run_prefix)
        with contextlib.ExitStack() as stack:  # closed on every way out, failures included
            root = stack.enter_context(self.open_destination())
            run = root.sub(prefix)
            source = stack.enter_context(self.open_source())
            if not any(f.path.startswith(f"{layout.PARTS}/") for f in run.list()):
                self.log.info("nothing to archive under %s: no batch ran", run.describe())
                self.publish_results(context, {"counts": {"files": 0, "ok": 0, "failed": 0}})
                return {"files": 0, "ok": 0, "failed": 0}
            summary = close_run(run, source, make_zip=self.make_zip, make_sheet=self.contact_sheet)
            self.log.info("archived %s: %s", run.describe(), summary)
            self._prune_result_cache(root)
            outputs = f"{prefix}/{layout.OUTPUTS}"
            self.publish_run(context, run, prefix, summary, outputs_prefix=outputs, zip_name=summary.get("zip"))
        # read: the outputs folder (zipped and drawn: one dataset, never the manifest read back, which a
        # 100k-photo run would make a 10 MB event of); wrote: the manifest, the zip, the contact sheet
        self.record_lineage(
            lambda: (
                lineage_of(self.destination, self.destination_conn_id, [outputs]),
                lineage_of(self.destination, self.destination_conn_id, run_written(prefix, summary)),
            )
        )
        return {"run_prefix": prefix, **summary, **self.locations()}

    def _prune_result_cache(self, root) -> None:
        """Entries past ``[matting] reuse_max_age_days`` are deleted here (a failure to prune is
        logged: the run is archived either way, and expired entries are ignored anyway)."""
        from matting import settings
        from matting.pipeline.reuse import ResultCache

        try:
            removed = ResultCache(root, settings.value("reuse_max_age_days") * 86400).prune()
        except Exception as exc:
            self.log.warning("could not prune the result cache: %s: %s", type(exc).__name__, exc)
            return
        if removed:
            self.log.info("pruned %d expired result cache entries", removed)
