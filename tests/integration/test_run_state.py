"""Green means done: a real Airflow run (``dag.test()`` of the shipped ``matting_scheduled``) ends
``success`` only when every task did its work, and ``failed`` when a batch failed (a misconfigured
model, one batch that cannot read its photo, an outage longer than the retries), with what was settled
still archived. Before, the archive step (``all_done``, the DAG's only leaf) made every such run green."""

from __future__ import annotations

import json
import time

import pytest
from conftest import ROOT, SAMPLES, backdate, files_under
from servers import Fault, FaultProxy, free_port

WATCHER = "fail_if_work_failed"


@pytest.fixture
def matting_scheduled(monkeypatch, airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("AIRFLOW__MATTING__DEADLINES", "off")  # the 3.3.2 dag.test() trap
    monkeypatch.setenv("AIRFLOW__MATTING__IO_BACKOFF_S", "0.05")  # in-task rounds without long sleeps
    monkeypatch.setenv("AIRFLOW__MATTING__S3_MAX_ATTEMPTS", "1")

    def run(data, **variables):
        monkeypatch.setenv("AIRFLOW__MATTING__DATA_DIR", str(data))
        for key, value in variables.items():
            monkeypatch.setenv(f"AIRFLOW_VAR_{key.upper()}", value)
        dag = DagBag(dag_folder=str(ROOT / "dags" / "matting_scheduled.py")).get_dag("matting_scheduled")
        dag_run = dag.test()
        states: dict[str, list[str]] = {}
        for ti in dag_run.get_task_instances():
            states.setdefault(ti.task_id, []).append(str(ti.state))
        return dag_run, {k: sorted(v) for k, v in states.items()}

    return run


def _manifests(archive) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(archive.rglob("manifest.json"))]


def test_every_photo_fine_is_green_and_the_watcher_skipped(tmp_path, model_store, matting_scheduled):
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    (incoming / "a.jpg").write_bytes((SAMPLES / "astronaut.jpg").read_bytes())
    (incoming / "bad.jpg").write_bytes(b"not a photo at all")  # a content error is handled work, not a failure
    backdate(incoming)
    run, states = matting_scheduled(tmp_path)
    assert run.state == "success", states
    assert states[WATCHER] == ["skipped"] and states["archive"] == ["success"]
    (manifest,) = _manifests(tmp_path / "archive")
    assert manifest["counts"] == {"files": 2, "ok": 1, "failed": 1}


def test_a_misconfigured_model_fails_the_run(tmp_path, model_store, matting_scheduled):
    """Variable matting_model = a model whose weights are not installed: the batch fails at once."""
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    (incoming / "a.jpg").write_bytes((SAMPLES / "astronaut.jpg").read_bytes())
    backdate(incoming)
    run, states = matting_scheduled(tmp_path, matting_model="no-such-model")
    assert run.state == "failed", states
    assert states["remove_background"] == ["failed"]
    assert states["archive"] == ["success"]  # ran, found nothing settled
    assert states[WATCHER] == ["failed"]
    assert files_under(incoming) == ["a.jpg"]  # untouched for the next run


def test_one_batch_failing_permanently_fails_the_run_and_the_rest_is_archived(
    tmp_path, model_store, matting_scheduled, s3_server, monkeypatch
):
    """Two batches of one photo each from S3; every read of one of them fails (503) through all its
    attempts: that batch fails, the other's photo is archived and on the manifest, the run is red and the
    unread photo stays in the source for the next run."""
    client = s3_server.client()
    client.create_bucket(Bucket="shop")
    for key, name in (("in/a.jpg", "astronaut.jpg"), ("in/poison.jpg", "rocket.jpg")):
        client.put_object(Bucket="shop", Key=key, Body=(SAMPLES / name).read_bytes())
    time.sleep(10.5)  # settled: the scheduled DAG's listing takes objects unchanged for 10 s
    with FaultProxy(s3_server.endpoint, [Fault("GET", path="poison.jpg", code="ServiceUnavailable")]) as proxy:
        monkeypatch.setenv("AIRFLOW_CONN_AWS_FAULTY", proxy.conn_uri())
        run, states = matting_scheduled(
            tmp_path,
            matting_source="s3://shop/in",
            matting_source_conn_id="aws_faulty",
            matting_batch_size="1",
        )
    assert run.state == "failed", states
    assert states["remove_background"] == ["failed", "success"]
    assert states["archive"] == ["success"] and states[WATCHER] == ["failed"]
    (manifest,) = _manifests(tmp_path / "archive")
    assert {f["source"]: f["status"] for f in manifest["files"]} == {"a.jpg": "ok"}
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket="shop")["Contents"])
    assert keys == ["in/poison.jpg", "in/processed/a.jpg"]  # not quarantined: it was never the photo's fault


def test_an_outage_longer_than_the_retries_fails_the_run(tmp_path, model_store, matting_scheduled, monkeypatch):
    """The source's S3 endpoint is down for the whole run: listing fails, nothing is touched, red."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_DOWN",
        f"aws://testing:testing@/?region_name=us-east-1&endpoint_url=http%3A%2F%2F127.0.0.1%3A{free_port()}",
    )
    run, states = matting_scheduled(tmp_path, matting_source="s3://shop/in", matting_source_conn_id="aws_down")
    assert run.state == "failed", states
    assert states["list_new_files"] == ["failed"]
    assert states[WATCHER] == ["failed"] and states["archive"] == ["success"]
    assert not _manifests(tmp_path)
