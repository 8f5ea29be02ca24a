"""
### Scheduled background removal

At 09:00, 13:00 and 18:00 (Variable-free: `[matting] schedule` changes the cron), takes every
settled image in the source folder/prefix, removes backgrounds in mapped batches, and archives the run
under `<destination>/<dag_id>/YYYY/MM/DD/<run_id>/` (outputs, `manifest.json`, `outputs.zip`,
`contact_sheet.jpg`). Originals move to `processed/`; bad files to `quarantine/` with an `.error.json`.

Variables (all optional): `matting_source`, `matting_source_conn_id`, `matting_destination`,
`matting_destination_conn_id`, `matting_model`, `matting_scenario`, `matting_format`,
`matting_background`, `matting_batch_size`. Locations: a local path, `s3://bucket/prefix` or
`sftp:///dir`.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG
from matting import settings
from matting.flows import destination, remove_and_archive
from matting.flows.defaults import data_dir, deadline, default_args, run_params, var
from matting.flows.tasks import list_new_files, split_batches

SOURCE = var("matting_source", f"{data_dir()}/incoming")
SOURCE_CONN = var("matting_source_conn_id", "")

with DAG(
    dag_id="matting_scheduled",
    schedule=settings.value("schedule"),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    deadline=deadline(default_minutes=60),
    tags=["matting", "scheduled"],
    doc_md=__doc__,
    params=run_params(),
):
    dest, dest_conn_id = destination()
    files = list_new_files(SOURCE, SOURCE_CONN, ledger_location=dest, ledger_conn_id=dest_conn_id)
    batches = split_batches(files, var("matting_batch_size", "16"))
    remove_and_archive(SOURCE, SOURCE_CONN, batches)
