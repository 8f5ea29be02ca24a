"""
### Event-driven S3 ingestion: seconds from upload to run

`matting_s3_events` runs when S3 says a photo arrived: the bucket sends `s3:ObjectCreated:*`
notifications to an SQS queue, and an `AssetWatcher` in the triggerer turns each message into an
event on the `matting_s3_uploads` asset (long poll: a message is seen as soon as it lands). A run
takes every event of the asset from the last `[matting] s3_events_lookback_h` hours (24), not only the
ones that triggered it: Airflow hands an asset-triggered run only the events up to the first queued
one, and events stored while that run was being created start no run of their own, so a burst would
otherwise wait for the next upload. Many uploads at once make one run, in mapped batches. Each
announced object is checked against the ledger and the bucket (still there, same ETag), then matted
and archived exactly like `matting_s3_ingest`. Duplicated or redelivered notifications, and ones for
objects already processed or gone, are logged and skipped, so reading an event twice is harmless.
SQS messages are deleted only after Airflow stored their events; a message that is not an S3
notification goes to the dead-letter queue. Keep `matting_s3_ingest` (or a daily run of it) as the sweep for anything
a notification never announced.

Parse-time settings, `[matting]` section (the watcher is part of the DAG): `s3_events_queue_url` (unset:
the DAG has no schedule), `s3_events_dlq_url`, `s3_events_conn_id` (`aws_default`), `s3_events_wait_s`
(long poll, 10), `s3_events_visibility_s` (300), `s3_events_lookback_h` (24). Variables as for
`matting_s3_ingest`: `matting_s3_source`, `matting_s3_conn_id`, `matting_destination`, ...
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Asset, AssetWatcher
from matting import settings
from matting.flows import destination, remove_and_archive
from matting.flows.defaults import deadline, default_args, run_params, var
from matting.flows.tasks import split_batches, uploads_from_events
from matting.triggers.s3_events import S3UploadsTrigger

queue_url = settings.value("s3_events_queue_url")
conn_id = settings.value("s3_events_conn_id")
uploads = Asset(
    name="matting_s3_uploads",
    watchers=[
        AssetWatcher(
            name="matting_s3_upload_notifications",
            trigger=S3UploadsTrigger(
                queue_url=queue_url,
                aws_conn_id=conn_id,
                wait_time_s=settings.value("s3_events_wait_s"),
                visibility_timeout_s=settings.value("s3_events_visibility_s"),
                dead_letter_url=settings.value("s3_events_dlq_url") or None,
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
    params=run_params(),
):
    source = var("matting_s3_source", "s3://incoming/photos")
    source_conn = var("matting_s3_conn_id", conn_id)
    dest, dest_conn_id = destination()
    lookback_h = settings.value("s3_events_lookback_h")
    files = uploads_from_events.override(inlets=[uploads])(source, source_conn, dest, dest_conn_id, lookback_h)
    remove_and_archive(source, source_conn, split_batches(files, var("matting_batch_size", "16")))
