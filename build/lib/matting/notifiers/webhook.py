"""Failure and SLA notifications: log always; POST JSON to a webhook when an HTTP connection is set.

The webhook is an Airflow HTTP connection (default id ``matting_webhook``; host = the URL). Without
it the notifiers only log, so the DAGs work with nothing configured. Secrets stay in the connection.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from typing import Any

from airflow.sdk import BaseNotifier

log = logging.getLogger("matting.notify")

DEFAULT_WEBHOOK_CONN = "matting_webhook"


def _webhook_url(conn_id: str) -> str | None:
    """The webhook URL from an Airflow connection: ``https://hooks.example.com/path`` as a URI
    (Airflow puts the path in ``schema``), or a JSON connection whose ``host`` is the full URL."""
    try:
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(conn_id)
    except Exception:  # not configured: notifications are logged only
        return None
    host = conn.host or ""
    if not host:
        return None
    if "://" in host:
        return host
    schema = (conn.schema or "").strip("/")
    if schema in ("http", "https"):
        scheme, path = schema, ""
    else:
        scheme = conn.conn_type if conn.conn_type in ("http", "https") else "https"
        path = f"/{schema}" if schema else ""
    port = f":{conn.port}" if conn.port else ""
    return f"{scheme}://{host}{port}{path}"


def post_webhook(conn_id: str, payload: dict) -> bool:
    url = _webhook_url(conn_id)
    if not url:
        return False
    req = urllib.request.Request(
        url, data=json.dumps(payload).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return 200 <= resp.status < 300
    except Exception as exc:  # a broken webhook must not fail the task it reports on
        log.warning("webhook %s failed: %s", conn_id, exc)
        return False


class WebhookNotifier(BaseNotifier):
    """on_failure_callback / on_success_callback: logs the event and posts it to the webhook."""

    template_fields = ("message",)

    def __init__(self, message: str = "", conn_id: str = DEFAULT_WEBHOOK_CONN, event: str = "task_failed") -> None:
        super().__init__()
        self.message, self.conn_id, self.event = message, conn_id, event

    def notify(self, context: Any) -> None:
        ti = context.get("ti") or context.get("task_instance")
        payload = {
            "event": self.event,
            "dag_id": getattr(context.get("dag"), "dag_id", None),
            "run_id": context.get("run_id"),
            "task_id": getattr(ti, "task_id", None),
            "try_number": getattr(ti, "try_number", None),
            "message": self.message,
            "exception": str(context.get("exception") or "")[:2000],
        }
        log.error("%s: %s", self.event, json.dumps(payload))
        post_webhook(self.conn_id, payload)


async def deadline_missed(conn_id: str = DEFAULT_WEBHOOK_CONN, sla: str = "", **kwargs: Any) -> None:
    """Deadline Alert callback (runs in the triggerer): a run was not done within its SLA.

    The scheduler hands the callback ``context={"dag_run": <DAGRunResponse as JSON>, "deadline":
    {...}}`` (Airflow 3.3): the run id is under ``dag_run_id`` there, ``run_id`` on a DagRun object."""
    context = kwargs.get("context") or {}
    dag_run = context.get("dag_run") or {}

    def field(*names: str) -> Any:
        for name in names:
            value = dag_run.get(name) if isinstance(dag_run, dict) else getattr(dag_run, name, None)
            if value:
                return value
        return None

    payload = {
        "event": "deadline_missed",
        "sla": sla,
        "dag_id": field("dag_id"),
        "run_id": field("dag_run_id", "run_id"),
        "deadline_time": str((context.get("deadline") or {}).get("deadline_time") or "") or None,
    }
    log.error("deadline missed: %s", json.dumps(payload))
    import asyncio

    await asyncio.to_thread(post_webhook, conn_id, payload)
