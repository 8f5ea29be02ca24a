"""Test-only DAGs: two copies of matting_scheduled (own DAG id and source, one destination), as two
teams deploy them on one cron. Their scheduled run ids are equal; their results must never mix."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG
from matting.flows import remove_and_archive
from matting.flows.defaults import var
from matting.flows.tasks import list_new_files, split_batches

for shop in ("shop_a", "shop_b"):
    with DAG(
        dag_id=f"{shop}_scheduled",
        schedule="*/15 * * * *",
        start_date=datetime(2026, 1, 1),
        catchup=False,
        tags=["test"],
    ):
        source = var(f"{shop}_source", f"/nonexistent/{shop}")
        files = list_new_files(source, "", settle_seconds=0)
        remove_and_archive(source, "", split_batches(files, "16"))
