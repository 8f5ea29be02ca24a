"""Test-only DAG: new-file sensor -> background removal, everything from the run's conf."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param
from matting.operators.matting import RemoveBackgroundOperator
from matting.sensors.new_files import NewFilesSensor

with DAG(
    dag_id="matting_test_chain",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={
        "source": Param("", type="string"),
        "source_conn_id": Param("", type="string"),
        "destination": Param("", type="string"),
        "destination_conn_id": Param("", type="string"),
    },
    render_template_as_native_obj=True,
    tags=["test"],
):
    found = NewFilesSensor(
        task_id="wait_for_files",
        location="{{ params.source }}",
        conn_id="{{ params.source_conn_id }}",
        settle_seconds=0.3,
        poke_interval=0.5,
        timeout=30,
        deferrable=True,
    )
    RemoveBackgroundOperator(
        task_id="remove_background",
        source="{{ params.source }}",
        source_conn_id="{{ params.source_conn_id }}",
        destination="{{ params.destination }}",
        destination_conn_id="{{ params.destination_conn_id }}",
        files=found.output,
        run_prefix="runs/{{ run_id | replace(':', '-') }}",
    )
