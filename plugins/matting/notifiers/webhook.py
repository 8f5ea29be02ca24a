"""Failure and SLA notifications: log always; POST JSON to a webhook through the http provider's
``HttpHook`` when the HTTP connection exists.

The webhook is an Airflow HTTP connection (``[matting] webhook_conn_id``, default ``matting_webhook``):
``{"conn_type": "http", "host": "https://hooks.example.com/path"}`` (the full URL as the host), or
host + port with the scheme in ``schema`` as the http provider documents it; login/password become
basic auth and the extra's ``headers`` are sent, as for any ``HttpHook``. Without the connection the
notifiers only log, so the DAGs work with nothing configured. A connection that exists but cannot be
used (bad URL, refused, timed out, a non-2xx answer) is an ERROR line in the task's log naming it; the
task's own outcome is never changed by its notification. Secrets stay in the connection.

Release 0.1 documented the URI form ``https://hooks.example.com/path``, which Airflow parses into
``conn_type=https`` and the path into ``schema``, where ``HttpHook`` reads the URL scheme; such a
connection is still understood (the path is sent as the endpoint) with a warning to rewrite it.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from airflow.providers.http.hooks.http import HttpHook
from airflow.sdk import BaseNotifier
from airflow.sdk.exceptions import AirflowNotFoundException

log = logging.getLogger("matting.notify")

DEFAULT_WEBHOOK_CONN = "matting_webhook"
TIMEOUT_S = (5, 10)  # connect, read: a hung receiver costs a callback seconds, never a hang
ATTEMPTS = 3  # connection errors and timeouts only; an HTTP error answer is not retried


class WebhookHook(HttpHook):
    """``HttpHook`` for one webhook connection, also reading release 0.1's URI form (see module)."""

    def __init__(self, conn_id: str) -> None:
        super().__init__(method="POST", http_conn_id=conn_id)
        self.endpoint: str | None = None

    def get_connection(self, conn_id: str):  # type: ignore[override]
        conn = super().get_connection(conn_id)
        schema = (conn.schema or "").strip("/")
        if conn.conn_type in ("http", "https") and schema and schema not in ("http", "https"):
            if self.endpoint is None:
                port = f":{conn.port}" if conn.port else ""
                url = f"{conn.conn_type}://{conn.host}{port}/{schema}"
                log.warning(
                    "connection %s names its URL path in schema (%r), the URI form of release 0.1 (HttpHook reads "
                    'schema as the URL scheme); define it as {"conn_type": "http", "host": "%s"}',
                    conn_id,
                    schema,
                    url,
                )
            self.endpoint = f"/{schema}"
            conn.schema = conn.conn_type
        return conn

    def url_from_endpoint(self, endpoint: str | None) -> str:
        """The URL path of a 0.1 connection (found by ``get_connection``, which ``run`` calls first)."""
        return super().url_from_endpoint(endpoint or self.endpoint)


def post_webhook(conn_id: str, payload: dict) -> bool:
    """POST ``payload`` as JSON; True when the receiver answered 2xx. Never raises: a missing
    connection is logged as such, any other failure as an ERROR naming the connection."""
    from requests.exceptions import ConnectionError as RequestsConnectionError
    from requests.exceptions import Timeout
    from tenacity import retry_if_exception_type, stop_after_attempt, wait_exponential

    hook = WebhookHook(conn_id)
    try:
        response = hook.run_with_advanced_retry(
            _retry_args={
                "stop": stop_after_attempt(ATTEMPTS),
                "wait": wait_exponential(multiplier=0.5, max=4),
                "retry": retry_if_exception_type((RequestsConnectionError, Timeout)),
                "reraise": True,
            },
            json=payload,
            extra_options={"timeout": TIMEOUT_S},
        )
    except AirflowNotFoundException:  # raised by the connection lookup, before any request
        log.info("no connection %s: the event is logged only", conn_id)
        return False
    except Exception as exc:  # a broken webhook must not fail the task it reports on, but must be seen
        log.error("webhook %s could not be notified: %s: %s", conn_id, type(exc).__name__, exc)
        return False
    log.info("webhook %s notified: HTTP %s", conn_id, response.status_code)
    return True


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
