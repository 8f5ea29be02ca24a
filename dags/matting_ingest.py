"""
### Sensor-triggered ingestion from S3 and SFTP

`matting_s3_ingest` and `matting_sftp_ingest`: a deferrable new-file sensor waits in the triggerer
for settled images, then the batch is matted in mapped chunks and archived under
`<destination>/<dag_id>/YYYY/MM/DD/<run_id>/` with its manifest, zip and contact sheet. Originals move to
`processed/` (bad ones to `quarantine/` with an `.error.json`), so no file is handed out twice.
One run at a time (`max_active_runs=1`); a run that finds nothing before the sensor's timeout is
skipped, not failed.

Connections: `aws_default` / `sftp_default` (or the Variables below). Variables (optional):
`matting_<kind>_source` (`s3://incoming/photos`, `sftp:///upload/photos`), `matting_<kind>_conn_id`,
`matting_destination`, `matting_destination_conn_id`, `matting_model`, `matting_scenario`,
`matting_format`, `matting_background`, `matting_batch_size`. Parse-time settings, `[matting]` section:
`<kind>_schedule` (cron, default every 15 min), `poke_interval_s` (30), `settle_seconds` (10: a file must
keep its size and mtime this long), `max_files_per_run` (500).
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG
from matting import settings
from matting.flows import destination, remove_and_archive
from matting.flows.defaults import deadline, default_args, run_params, var
from matting.flows.tasks import split_batches
from matting.sensors.new_files import S3NewFilesSensor, SftpNewFilesSensor

for kind, sensor_cls, default_source, default_conn in (
    ("s3", S3NewFilesSensor, "s3://incoming/photos", "aws_default"),
    ("sftp", SftpNewFilesSensor, "sftp:///upload/photos", "sftp_default"),
):
    source = var(f"matting_{kind}_source", default_source)
    conn = var(f"matting_{kind}_conn_id", default_conn)
    with DAG(
        dag_id=f"matting_{kind}_ingest",
        schedule=settings.value(f"{kind}_schedule"),
        start_date=datetime(2026, 1, 1),
        catchup=False,
        max_active_runs=1,
        default_args=default_args(),
        deadline=deadline(default_minutes=90),
        tags=["matting", "ingest", kind],
        doc_md=__doc__,
        params=run_params(),
    ):
        dest, dest_conn_id = destination()
        found = sensor_cls(
            task_id="wait_for_new_files",
            location=source,
            conn_id=conn,
            ledger_location=dest,
            ledger_conn_id=dest_conn_id,
            deferrable=True,
            poke_interval=settings.value("poke_interval_s"),
            settle_seconds=settings.value("settle_seconds"),
            timeout=14 * 60,
            soft_fail=True,
            max_files=settings.value("max_files_per_run"),
        )
        remove_and_archive(source, conn, split_batches(found.output, var("matting_batch_size", "16")))
