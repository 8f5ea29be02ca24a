"""Small TaskFlow tasks shared by the DAGs."""

from __future__ import annotations

import logging

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
    from matting.detection import ScanOptions, check_for_new_files

    result, where = check_for_new_files(
        location,
        conn_id or None,
        ScanOptions(settle_seconds=settle_seconds, max_files=max_files),
        ledger_location or None,
        ledger_conn_id or None,
    )
    logging.getLogger("matting.tasks").info("checked %s: %s", where, result.summary())
    return result.to_xcom()


@task
def split_batches(files: list | None, batch_size: int = 16) -> list[list]:
    """Chunks for dynamic task mapping: each chunk is one matting task (spread over workers). Output
    names are planned here, once over the whole run (``output_stem``), so two batches can never write
    the same output and a retried batch writes the same names again."""
    from matting.naming import plan_outputs

    files = [dict(f) for f in files or []]
    stems = plan_outputs([f["path"] for f in files], "")
    for f in files:
        f["output_stem"] = stems[f["path"]]
    size = max(1, int(batch_size))
    return [files[i : i + size] for i in range(0, len(files), size)]


@task
def uploads_from_events(
    source: str, source_conn_id: str = "", ledger_location: str = "", ledger_conn_id: str = "", **context
) -> list:
    """The files this run's S3 notifications name that are still to do (``matting.events``): one line
    per skipped notification (duplicate, gone, superseded, already processed) and a summary."""
    from matting.detection import Ledger
    from matting.events import Upload, select_uploads
    from matting.storage import open_storage

    log = logging.getLogger("matting.tasks")
    uploads, messages = [], 0
    for events in (context.get("triggering_asset_events") or {}).values():
        for event in events:
            payload = (event.extra or {}).get("payload") or {}
            messages += 1
            uploads += [Upload.from_dict(u) for u in payload.get("uploads") or []]
    if not source.startswith("s3://"):
        raise ValueError(f"event-driven ingestion reads S3 notifications; the source {source!r} is not s3://")
    bucket, _, prefix = source[5:].partition("/")
    with open_storage(source, source_conn_id or None) as storage:
        ids: set[str] = set()
        if ledger_location:
            with open_storage(ledger_location, ledger_conn_id or None) as ledger_storage:
                ids = Ledger(ledger_storage).ids()
        selection = select_uploads(uploads, storage, bucket, prefix, ids)
    log.info("%d notification message(s), %d upload(s): %s", messages, len(uploads), selection.summary())
    return [f.to_dict() for f in selection.files]
