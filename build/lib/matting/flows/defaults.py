"""Defaults shared by the DAGs in dags/: retries, timeouts, the SLA (a Deadline Alert), failure
notifications, pool/queue, and where data lives. DAG files stay pure wiring.

Parse-time settings come from environment variables (no I/O at import); run-time settings come
from Airflow Variables through templates, each with a default, so the DAGs import and run with
nothing configured.
"""

from __future__ import annotations

import os
from datetime import timedelta

from matting.notifiers.webhook import WebhookNotifier


def setting(name: str, default: str) -> str:
    """A parse-time setting from the environment; unset or empty means the default (a compose file
    passes ``${VAR:-}`` through as an empty string)."""
    return os.environ.get(name) or default


def data_dir() -> str:
    """Default root for local incoming/ and archive/ folders (env MATTING_DATA_DIR), read per parse."""
    return setting("MATTING_DATA_DIR", "/opt/airflow/data")


def var(name: str, default: str) -> str:
    """A Jinja expression for Variable ``name`` with a default (rendered at run time)."""
    escaped = default.replace("'", "\\'")
    return "{{ var.value.get('" + name + "', '" + escaped + "') }}"


def default_args() -> dict:
    return {
        "owner": "matting",
        "retries": int(setting("MATTING_RETRIES", "3")),
        "retry_delay": timedelta(seconds=int(setting("MATTING_RETRY_DELAY_S", "60"))),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(minutes=30),
        "execution_timeout": timedelta(hours=2),
        "on_failure_callback": WebhookNotifier(message="matting task failed"),
    }


def matting_task_args() -> dict:
    """Pool, queue and (optionally) executor for the matting tasks. With a GPU worker set
    MATTING_POOL=matting_gpu (slots = GPUs x sessions per GPU) and MATTING_QUEUE=gpu; with Airflow 3's
    multiple executors MATTING_EXECUTOR (e.g. KubernetesExecutor) sends only these tasks there. The
    defaults run on any single local worker."""
    args = {
        "pool": setting("MATTING_POOL", "default_pool"),
        "queue": setting("MATTING_QUEUE", "default"),
    }
    executor = setting("MATTING_EXECUTOR", "")
    if executor:
        args["executor"] = executor
    return args


def deadline(default_minutes: int):
    """The run-level SLA as an Airflow 3 Deadline Alert (SLAs were removed in 3.0), or None when
    MATTING_DEADLINES=off (``dag.test()`` in 3.3.2 fails at the end of a run that declares one)."""
    if setting("MATTING_DEADLINES", "on").lower() in ("off", "0", "false", "no"):
        return None
    from airflow.sdk import AsyncCallback, DeadlineAlert, DeadlineReference

    minutes = float(setting("MATTING_SLA_MINUTES", str(default_minutes)))
    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=timedelta(minutes=minutes),
        callback=AsyncCallback("matting.notifiers.webhook.deadline_missed", kwargs={"sla": f"{minutes:g} min"}),
    )
