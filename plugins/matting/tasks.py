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
