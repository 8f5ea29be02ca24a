"""Failure and deadline notifications reach a webhook (a loopback HTTP server) and the log."""

from __future__ import annotations

import asyncio
import logging

import pytest
from matting.notifiers.webhook import WebhookNotifier, deadline_missed
from servers import run_webhook_receiver


@pytest.fixture
def webhook(monkeypatch):
    with run_webhook_receiver() as receiver:
        monkeypatch.setenv("AIRFLOW_CONN_MATTING_WEBHOOK", receiver.url)
        yield receiver.received


class _TI:
    task_id, try_number = "remove_background", 2


class _Dag:
    dag_id = "matting_scheduled"


def test_failure_notifier_posts_the_event(webhook):
    WebhookNotifier(message="matting task failed").notify(
        {"ti": _TI(), "dag": _Dag(), "run_id": "r1", "exception": ValueError("boom")}
    )
    assert webhook == [
        {
            "event": "task_failed",
            "dag_id": "matting_scheduled",
            "run_id": "r1",
            "task_id": "remove_background",
            "try_number": 2,
            "message": "matting task failed",
            "exception": "boom",
        }
    ]


def test_deadline_callback_posts(webhook):
    class Run:
        dag_id, run_id = "matting_s3_ingest", "r2"

    asyncio.run(deadline_missed(sla="90 min", context={"dag_run": Run()}))
    # the shape the 3.3 scheduler really sends: the run as DAGRunResponse JSON, plus the deadline
    scheduler_context = {
        "dag_run": {"dag_id": "id_photo_batch", "dag_run_id": "manual__2026-11-23", "state": "running"},
        "deadline": {"id": "x", "deadline_time": "2026-11-23T12:00:00+00:00"},
    }
    asyncio.run(deadline_missed(sla="60 min", context=scheduler_context))
    assert webhook == [
        {
            "event": "deadline_missed",
            "sla": "90 min",
            "dag_id": "matting_s3_ingest",
            "run_id": "r2",
            "deadline_time": None,
        },
        {
            "event": "deadline_missed",
            "sla": "60 min",
            "dag_id": "id_photo_batch",
            "run_id": "manual__2026-11-23",
            "deadline_time": "2026-11-23T12:00:00+00:00",
        },
    ]


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_without_a_webhook_it_only_logs(monkeypatch):
    """No connection: the event is logged, nothing is sent anywhere (a receiver that would have been
    the webhook gets nothing), and the notifier does not raise."""
    monkeypatch.delenv("AIRFLOW_CONN_MATTING_WEBHOOK", raising=False)
    from matting.notifiers.webhook import post_webhook

    collect = _Collect()
    notify_log = logging.getLogger("matting.notify")
    notify_log.addHandler(collect)
    try:
        with run_webhook_receiver() as receiver:
            monkeypatch.setenv("AIRFLOW_CONN_OTHER_HOOK", receiver.url)  # exists, but is not the one asked for
            WebhookNotifier().notify({"ti": _TI(), "dag": _Dag(), "run_id": "r3"})
            assert post_webhook("matting_webhook", {"event": "x"}) is False
            assert receiver.received == []
    finally:
        notify_log.removeHandler(collect)
    assert any(m.startswith("task_failed: ") and '"run_id": "r3"' in m for m in collect.messages), collect.messages
