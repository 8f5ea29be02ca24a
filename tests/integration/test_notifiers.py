"""Failure and deadline notifications reach a webhook (a loopback HTTP server) and the log."""

from __future__ import annotations

import asyncio
import http.server
import json
import threading

import pytest
from matting.notifiers import WebhookNotifier, deadline_missed


@pytest.fixture
def webhook(monkeypatch):
    received: list[dict] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    monkeypatch.setenv("AIRFLOW_CONN_MATTING_WEBHOOK", f"http://127.0.0.1:{srv.server_address[1]}/hook")
    yield received
    srv.shutdown()
    srv.server_close()


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
    assert webhook == [{"event": "deadline_missed", "sla": "90 min", "dag_id": "matting_s3_ingest", "run_id": "r2"}]


def test_without_a_webhook_it_only_logs(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_MATTING_WEBHOOK", raising=False)
    WebhookNotifier().notify({"ti": _TI(), "dag": _Dag(), "run_id": "r3"})  # no error, no request
