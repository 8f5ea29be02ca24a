"""What every matting operator that touches storage shares, once (the Amazon provider's
``AwsBaseOperator`` + ``aws_template_fields`` shape): the source/destination fields and their
connections, the access check before any storage opens, configuration errors failing the task at once,
the run's folder and the locations its XCom names for the results pages.

Module-level imports stay light (Airflow parses DAG files every 30 s): the core's heavy modules are
imported inside ``execute``."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from matting import access
from matting.errors import ConfigError
from matting.operators.assets import ReportsLineage
from matting.results.links import ResultsLink

if TYPE_CHECKING:
    from matting.pipeline.runs import RunInfo
    from matting.storage import Storage

LOCATION_TEMPLATE_FIELDS: tuple[str, ...] = ("source", "source_conn_id", "destination", "destination_conn_id")


def matting_template_fields(*fields: str) -> tuple[str, ...]:
    """The location fields every ``MattingBaseOperator`` templates, then ``fields`` (no duplicates)."""
    return tuple(dict.fromkeys((*LOCATION_TEMPLATE_FIELDS, *fields)))


@contextlib.contextmanager
def config_errors_fail_the_task(prefix: str = "", also: tuple[type[Exception], ...] = ()) -> Iterator[None]:
    """A ``ConfigError`` (an option, a missing model or dependency: no retry can help), or one of
    ``also`` (a parameter's ``ValueError``), fails the task at once, with its message and without
    retries."""
    try:
        yield
    except (ConfigError, *also) as exc:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(f"{prefix}{exc}") from exc


def _path_safe(value: str) -> str:
    for char, repl in (("/", "_"), (":", "-"), ("+", "_"), ("\\", "_")):
        value = value.replace(char, repl)
    return value.strip(".") or "_"


def _dag_folder(context: Any) -> str:
    return _path_safe(str(getattr(context.get("dag"), "dag_id", "") or context.get("dag_id") or "no_dag"))


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


def run_folder(context: Any, run_prefix: str | None) -> str:
    """The run's folder under the destination: ``run_prefix`` when given (templated by the user), always
    under the DAG's own folder (``<dag_id>/<run_prefix>``), else ``default_run_prefix``."""
    if not run_prefix or not str(run_prefix).strip("/"):
        return default_run_prefix(context)
    prefix, dag = str(run_prefix).strip("/"), _dag_folder(context)
    return prefix if prefix == dag or prefix.startswith(dag + "/") else f"{dag}/{prefix}"


def run_info(context: Any, run_prefix: str | None) -> RunInfo:
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


def stats():
    """Airflow's metrics client (StatsD/OpenTelemetry as configured), or None on task SDKs without it."""
    try:
        from airflow.sdk.observability import stats
    except ImportError:  # pragma: no cover - older task SDKs
        return None
    return stats


class LocationAccess:
    """For every operator or sensor that takes locations: before any storage is opened, each location
    and connection id it was given is checked against its DAG's allow-list (``matting.access``: the
    Variables ``matting_allowed_locations`` / ``matting_allowed_conn_ids`` where they name the DAG, else
    the DAG's own fields as written in its file), so a run triggered with other paths or connections
    is refused, whichever task it reaches. Call ``keep_declared()`` at the end of ``__init__``."""

    def keep_declared(self) -> None:
        self._declared = access.declared_fields(self)  # as the DAG file wrote them: the DAG's own allow-list
        try:  # the form's defaults as declared (a run's conf is merged into the same Param objects)
            self._declared_params = self.dag.params.dump()
        except Exception:  # not in a DAG yet (or mapped: created when it runs): read when the task runs
            self._declared_params = None

    def check_access(self, *places: tuple[str, str | None, str, str | None]) -> None:
        """``places``: (location field, its value this run, connection field, its value); a place whose
        location is None is unused and not checked (an empty one is checked, and refused: it would be the
        worker's own folder). Refused (the task fails without retries) when a location or connection id
        is off the DAG's list."""
        from airflow.sdk import Variable

        def get_var(key: str, default: str | None) -> str | None:
            return Variable.get(key, default=default)

        def declared():
            # a task's fields are rendered in place when it runs: the declared ones are kept at parse time
            fields = [getattr(t, "_declared", None) or access.declared_fields(t) for t in self.dag.tasks]
            return fields, self._declared_params if self._declared_params is not None else self.dag.params.dump()

        used = [place for place in places if place[1] is not None]
        with config_errors_fail_the_task(also=(ValueError,)):
            allowed = access.allowed_for(self.dag_id, get_var, declared)
            self.log.info("%s may use locations %s, connections %s", self.dag_id, allowed.locations, allowed.conn_ids)
            allowed.check({f: loc for f, loc, _, _ in used}, {f: conn or "" for _, _, f, conn in used})


class MattingBaseOperator(ReportsLineage, LocationAccess, BaseOperator):
    """An operator that reads a ``source`` and writes a ``destination`` (a folder, ``s3://bucket/prefix``
    or ``sftp:///dir``, each with its Airflow connection id). What it read and wrote goes to OpenLineage
    when that provider is installed (``ReportsLineage``).

    Every location and connection id is checked before any storage is opened (``LocationAccess``).
    Subclasses implement ``execute_matting(context)``; a ``ConfigError`` from it fails the task without
    retries. Nothing here overrides what the caller set (retries, pools, params).

    :param source: where the originals are (templated); None for operators without one.
    :param destination: where the results go (templated).
    :param source_conn_id: Airflow connection for an S3 or SFTP source.
    :param destination_conn_id: Airflow connection for an S3 or SFTP destination.
    """

    operator_extra_links = (ResultsLink(),)
    template_fields: Sequence[str] = LOCATION_TEMPLATE_FIELDS
    source_required = True  # False: the source is optional, and an empty one means none (the archive step)

    def __init__(
        self,
        *,
        destination: str,
        source: str | None = None,
        source_conn_id: str | None = None,
        destination_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.source, self.source_conn_id = source, source_conn_id
        self.destination, self.destination_conn_id = destination, destination_conn_id
        self.keep_declared()

    # --- what every subclass runs ------------------------------------------------------------------

    def execute(self, context: Any) -> Any:
        source = self.source if self.source_required or self.source else None
        self.check_access(
            ("source", source, "source_conn_id", self.source_conn_id),
            ("destination", self.destination, "destination_conn_id", self.destination_conn_id),
        )
        with config_errors_fail_the_task():
            return self.execute_matting(context)

    def execute_matting(self, context: Any) -> Any:
        raise NotImplementedError

    # --- helpers -----------------------------------------------------------------------------------

    def open_source(self) -> contextlib.AbstractContextManager[Storage | None]:
        """The source storage (closed on exit), or None when the task has no source."""
        from matting.storage import open_storage

        return open_storage(self.source, self.source_conn_id or None) if self.source else contextlib.nullcontext()

    def open_destination(self) -> contextlib.AbstractContextManager[Storage]:
        from matting.storage import open_storage

        return open_storage(self.destination, self.destination_conn_id or None)

    def locations(self) -> dict[str, str]:
        """Where a run's files are, in every matting task's XCom: the results pages read it
        (``matting.results.run.Where``) and check it against the run's own manifest."""
        return {
            "destination": self.destination,
            "destination_conn_id": self.destination_conn_id or "",
            "source": self.source or "",
            "source_conn_id": self.source_conn_id or "",
        }
