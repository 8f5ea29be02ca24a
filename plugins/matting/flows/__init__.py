"""Task groups the DAGs share, so each DAG file stays wiring only."""

from __future__ import annotations

from typing import Any

# the Airflow layer reads the [matting] settings through Airflow's conf: wired once per package, here
from matting import airflow_conf  # noqa: F401  (the [matting] settings come from Airflow's conf)
from matting.engine.scenarios import DEFAULT_SCENARIO
from matting.flows.defaults import data_dir, matting_task_args, var
from matting.flows.tasks import fail_if_work_failed
from matting.operators.matting import ArchiveOperator, RemoveBackgroundOperator


def destination() -> tuple[str, str]:
    """The archive location and its connection id (Variables, rendered at run time). Its ``_ledger/``
    lists versions a source kept (read-only accounts), so the listing steps read it too."""
    return var("matting_destination", f"{data_dir()}/archive"), var("matting_destination_conn_id", "")


def remove_and_archive(source: str, source_conn_id: str, batches: Any, reuse: bool | None = None) -> ArchiveOperator:
    """Mapped background removal over ``batches`` (one task per chunk), then the run's archive step,
    which runs whatever the batches did (what was settled is always archived). Since the archive then
    succeeds, a last task (``fail_if_work_failed``, trigger rule ``one_failed``) fails the DAG run when
    a batch or any step before it failed; it is skipped otherwise: green means done.

    Output settings come from Variables (matting_destination, matting_destination_conn_id,
    matting_model, matting_scenario, matting_format, matting_background), each with a default.
    ``reuse=False`` turns the result cache off for this DAG; None: the run's ``matting_reuse`` param
    (``run_params()``), else ``[matting] reuse``."""
    dest, dest_conn_id = destination()
    removed = RemoveBackgroundOperator.partial(
        task_id="remove_background",
        source=source,
        source_conn_id=source_conn_id,
        destination=dest,
        destination_conn_id=dest_conn_id,
        model=var("matting_model", ""),
        scenario=var("matting_scenario", DEFAULT_SCENARIO),
        output_format=var("matting_format", "png"),
        background=var("matting_background", ""),
        reuse="{{ params.get('matting_reuse') }}" if reuse is None else reuse,
        **matting_task_args(),
    ).expand(files=batches)
    archive = ArchiveOperator(
        task_id="archive",
        destination=dest,
        destination_conn_id=dest_conn_id,
        source=source,
        source_conn_id=source_conn_id,
        trigger_rule="all_done",
    )
    removed >> archive
    [removed, archive] >> fail_if_work_failed()
    return archive
