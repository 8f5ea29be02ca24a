"""Test-only DAG: the same new-file sensor in mode="reschedule" (the worker slot is freed between pokes)."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param
from matting.sensors.new_files import NewFilesSensor

with DAG(
    dag_id="matting_test_new_files_reschedule",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"location": Param("", type="string")},
    tags=["test"],
):
    NewFilesSensor(
        task_id="wait_for_files",
        location="{{ params.location }}",
        settle_seconds=0.2,
        poke_interval=1,
        timeout=60,
        mode="reschedule",
    )
