"""Test-only DAG: a deferrable new-file sensor hands its batch to a downstream task.

Everything comes from the run's conf (params), so one DAG serves the local, S3 and SFTP tests.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from airflow.sdk import DAG, Param, task
from matting.sensors.new_files import NewFilesSensor

with DAG(
    dag_id="matting_test_new_files",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={
        "location": Param("", type="string"),
        "conn_id": Param("", type="string"),
        "out": Param("", type="string"),
    },
    tags=["test"],
):
    found = NewFilesSensor(
        task_id="wait_for_files",
        location="{{ params.location }}",
        conn_id="{{ params.conn_id }}",
        settle_seconds=0.5,
        poke_interval=0.5,
        timeout=60,
        deferrable=True,
    )

    @task
    def record(files: list[dict], out: str) -> int:
        Path(out).write_text(json.dumps(files))
        return len(files)

    record(found.output, "{{ params.out }}")
