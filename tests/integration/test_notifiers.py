"""Failure and deadline notifications reach a webhook (a loopback HTTP server) and the log."""

from __future__ import annotations

import asyncio

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


def test_without_a_webhook_it_only_logs(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_MATTING_WEBHOOK", raising=False)
    WebhookNotifier().notify({"ti": _TI(), "dag": _Dag(), "run_id": "r3"})  # no error, no request
