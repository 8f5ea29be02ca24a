"""Live end-to-end on the CeleryExecutor, wired as docker-compose.yaml wires it: a Redis broker, one
worker on queue ``default`` and one on queue ``gpu``, and [matting] queue = gpu /
pool = matting_gpu
as a GPU deployment sets them (the "gpu" worker runs on CPU here: what is tested is the routing).

The scheduled DAG's listing and archive tasks must run on the default worker, its mapped matting
tasks on the gpu worker, one at a time because the pool has one slot.
"""

from __future__ import annotations

import json
import re
from datetime import datetime

import pytest
from conftest import SAMPLES, backdate
from live_airflow import LiveAirflow
from servers import run_redis

pytestmark = pytest.mark.live


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, model_store):
    data = tmp_path_factory.mktemp("celery-data")
    with run_redis(tmp_path_factory.mktemp("redis")) as redis:
        live = LiveAirflow(
            home=tmp_path_factory.mktemp("celery-airflow-home"),
            workers={"worker-default": "default", "worker-gpu": "gpu"},
            extra_env={
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__CELERY__BROKER_URL": redis.url(0),
                "AIRFLOW__CELERY__RESULT_BACKEND": redis.url(1),
                "AIRFLOW__MATTING__QUEUE": "gpu",
                "AIRFLOW__MATTING__POOL": "matting_gpu",
                "AIRFLOW__MATTING__DATA_DIR": str(data),
                "AIRFLOW__MATTING__RETRIES": "0",
                "AIRFLOW__MATTING__PROVIDERS": "cpu",
                "AIRFLOW__MATTING__THREADS": "1",
            },
        )
        live.data = data
        with live:
            yield live


def _celery_tasks(log: str) -> set[str]:
    """task ids a Celery worker's log says it ran (Airflow logs each workload it executes)."""
    return set(re.findall(r"task_id='([a-z_]+)'", log))


def test_matting_tasks_go_to_the_gpu_queue_and_pool(cluster):
    incoming = cluster.data / "incoming"
    incoming.mkdir()
    for name in ("astronaut.jpg", "coffee.jpg", "rocket.jpg"):
        (incoming / name).write_bytes((SAMPLES / name).read_bytes())
    (incoming / "truncated.jpg").write_bytes((SAMPLES / "coffee.jpg").read_bytes()[:600])
    backdate(incoming)  # dropped an hour ago: past the upload grace period

    cluster.api("POST", "pools", {"name": "matting_gpu", "slots": 1, "description": "GPUs x sessions per GPU"})
    cluster.set_variable("matting_batch_size", "2")
    dag_id = "matting_scheduled"
    run_id = cluster.unpause_and_get_scheduled_run(dag_id)
    cluster.wait_for_run(dag_id, run_id, timeout=400)
    cluster.api("PATCH", f"dags/{dag_id}", {"is_paused": True})

    tis = cluster.api("GET", f"dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
    placed = {(t["task_id"], t["map_index"]): (t["queue"], t["pool"], t["state"]) for t in tis}
    assert placed[("remove_background", 0)] == ("gpu", "matting_gpu", "success")
    assert placed[("remove_background", 1)] == ("gpu", "matting_gpu", "success")
    for task_id in ("list_new_files", "split_batches", "archive"):
        assert placed[(task_id, -1)] == ("default", "default_pool", "success"), task_id
    # which worker really ran what
    assert _celery_tasks(cluster.log_of("worker-gpu")) == {"remove_background"}
    assert _celery_tasks(cluster.log_of("worker-default")) == {"list_new_files", "split_batches", "archive"}
    # one pool slot: the two mapped batches ran one after the other
    spans = sorted(
        (datetime.fromisoformat(t["start_date"]), datetime.fromisoformat(t["end_date"]))
        for t in tis
        if t["task_id"] == "remove_background"
    )
    assert spans[0][1] <= spans[1][0], spans

    run_dir = next(p for p in (cluster.data / "archive").glob("matting_scheduled/*/*/*/*") if p.is_dir())
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["counts"] == {"files": 4, "ok": 3, "failed": 1}, manifest["counts"]
    assert sorted(p.name for p in (incoming / "processed").iterdir()) == ["astronaut.jpg", "coffee.jpg", "rocket.jpg"]
    assert (incoming / "quarantine" / "truncated.jpg.error.json").exists()
