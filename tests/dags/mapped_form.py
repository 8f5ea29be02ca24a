"""Test-only DAG: mapped background removal whose places come from the run's form (defaults: the DAG's
own folders under [matting] data_dir); a run triggered with other places must be refused."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param, task
from matting import settings
from matting.operators.matting import ArchiveOperator, RemoveBackgroundOperator

with DAG(
    dag_id="matting_test_mapped_form",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={
        "source": Param(f"{settings.value('data_dir')}/incoming", type="string"),
        "destination": Param(f"{settings.value('data_dir')}/archive", type="string"),
    },
    tags=["test"],
):

    @task
    def batches(source: str) -> list[list[dict]]:
        from matting.pipeline.detection import ScanOptions, scan
        from matting.storage import open_storage

        with open_storage(source) as src:
            return [[f.to_dict() for f in scan(src, ScanOptions(settle_seconds=0)).new]]

    removed = RemoveBackgroundOperator.partial(
        task_id="remove_background",
        source="{{ params.source }}",
        destination="{{ params.destination }}",
        model="u2netp",
        scenario="fast",
    ).expand(files=batches("{{ params.source }}"))
    removed >> ArchiveOperator(
        task_id="archive", destination="{{ params.destination }}", source="{{ params.source }}", trigger_rule="all_done"
    )
