"""The SQS side of event-driven ingestion, against moto's SQS on loopback: what the producer does
with each message once the triggerer has resolved its event (the ack-mode contract)."""

from __future__ import annotations

import asyncio
import json
import uuid

import boto3
import pytest
from airflow.triggers.shared_stream import AdvanceItem, AdvanceOutcome
from matting.triggers.s3_events import SqsUploadsProducer


@pytest.fixture
def queues(s3_server, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_AWS_EVENTS", s3_server.conn_uri)
    sqs = boto3.client("sqs", endpoint_url=s3_server.endpoint, region_name="us-east-1")
    tag = uuid.uuid4().hex[:8]
    main = sqs.create_queue(QueueName=f"main-{tag}", Attributes={"VisibilityTimeout": "1"})["QueueUrl"]
    dead = sqs.create_queue(QueueName=f"dead-{tag}")["QueueUrl"]
    return sqs, main, dead


def _receive_all(producer: SqsUploadsProducer, want: int) -> list[tuple]:
    async def go():
        got = []
        async for raw, payload in producer.open_stream():
            got.append((raw, payload))
            if len(got) == want:
                return got

    return asyncio.run(asyncio.wait_for(go(), 30))


def _count(sqs, url: str) -> int:
    attrs = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


def test_stored_ones_are_deleted_refused_ones_dead_lettered_failed_ones_come_back(queues):
    sqs, main, dead = queues
    for body in ("stored", "refused", "failed", "nobody listening"):
        sqs.send_message(QueueUrl=main, MessageBody=json.dumps({"Records": [], "tag": body}))
    settings = {"queue_url": main, "aws_conn_id": "aws_events", "wait_time_s": 1, "visibility_timeout_s": 1}
    producer = SqsUploadsProducer({**settings, "dead_letter_url": dead})
    got = {json.loads(raw["body"])["tag"]: payload for raw, payload in _receive_all(producer, 4)}
    outcomes = {
        "stored": AdvanceOutcome(acked=1, failed=0),
        "refused": AdvanceOutcome(acked=0, failed=0, rejected=1),
        "failed": AdvanceOutcome(acked=0, failed=1),  # ack timeout: Airflow never confirmed it
        "nobody listening": AdvanceOutcome(acked=0, failed=0),
    }
    asyncio.run(producer.advance([AdvanceItem(got[tag], outcome) for tag, outcome in outcomes.items()]))

    dead_letters = sqs.receive_message(
        QueueUrl=dead, MaxNumberOfMessages=10, WaitTimeSeconds=1, MessageAttributeNames=["All"]
    ).get("Messages", [])
    assert [json.loads(m["Body"])["tag"] for m in dead_letters] == ["refused"]
    assert dead_letters[0]["MessageAttributes"]["matting_reason"]["StringValue"] == "not an S3 notification"
    # the two that Airflow did not store are delivered again after the visibility timeout; the
    # stored and the refused ones are gone from the main queue
    again = _receive_all(producer, 2)
    assert sorted(json.loads(raw["body"])["tag"] for raw, _ in again) == ["failed", "nobody listening"]
    assert all(raw["receive_count"] == 2 for raw, _ in again)
    asyncio.run(producer.advance([AdvanceItem(p, AdvanceOutcome(acked=1, failed=0)) for _, p in again]))
    assert _count(sqs, main) == 0
