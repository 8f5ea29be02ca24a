"""Failure and deadline notifications reach a webhook (a loopback HTTP server) and the log."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import socket
import time

import pytest
from matting.notifiers.webhook import WebhookNotifier, deadline_missed, post_webhook
from servers import run_webhook_receiver


@pytest.fixture
def webhook(monkeypatch):
    """An HTTP connection as the http provider documents it (the full URL as the host), with a login."""
    with run_webhook_receiver() as receiver:
        conn = {"conn_type": "http", "host": receiver.url, "login": "alerts", "password": "s3cret"}
        monkeypatch.setenv("AIRFLOW_CONN_MATTING_WEBHOOK", json.dumps(conn))
        yield receiver


class _TI:
    task_id, try_number = "remove_background", 2


class _Dag:
    dag_id = "matting_scheduled"


def test_failure_notifier_posts_the_event(webhook):
    WebhookNotifier(message="matting task failed").notify(
        {"ti": _TI(), "dag": _Dag(), "run_id": "r1", "exception": ValueError("boom")}
    )
    # through HttpHook: the connection's login reaches the receiver as basic auth
    assert webhook.headers[0]["Authorization"] == "Basic " + base64.b64encode(b"alerts:s3cret").decode()
    assert webhook.headers[0]["Content-Type"] == "application/json"
    assert webhook.received == [
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
    assert webhook.received == [
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
    assert "no connection matting_webhook: the event is logged only" in collect.messages


def _collecting():
    collect = _Collect()
    logging.getLogger("matting.notify").addHandler(collect)
    return collect


def test_release_0_1_uri_form_still_reaches_the_webhook_with_a_warning(monkeypatch):
    """``http://host:port/hook`` as a URI puts ``hook`` in schema, where HttpHook reads the scheme."""
    collect = _collecting()
    try:
        with run_webhook_receiver() as receiver:
            monkeypatch.setenv("AIRFLOW_CONN_MATTING_WEBHOOK", receiver.url)
            assert post_webhook("matting_webhook", {"event": "x"}) is True
            assert receiver.received == [{"event": "x"}]
    finally:
        logging.getLogger("matting.notify").removeHandler(collect)
    warned = [m for m in collect.messages if "URI form of release 0.1" in m]
    assert len(warned) == 1 and '"host": "http://127.0.0.1:' in warned[0] and '/hook"}' in warned[0]


def test_a_connection_that_cannot_be_used_is_an_error_in_the_log_and_bounded(monkeypatch, caplog):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv(
        "AIRFLOW_CONN_MATTING_WEBHOOK", json.dumps({"conn_type": "http", "host": f"http://127.0.0.1:{port}/x"})
    )
    caplog.set_level(logging.INFO, logger="matting.notify")
    t0 = time.monotonic()
    WebhookNotifier(message="m").notify({"ti": _TI(), "dag": _Dag(), "run_id": "r4"})  # does not raise
    assert time.monotonic() - t0 < 15
    errors = [r for r in caplog.records if r.levelno == logging.ERROR and "could not be notified" in r.getMessage()]
    assert len(errors) == 1 and "matting_webhook" in errors[0].getMessage()
    assert "ConnectionError" in errors[0].getMessage()
    assert "s3cret" not in caplog.text


def test_a_receiver_answering_an_error_is_reported(monkeypatch, caplog):
    with run_webhook_receiver(status=403) as receiver:
        conn = {"conn_type": "http", "host": receiver.url}
        monkeypatch.setenv("AIRFLOW_CONN_MATTING_WEBHOOK", json.dumps(conn))
        caplog.set_level(logging.INFO, logger="matting.notify")
        assert post_webhook("matting_webhook", {"event": "x"}) is False
    assert receiver.received == [{"event": "x"}]  # an answer is not retried; only connection failures are
    assert any(r.levelno == logging.ERROR and "403" in r.getMessage() for r in caplog.records)
