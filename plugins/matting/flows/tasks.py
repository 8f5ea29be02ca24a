"""Small TaskFlow tasks shared by the DAGs."""

from __future__ import annotations

import logging
from datetime import UTC

from airflow.sdk import task


@task
def list_new_files(
    location: str,
    conn_id: str = "",
    settle_seconds: float = 10.0,
    max_files: int = 1000,
    ledger_location: str = "",
    ledger_conn_id: str = "",
) -> list:
    """For scheduled runs: the settled, unprocessed images under ``location`` (no sensor wait); versions
    in the ledger at ``ledger_location`` (the destination) count as processed."""
    from matting.pipeline.detection import ScanOptions, check_for_new_files

    result, where = check_for_new_files(
        location,
        conn_id or None,
        ScanOptions(settle_seconds=settle_seconds, max_files=max_files),
        ledger_location or None,
        ledger_conn_id or None,
    )
    logging.getLogger("matting.flows.tasks").info("checked %s: %s", where, result.summary())
    return result.to_xcom()


@task
def split_batches(files: list | None, batch_size: int = 16) -> list[list]:
    """Chunks for dynamic task mapping: each chunk is one matting task (spread over workers). Output
    names are planned here, once over the whole run (``matting.pipeline.naming``), so two batches can never
    write the same output and a retried batch writes the same names again."""
    from matting.pipeline.naming import with_stems

    files = with_stems(list(files or []))
    size = max(1, int(batch_size))
    return [files[i : i + size] for i in range(0, len(files), size)]


@task
def uploads_from_events(
    source: str,
    source_conn_id: str = "",
    ledger_location: str = "",
    ledger_conn_id: str = "",
    lookback_hours: float = 24.0,
    **context,
) -> list:
    """The files that S3 notifications name and that are still to do (``matting.pipeline.events``): one line
    per skipped notification (duplicate, gone, superseded, already processed) and a summary.

    Not only this run's triggering events: Airflow gives an asset-triggered run the events up to the
    first one queued, and events stored while the run was being created trigger no further run (a
    burst of uploads would wait for the next upload). So every run also reads the asset's events
    of the last ``lookback_hours`` (its inlet) and settles them all; what is done is skipped by the
    ledger or because it moved away, so reading an event twice never processes a photo twice."""
    from datetime import datetime, timedelta

    from matting.pipeline.detection import ledger_ids
    from matting.pipeline.events import select_uploads, uploads_in_events
    from matting.storage import open_storage

    log = logging.getLogger("matting.flows.tasks")
    if not source.startswith("s3://"):
        raise ValueError(f"event-driven ingestion reads S3 notifications; the source {source!r} is not s3://")
    triggering = [e for events in (context.get("triggering_asset_events") or {}).values() for e in events]
    since = datetime.now(UTC) - timedelta(hours=float(lookback_hours))
    since = min([since] + [e.timestamp for e in triggering])
    recent = [e for inlet in context.get("inlet_events") or [] for e in context["inlet_events"][inlet].after(since)]
    messages, uploads = uploads_in_events([e.extra for e in triggering + recent])
    bucket, _, prefix = source[5:].partition("/")
    with open_storage(source, source_conn_id or None) as storage:
        selection = select_uploads(uploads, storage, bucket, prefix, ledger_ids(ledger_location, ledger_conn_id))
    log.info(
        "%d triggering event(s), %d event(s) since %s, %d message(s), %d upload(s): %s",
        len(triggering),
        len(recent),
        since.isoformat(timespec="seconds"),
        messages,
        len(uploads),
        selection.summary(),
    )
    return [f.to_dict() for f in selection.files]


@task(trigger_rule="one_failed", retries=0)
def fail_if_work_failed(**context) -> None:
    """The run's verdict (Airflow's "watcher" pattern): runs only when an upstream task failed, and
    fails, so the DAG run is failed although its archive step (``all_done``) succeeded. Names what
    failed; the failed tasks' own logs say why."""
    from airflow.sdk.exceptions import AirflowFailException

    ti = context["ti"]
    failed: list[str] = []
    try:
        states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id]).get(ti.run_id, {})
        failed = sorted(t for t, state in states.items() if state in ("failed", "upstream_failed") and t != ti.task_id)
    except Exception as exc:  # the verdict stands without the list
        logging.getLogger("matting.flows.tasks").warning("could not list the failed tasks: %s", exc)
    raise AirflowFailException(
        "this run did not do all its work: "
        + (", ".join(failed) if failed else "an upstream task")
        + " failed (see its log); what was settled before is archived and on the results page"
    )
