"""
### Event-driven S3 ingestion: seconds from upload to run

`matting_s3_events` runs when S3 says a photo arrived: the bucket sends `s3:ObjectCreated:*`
notifications to an SQS queue, and an `AssetWatcher` in the triggerer turns each message into an
event on the `matting_s3_uploads` asset (long poll: a message is seen as soon as it lands). A run
takes every event of the asset from the last `MATTING_S3_EVENTS_LOOKBACK_H` hours (24), not only the
ones that triggered it: Airflow hands an asset-triggered run only the events up to the first queued
one, and events stored while that run was being created start no run of their own, so a burst would
otherwise wait for the next upload. Many uploads at once make one run, in mapped batches. Each
announced object is checked against the ledger and the bucket (still there, same ETag), then matted
and archived exactly like `matting_s3_ingest`. Duplicated or redelivered notifications, and ones for
objects already processed or gone, are logged and skipped, so reading an event twice is harmless.
SQS messages are deleted only after Airflow stored their events; a message that is not an S3
notification goes to the dead-letter queue. Keep `matting_s3_ingest` (or a daily run of it) as the sweep for anything
a notification never announced.

Parse-time environment (the watcher is part of the DAG): `MATTING_S3_EVENTS_QUEUE_URL` (unset: the DAG
has no schedule), `MATTING_S3_EVENTS_DLQ_URL`, `MATTING_S3_EVENTS_CONN_ID` (`aws_default`),
`MATTING_S3_EVENTS_WAIT_S` (long poll, 10), `MATTING_S3_EVENTS_VISIBILITY_S` (300),
`MATTING_S3_EVENTS_LOOKBACK_H` (24). Variables as for
`matting_s3_ingest`: `matting_s3_source`, `matting_s3_conn_id`, `matting_destination`, ...
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Asset, AssetWatcher
from matting.flows import destination, remove_and_archive
from matting.flows.defaults import deadline, default_args, setting, var
from matting.flows.tasks import split_batches, uploads_from_events
from matting.triggers.s3_events import S3UploadsTrigger

queue_url = setting("MATTING_S3_EVENTS_QUEUE_URL", "")
conn_id = setting("MATTING_S3_EVENTS_CONN_ID", "aws_default")
uploads = Asset(
    name="matting_s3_uploads",
    watchers=[
        AssetWatcher(
            name="matting_s3_upload_notifications",
            trigger=S3UploadsTrigger(
                queue_url=queue_url,
                aws_conn_id=conn_id,
                wait_time_s=int(setting("MATTING_S3_EVENTS_WAIT_S", "10")),
                visibility_timeout_s=int(setting("MATTING_S3_EVENTS_VISIBILITY_S", "300")),
                dead_letter_url=setting("MATTING_S3_EVENTS_DLQ_URL", "") or None,
            ),
        )
    ]
    if queue_url
    else [],
)

with DAG(
    dag_id="matting_s3_events",
    schedule=[uploads] if queue_url else None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    deadline=deadline(default_minutes=90),
    tags=["matting", "ingest", "s3", "events"],
    doc_md=__doc__,
):
    source = var("matting_s3_source", "s3://incoming/photos")
    source_conn = var("matting_s3_conn_id", conn_id)
    dest, dest_conn_id = destination()
    lookback_h = float(setting("MATTING_S3_EVENTS_LOOKBACK_H", "24"))
    files = uploads_from_events.override(inlets=[uploads])(source, source_conn, dest, dest_conn_id, lookback_h)
    remove_and_archive(source, source_conn, split_batches(files, var("matting_batch_size", "16")))
