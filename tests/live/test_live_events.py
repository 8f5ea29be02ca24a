"""Live: event-driven S3 ingestion through a real triggerer. moto's server plays S3 and SQS on
loopback: the bucket sends ObjectCreated notifications to a queue (with a dead-letter queue, redrive
after 3 receives); Airflow's four components run the product's DAGs; `matting_s3_events` is scheduled
on the `matting_s3_uploads` asset, watched by `S3UploadsTrigger` in ack mode.

Measured and printed: upload -> run queued (must be under 10 s), and a burst of 500 uploads (real
boto3 clients in parallel, some multipart) with duplicated notifications, a notification for an object
that never existed and a poison message: every photo processed exactly once, the poison message in the
dead-letter queue, nothing left in the source.
"""

from __future__ import annotations

import io
import json
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import boto3
import pytest
from conftest import SAMPLES
from live_airflow import LiveAirflow
from PIL import Image

pytestmark = pytest.mark.live

DAG_ID = "matting_s3_events"


def _photo(i: int) -> bytes:
    """A small distinct JPEG (a sample, cropped differently per index): cheap to mat."""
    base = Image.open(SAMPLES / ("astronaut.jpg", "coffee.jpg", "rocket.jpg")[i % 3]).convert("RGB")
    w, h = base.size
    dx, dy = (i * 7) % (w // 4), (i * 11) % (h // 4)
    img = base.crop((dx, dy, dx + w * 3 // 4, dy + h * 3 // 4)).resize((96, 96))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85)
    return buf.getvalue()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, model_store, s3_server):
    tag = uuid.uuid4().hex[:8]
    bucket = f"events-{tag}"
    s3 = s3_server.client()
    sqs = boto3.client("sqs", endpoint_url=s3_server.endpoint, region_name="us-east-1")
    dlq = sqs.create_queue(QueueName=f"uploads-dlq-{tag}")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"})
    queue = sqs.create_queue(QueueName=f"uploads-{tag}", Attributes={"RedrivePolicy": redrive})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.create_bucket(Bucket=bucket)
    rule = {"Key": {"FilterRules": [{"Name": "prefix", "Value": "photos/"}]}}
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"], "Filter": rule}]
        },
    )
    data = tmp_path_factory.mktemp("events-data")
    live = LiveAirflow(
        home=tmp_path_factory.mktemp("events-airflow-home"),
        extra_env={
            "AIRFLOW__MATTING__DATA_DIR": str(data),
            "AIRFLOW_CONN_AWS_DEFAULT": s3_server.conn_uri,
            "AIRFLOW_VAR_MATTING_S3_SOURCE": f"s3://{bucket}/photos",
            "AIRFLOW_VAR_MATTING_DESTINATION": str(data / "archive"),
            "AIRFLOW__MATTING__S3_EVENTS_QUEUE_URL": queue,
            "AIRFLOW__MATTING__S3_EVENTS_DLQ_URL": dlq,
            "AIRFLOW__MATTING__S3_EVENTS_WAIT_S": "5",
            "AIRFLOW__MATTING__S3_EVENTS_VISIBILITY_S": "120",
            "AIRFLOW__MATTING__RETRIES": "1",
            "AIRFLOW__MATTING__RETRY_DELAY_S": "5",
            "AIRFLOW__MATTING__PROVIDERS": "cpu",
        },
    )
    live.bucket, live.s3, live.sqs, live.queue, live.dlq, live.archive = bucket, s3, sqs, queue, dlq, data / "archive"
    try:
        live.start()
        live.wait_for_dag(DAG_ID)
        live.api("PATCH", f"dags/{DAG_ID}", {"is_paused": False})
        yield live
    finally:
        live.stop()


def _runs(live) -> list[dict]:
    return live.api("GET", f"dags/{DAG_ID}/dagRuns", params={"limit": 100, "order_by": "run_after"})["dag_runs"]


def _wait_for_new_run(live, known: set[str], timeout: float) -> dict:
    def new():
        fresh = [r for r in _runs(live) if r["dag_run_id"] not in known]
        return fresh[0] if fresh else None

    return live.wait_for("a run started by an upload notification", new, timeout, every=0.5)


def _wait_idle(live, timeout: float) -> None:
    def idle():
        return all(r["state"] in ("success", "failed") for r in _runs(live)) and _runs(live)

    live.wait_for("every run to finish", idle, timeout, every=3)


def _left_in_source(live) -> list[str]:
    keys = []
    for page in live.s3.get_paginator("list_objects_v2").paginate(Bucket=live.bucket, Prefix="photos/"):
        keys += [o["Key"] for o in page.get("Contents", []) if not o["Key"].startswith("photos/processed/")]
    return keys


def _processed_sources(live) -> dict[str, int]:
    """source path -> how many times a run manifest records it as done."""
    done: dict[str, int] = {}
    for manifest in live.archive.rglob("manifest.json"):
        for rec in json.loads(manifest.read_text())["files"]:
            assert rec["status"] == "ok", rec
            done[rec["source"]] = done.get(rec["source"], 0) + 1
    return done


def test_an_upload_starts_a_run_within_seconds(stack):
    stack.s3.put_object(Bucket=stack.bucket, Key="photos/warm-up.jpg", Body=_photo(0))
    first = _wait_for_new_run(stack, set(), timeout=120)  # the triggerer may still be starting the watcher
    stack.wait_for_run(DAG_ID, first["dag_run_id"], timeout=300)
    _wait_idle(stack, 120)

    known = {r["dag_run_id"] for r in _runs(stack)}
    uploaded = time.time()
    stack.s3.put_object(Bucket=stack.bucket, Key="photos/one.jpg", Body=_photo(1))
    run = _wait_for_new_run(stack, known, timeout=60)
    latency = datetime.fromisoformat(run["queued_at"].replace("Z", "+00:00")).timestamp() - uploaded
    print(f"\nupload -> run queued: {latency:.1f} s")
    assert latency < 10, latency
    stack.wait_for_run(DAG_ID, run["dag_run_id"], timeout=300)
    assert _processed_sources(stack) == {"warm-up.jpg": 1, "one.jpg": 1}
    assert _left_in_source(stack) == []


BURST = 500


def _notification(bucket: str, key: str, etag: str, size: int) -> str:
    """What S3 sends for an upload (a copy of one is what an at-least-once redelivery looks like)."""
    obj = {"key": key.replace(" ", "+"), "size": size, "eTag": etag.strip('"'), "sequencer": "0"}
    record = {"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": bucket}, "object": obj}}
    return json.dumps({"Records": [record]})


def test_a_burst_is_processed_exactly_once(stack):
    from boto3.s3.transfer import TransferConfig

    _wait_idle(stack, 300)
    before = _processed_sources(stack)
    known = {r["dag_run_id"] for r in _runs(stack)}
    multipart = TransferConfig(multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024)
    big = _photo(7) + b"\0" * (6 * 1024 * 1024)  # a JPEG with trailing bytes: a real 2-part upload

    def upload(i: int) -> tuple[str, str, int]:
        key = f"photos/burst/{i:03d}.jpg"
        if i % 100 == 0:
            stack.s3.upload_fileobj(io.BytesIO(big), stack.bucket, key, Config=multipart)
            head = stack.s3.head_object(Bucket=stack.bucket, Key=key)
            return key, head["ETag"], head["ContentLength"]
        body = _photo(i)
        return key, stack.s3.put_object(Bucket=stack.bucket, Key=key, Body=body)["ETag"], len(body)

    started = time.time()
    with ThreadPoolExecutor(8) as pool:
        uploaded = list(pool.map(upload, range(BURST)))
    for key, etag, size in uploaded[::10]:  # 50 duplicated notifications
        stack.sqs.send_message(QueueUrl=stack.queue, MessageBody=_notification(stack.bucket, key, etag, size))
    stack.sqs.send_message(QueueUrl=stack.queue, MessageBody=_notification(stack.bucket, "photos/never.jpg", "e", 1))
    stack.sqs.send_message(QueueUrl=stack.queue, MessageBody="<html>not a notification</html>")
    print(f"\n{BURST} uploads + 52 extra messages sent in {time.time() - started:.1f} s")

    expected = {key.removeprefix("photos/") for key, _, _ in uploaded}

    def all_done():
        done = _processed_sources(stack)
        return len(expected & set(done)) == BURST and all(r["state"] in ("success", "failed") for r in _runs(stack))

    stack.wait_for(f"all {BURST} photos processed", all_done, timeout=1500, every=5)
    elapsed = time.time() - started
    runs = [r for r in _runs(stack) if r["dag_run_id"] not in known]
    print(f"{BURST} photos processed in {elapsed:.0f} s by {len(runs)} run(s): {BURST / elapsed:.2f} photos/s")
    assert [r["state"] for r in runs] == ["success"] * len(runs), runs
    done = _processed_sources(stack)
    assert {k: n for k, n in done.items() if n != 1} == {}, "a photo was processed twice"
    assert set(done) == set(before) | expected
    assert _left_in_source(stack) == []

    def dead_letters():
        got = stack.sqs.receive_message(QueueUrl=stack.dlq, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        return [m["Body"] for m in got.get("Messages", [])]

    dead = stack.wait_for("the poison message in the dead-letter queue", dead_letters, 60, every=1)
    assert dead == ["<html>not a notification</html>"]
    # every run settles every upload it read to exactly one outcome, and says so in one line
    log = stack.task_logs_tail(DAG_ID, chars=10**7)
    summaries = re.findall(r"(\d+) upload\(s\): (to process=\d+(?: [a-z ()]+=\d+)*)", log)
    assert len(summaries) >= len(runs)
    for uploads, summary in summaries:
        assert sum(int(n) for n in re.findall(r"=(\d+)", summary)) == int(uploads), summary
    last = summaries[-1][1]
    assert "duplicate notification=" in last and "gone (deleted or moved away)=" in last, last
