"""Defaults shared by the DAGs in dags/: retries, timeouts, the SLA (a Deadline Alert), failure
notifications, pool/queue, and where data lives. DAG files stay pure wiring.

Parse-time settings come from the ``[matting]`` section of Airflow's configuration (see
matting.settings; no I/O at import); run-time settings come from Airflow Variables through templates,
each with a default, so the DAGs import and run with nothing configured.
"""

from __future__ import annotations

from datetime import timedelta

from matting import settings
from matting.notifiers.webhook import WebhookNotifier


def data_dir() -> str:
    """Default root for local incoming/ and archive/ folders (``[matting] data_dir``), read per parse."""
    return settings.value("data_dir")


def var(name: str, default: str) -> str:
    """A Jinja expression for Variable ``name`` with a default (rendered at run time)."""
    escaped = default.replace("'", "\\'")
    return "{{ var.value.get('" + name + "', '" + escaped + "') }}"


def default_args() -> dict:
    return {
        "owner": "matting",
        "retries": settings.value("retries"),
        "retry_delay": timedelta(seconds=settings.value("retry_delay_s")),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(minutes=30),
        "execution_timeout": timedelta(hours=2),
        "on_failure_callback": WebhookNotifier(
            message="matting task failed", conn_id=settings.value("webhook_conn_id")
        ),
    }


def matting_task_args() -> dict:
    """Pool, queue and (optionally) executor for the matting tasks. With a GPU worker set
    ``[matting] pool = matting_gpu`` (slots = GPUs x sessions per GPU) and ``queue = gpu``; with Airflow
    3's multiple executors ``executor`` (e.g. KubernetesExecutor) sends only these tasks there. The
    defaults run on any single local worker."""
    args = {
        "pool": settings.value("pool"),
        "queue": settings.value("queue"),
    }
    executor = settings.value("executor")
    if executor:
        args["executor"] = executor
    return args


def deadline(default_minutes: int):
    """The run-level SLA as an Airflow 3 Deadline Alert (SLAs were removed in 3.0), or None when
    ``[matting] deadlines = False`` (``dag.test()`` in 3.3.2 fails at the end of a run that declares one)."""
    if not settings.value("deadlines"):
        return None
    from airflow.sdk import AsyncCallback, DeadlineAlert, DeadlineReference

    minutes = settings.value("sla_minutes") or float(default_minutes)
    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=timedelta(minutes=minutes),
        callback=AsyncCallback(
            "matting.notifiers.webhook.deadline_missed",
            kwargs={"sla": f"{minutes:g} min", "conn_id": settings.value("webhook_conn_id")},
        ),
    )


def run_params() -> dict:
    """The trigger-form params every background-removal DAG shares: ``matting_reuse`` (None: the
    ``[matting] reuse`` setting; false: process every photo of this run, the result cache unused)."""
    from airflow.sdk import Param

    return {
        "matting_reuse": Param(
            None,
            type=["null", "boolean"],
            title="Reuse earlier results",
            description="Copy the output of a photo already matted with the same settings (the result cache). "
            "Empty: the [matting] reuse setting (on); false: matte every photo again.",
        )
    }
