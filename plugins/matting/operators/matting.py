"""Background removal and archiving: thin operator shells over the core (engine, batch runner)
and the storage layer."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

from matting import layout
from matting.access import declared_fields
from matting.errors import ConfigError
from matting.pipeline.archive import close_run
from matting.pipeline.detection import ScanOptions, scan
from matting.pipeline.runner import BatchConfig, MattingJob
from matting.results.links import ResultsLink
from matting.storage import FileInfo, open_storage


def _path_safe(value: str) -> str:
    for char, repl in (("/", "_"), (":", "-"), ("+", "_"), ("\\", "_")):
        value = value.replace(char, repl)
    return value.strip(".") or "_"


def default_run_prefix(context: Any) -> str:
    """``<dag_id>/YYYY/MM/DD/<run_id>``: the DAG, the day the run was due (``logical_date``; manual
    runs in Airflow 3 have none, so ``dag_run.run_after``) and the run id made path-safe. The DAG id
    keeps two DAGs apart whose run ids are equal (``scheduled__<time>`` on one cron) in one
    destination. Every task of a run computes the same prefix, so mapped batches and the archive step
    meet in one folder."""
    dag_run = context.get("dag_run")
    when = context.get("logical_date") or getattr(dag_run, "run_after", None) or context.get("data_interval_start")
    day = when.strftime("%Y/%m/%d") if when else time.strftime("%Y/%m/%d", time.gmtime())
    run_id = _path_safe(str(context.get("run_id") or "manual"))
    return f"{_dag_folder(context)}/{day}/{run_id}"


def _dag_folder(context: Any) -> str:
    return _path_safe(str(getattr(context.get("dag"), "dag_id", "") or context.get("dag_id") or "no_dag"))


def run_folder(context: Any, run_prefix: str | None) -> str:
    """The run's folder under the destination: ``run_prefix`` when given (templated by the user), always
    under the DAG's own folder (``<dag_id>/<run_prefix>``), else ``default_run_prefix``."""
    if not run_prefix or not str(run_prefix).strip("/"):
        return default_run_prefix(context)
    prefix, dag = str(run_prefix).strip("/"), _dag_folder(context)
    return prefix if prefix == dag or prefix.startswith(dag + "/") else f"{dag}/{prefix}"


def run_locations(destination: str, destination_conn_id: str | None, source: str | None, source_conn_id: str | None):
    """Where a run's files are, in every matting task's XCom: the results pages read it
    (``matting.results.run.Where``), so they never take a location from a URL."""
    return {
        "destination": destination,
        "destination_conn_id": destination_conn_id or "",
        "source": source or "",
        "source_conn_id": source_conn_id or "",
    }


def run_info(context: Any, run_prefix: str | None):
    """The run as the core's manifests describe it (``matting.pipeline.runs.RunInfo``), from the task's context."""
    from matting.pipeline.runs import RunInfo

    ti = context.get("ti")
    map_index = getattr(ti, "map_index", None)
    return RunInfo(
        run_prefix=run_folder(context, run_prefix),
        dag_id=getattr(context.get("dag"), "dag_id", ""),
        run_id=str(context.get("run_id", "")),
        params=dict(getattr(context.get("dag_run"), "conf", None) or {}),
        map_index=map_index if isinstance(map_index, int) else -1,
    )


@contextlib.contextmanager
def config_errors_fail_the_task(prefix: str = "", also: tuple[type[Exception], ...] = ()):
    """A ``ConfigError`` (an option, a missing model or dependency: no retry can help), or one of
    ``also`` (a parameter's ``ValueError``), fails the task at once, with its message and without
    retries."""
    try:
        yield
    except (ConfigError, *also) as exc:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(f"{prefix}{exc}") from exc


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

    operator_extra_links = (ResultsLink(),)
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
        scenario: str = "auto",
        output_format: str = "png",
        background: str | None = None,
        run_prefix: str | None = None,
        move_originals: bool = True,
        chunk_size: int = 16,
        max_files: int = 1000,
        reuse: bool | None = None,
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
        self.reuse = reuse
        self._declared = declared_fields(self)  # as written in the DAG file (matting.access: own places)

    def execute(self, context: Any) -> dict:
        with (
            open_storage(self.source, self.source_conn_id or None) as src,
            open_storage(self.destination, self.destination_conn_id or None) as dest,
        ):
            return self._run(context, src, dest)

    def _run(self, context: Any, src, dest) -> dict:
        from matting.engine import Engine, OutputOptions, RuntimeOptions
        from matting.pipeline.naming import stems_of
        from matting.pipeline.runs import remove_backgrounds
        from matting.storage import Ledger

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
        stats = _stats()
        if stats is not None:
            stats.incr("matting.images_ok", outcome.progress.ok)
            stats.incr("matting.images_failed", outcome.progress.failed)
            stats.incr("matting.images_reused", outcome.reused)
            for rec in outcome.records:
                if rec.timings_ms:
                    stats.timing("matting.image_ms", sum(rec.timings_ms.values()))
        where = run_locations(self.destination, self.destination_conn_id, self.source, self.source_conn_id)
        return {**outcome.xcom(), **where}


def _flag(value: Any) -> bool | None:
    """The templated ``reuse``: True, False, or None (unset: the setting decides)."""
    from matting import settings

    with config_errors_fail_the_task():
        return settings.flag(value, "reuse")


class ArchiveOperator(BaseOperator):
    """Close a run: merge the batch parts into ``manifest.json``, zip the outputs (optional) and draw
    a before/after contact sheet, all in ``destination/<run_prefix>/``. Its XCom says where the run's
    files are (the results pages read it).

    :param destination: where the batches wrote (templated).
    :param run_prefix: the run's folder (default ``<dag_id>/YYYY/MM/DD/<run_id>``, as the batches
        computed it).
    :param destination_conn_id: Airflow connection for an S3 or SFTP destination.
    :param source: the originals' location, for the contact sheet's "before" pictures.
    :param source_conn_id: Airflow connection for the source.
    :param make_zip: write ``outputs.zip``.
    :param contact_sheet: draw ``contact_sheet.jpg``.
    """

    operator_extra_links = (ResultsLink(),)
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
        self._declared = declared_fields(self)

    def execute(self, context: Any) -> dict:
        prefix = run_folder(context, self.run_prefix)
        with contextlib.ExitStack() as stack:  # closed on every way out, failures included
            root = stack.enter_context(open_storage(self.destination, self.destination_conn_id or None))
            run = root.sub(prefix)
            source = None
            if self.source:
                source = stack.enter_context(open_storage(self.source, self.source_conn_id or None))
            if not any(f.path.startswith(f"{layout.PARTS}/") for f in run.list()):
                self.log.info("nothing to archive under %s: no batch ran", run.describe())
                return {"files": 0, "ok": 0, "failed": 0}
            summary = close_run(run, source, make_zip=self.make_zip, make_sheet=self.contact_sheet)
            self.log.info("archived %s: %s", run.describe(), summary)
            self._prune_result_cache(root)
        where = run_locations(self.destination, self.destination_conn_id, self.source, self.source_conn_id)
        return {"run_prefix": prefix, **summary, **where}

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
