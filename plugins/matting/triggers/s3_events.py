"""The event trigger behind event-driven S3 ingestion: S3 notifications from SQS, in the
triggerer's ack mode (a message is deleted only after Airflow stored its event)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent
from airflow.triggers.shared_stream import SharedStreamProducer, reject_shared_stream_event

from matting import layout


class SqsUploadsProducer(SharedStreamProducer):
    """SQS, consumed at least once: messages are received with a visibility timeout and deleted only
    after Airflow has stored the asset events made from them (the triggerer's ack mode). A message
    the filter refuses (not an S3 notification) goes to the dead-letter queue when one is named, and
    is deleted. One whose events were never stored (triggerer crash, ack timeout) is not deleted: SQS
    delivers it again after the visibility timeout, and the queue's redrive policy dead-letters it
    after ``maxReceiveCount`` tries. Every SQS call has a timeout."""

    def __init__(self, kwargs: dict[str, Any]) -> None:
        self.queue_url = kwargs["queue_url"]
        self.aws_conn_id = kwargs.get("aws_conn_id") or "aws_default"
        self.wait_time_s = int(kwargs.get("wait_time_s", 10))
        self.visibility_timeout_s = int(kwargs.get("visibility_timeout_s", 300))
        self.dead_letter_url = kwargs.get("dead_letter_url") or None
        self._client = None

    def _sqs(self):
        if self._client is None:
            from airflow.providers.amazon.aws.hooks.sqs import SqsHook

            from matting import settings
            from matting.storage.s3 import aws_config

            # a long poll holds the request open for up to wait_time_s
            config = aws_config(read_timeout_s=self.wait_time_s + settings.value("io_timeout_s"))
            self._client = SqsHook(aws_conn_id=self.aws_conn_id, config=config).get_conn()
        return self._client

    async def open_stream(self) -> AsyncIterator[tuple[Any, Any]]:
        import logging

        log = logging.getLogger("matting.triggers")
        backoff = 1.0
        while True:
            try:
                response = await asyncio.to_thread(
                    self._sqs().receive_message,
                    QueueUrl=self.queue_url,
                    MaxNumberOfMessages=10,
                    WaitTimeSeconds=self.wait_time_s,
                    VisibilityTimeout=self.visibility_timeout_s,
                    MessageSystemAttributeNames=["ApproximateReceiveCount"],
                )
            except Exception as exc:  # keep the stream and try again: a watcher has no task to fail
                from matting.errors import is_permanent

                # a wrong credential or a missing queue will not fix itself: say so loudly, every time
                permanent = is_permanent(exc)
                (log.error if permanent else log.warning)(
                    "receiving from %s failed%s: %s: %s; again in %.0fs",
                    self.queue_url,
                    " (will not succeed until the connection or queue is fixed)" if permanent else "",
                    type(exc).__name__,
                    exc,
                    backoff,
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 60.0)
                continue
            backoff = 1.0
            for message in response.get("Messages", []):
                raw = {
                    "message_id": message["MessageId"],
                    "body": message.get("Body", ""),
                    "receive_count": int((message.get("Attributes") or {}).get("ApproximateReceiveCount", 1)),
                }
                yield (
                    raw,
                    {"receipt": message["ReceiptHandle"], "message_id": message["MessageId"], "body": raw["body"]},
                )

    async def advance(self, batch) -> None:
        import logging

        log = logging.getLogger("matting.triggers")
        done, dead, again = [], [], 0
        for item in batch:
            if item.outcome.rejected:
                dead.append(item.broker_payload)
            elif item.outcome.is_clean:
                done.append(item.broker_payload)
            else:
                again += 1  # failed or nobody listening: SQS delivers it again
        for payload in dead:
            if self.dead_letter_url:
                await asyncio.to_thread(
                    self._sqs().send_message,
                    QueueUrl=self.dead_letter_url,
                    MessageBody=payload["body"],
                    MessageAttributes={
                        "matting_reason": {"DataType": "String", "StringValue": "not an S3 notification"}
                    },
                )
            log.error(
                "dead-lettered message %s (not an S3 notification) %s",
                payload["message_id"],
                f"to {self.dead_letter_url}" if self.dead_letter_url else "(no dead-letter queue named: deleted)",
            )
        entries = done + dead
        for i in range(0, len(entries), 10):
            chunk = entries[i : i + 10]
            response = await asyncio.to_thread(
                self._sqs().delete_message_batch,
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(n), "ReceiptHandle": p["receipt"]} for n, p in enumerate(chunk)],
            )
            for failed in response.get("Failed", []):  # redelivered later; the runs skip what they did
                log.warning("could not delete message %s: %s", chunk[int(failed["Id"])]["message_id"], failed)
        if again:
            log.warning("%d message(s) not stored by Airflow: left for SQS to deliver again", again)

    async def aclose(self) -> None:
        self._client = None


class S3UploadsTrigger(BaseEventTrigger):
    """S3 ObjectCreated notifications from an SQS queue, for an ``AssetWatcher``: one asset event per
    message with the uploads it names (``{"uploads": [...], "message_id", "receive_count"}``).

    Runs in the triggerer's ack mode (``create_shared_stream_producer``): a message is deleted only
    after its asset event is in Airflow's database, so a triggerer crash loses nothing; duplicates
    and redeliveries are settled by the run (``matting.pipeline.events.select_uploads``). Test events and
    non-create events are consumed quietly; a message that is not an S3 notification is refused and
    dead-lettered, so it cannot come back forever.

    :param queue_url: the SQS queue S3 sends ObjectCreated notifications to.
    :param aws_conn_id: AWS connection (``endpoint_url`` in its extras for S3-compatible stacks).
    :param wait_time_s: SQS long-poll wait (0-20 s): a message is seen as soon as it arrives.
    :param visibility_timeout_s: how long a received message stays hidden before SQS redelivers it.
    :param dead_letter_url: where refused messages go (else they are deleted, with an error log).
    :param ignore_folders: uploads under a folder of one of these names (anywhere in the key) are
        the pipeline's own moves (``processed/``, ``quarantine/``, ...): consumed without an event.
    """

    def __init__(
        self,
        queue_url: str,
        aws_conn_id: str = "aws_default",
        wait_time_s: int = 10,
        visibility_timeout_s: int = 300,
        dead_letter_url: str | None = None,
        ignore_folders: list[str] | tuple[str, ...] = layout.SOURCE_RESERVED,
    ) -> None:
        super().__init__()
        self.queue_url, self.aws_conn_id = queue_url, aws_conn_id
        self.wait_time_s, self.visibility_timeout_s = int(wait_time_s), int(visibility_timeout_s)
        self.dead_letter_url = dead_letter_url
        self.ignore_folders = list(ignore_folders)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "matting.triggers.s3_events.S3UploadsTrigger",
            {
                "queue_url": self.queue_url,
                "aws_conn_id": self.aws_conn_id,
                "wait_time_s": self.wait_time_s,
                "visibility_timeout_s": self.visibility_timeout_s,
                "dead_letter_url": self.dead_letter_url,
                "ignore_folders": self.ignore_folders,
            },
        )

    def shared_stream_key(self):
        return ("sqs", self.queue_url, self.aws_conn_id)

    @classmethod
    def create_shared_stream_producer(cls, kwargs: dict[str, Any]) -> SharedStreamProducer:
        return SqsUploadsProducer(kwargs)

    async def filter_shared_stream(self, shared_stream) -> AsyncIterator[TriggerEvent]:
        from matting.pipeline.events import PoisonMessage, parse_notification

        async for raw in shared_stream:
            try:
                uploads = parse_notification(raw["body"])
            except PoisonMessage as exc:
                self.log.error("message %s refused: %s", raw["message_id"], exc)
                reject_shared_stream_event()
                continue
            ignored = set(self.ignore_folders)
            uploads = [u for u in uploads if not ignored & set(u.key.split("/")[:-1])]
            if not uploads:
                self.log.info("message %s announces no new upload (test event, our own move, ...)", raw["message_id"])
                continue
            self.log.info(
                "message %s (delivery %d): %s",
                raw["message_id"],
                raw["receive_count"],
                ", ".join(f"s3://{u.bucket}/{u.key}" for u in uploads[:5]),
            )
            yield TriggerEvent(
                {
                    "uploads": [u.to_dict() for u in uploads],
                    "message_id": raw["message_id"],
                    "receive_count": raw["receive_count"],
                }
            )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Only the shared stream (ack mode) consumes the queue; a plain poll loop would have to
        delete messages before Airflow stored them."""
        raise RuntimeError("S3UploadsTrigger runs through the triggerer's shared stream (Airflow 3.3+)")
        yield  # pragma: no cover
