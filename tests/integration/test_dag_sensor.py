"""A real DAG run (dag.test()) with the deferrable sensor: the trigger runs inline, the batch reaches
the downstream task through XCom. These test DAGs take every location from the run's form, so an admin
allows those places first (``matting.access``); without that, the sensor and the operator refuse."""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path

import pytest

JPG = b"\xff\xd8\xff\xe0" + b"0" * 100
TEST_DAGS = Path(__file__).resolve().parents[1] / "dags"


@pytest.fixture(scope="session")
def dag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(TEST_DAGS))
    assert not bag.import_errors, bag.import_errors
    return bag.get_dag("matting_test_new_files")


def allow(monkeypatch, locations: list[str], conn_ids: list[str]) -> None:
    """What a platform admin sets for DAGs whose form takes free-form places: the Variables' allow-lists."""
    monkeypatch.setenv("AIRFLOW_VAR_MATTING_ALLOWED_LOCATIONS", json.dumps(locations))
    monkeypatch.setenv("AIRFLOW_VAR_MATTING_ALLOWED_CONN_IDS", json.dumps(conn_ids))


@pytest.fixture
def allowed(monkeypatch, tmp_path):
    return lambda *locations, conns=("",): allow(monkeypatch, [str(tmp_path), *locations], list(conns))


def _run(dag, location, conn_id, out):
    run = dag.test(run_conf={"location": location, "conn_id": conn_id, "out": str(out)})
    assert run.state == "success", run.state
    return json.loads(out.read_text())


def test_dag_with_local_source(dag, tmp_path, allowed):
    allowed()
    src = tmp_path / "in"
    src.mkdir()
    threading.Timer(1.0, lambda: (src / "later.jpg").write_bytes(JPG)).start()  # arrives while deferred
    files = _run(dag, str(src), "", tmp_path / "out.json")
    assert [f["path"] for f in files] == ["later.jpg"]


def test_dag_with_sftp_source(dag, tmp_path, sshd, sftp_conn, allowed):
    root = sshd.root / uuid.uuid4().hex[:8]
    allowed(f"sftp://{root}", conns=(sftp_conn,))
    root.mkdir()
    (root / "a.jpg").write_bytes(JPG)
    files = _run(dag, f"sftp://{root}", sftp_conn, tmp_path / "out.json")
    assert [f["path"] for f in files] == ["a.jpg"]


def test_dag_with_s3_source(dag, tmp_path, s3_server, s3_conn, allowed):
    allowed("s3://dagtest/in", conns=(s3_conn,))
    client = s3_server.client()
    client.create_bucket(Bucket="dagtest")
    client.put_object(Bucket="dagtest", Key="in/x.png", Body=JPG)
    files = _run(dag, "s3://dagtest/in", s3_conn, tmp_path / "out.json")
    assert [f["path"] for f in files] == ["x.png"]


def test_reschedule_mode(airflow_db, tmp_path, allowed):
    from airflow.dag_processing.dagbag import DagBag

    allowed()
    dag = DagBag(dag_folder=str(TEST_DAGS)).get_dag("matting_test_new_files_reschedule")
    src = tmp_path / "in"
    src.mkdir()
    threading.Timer(1.5, lambda: (src / "r.jpg").write_bytes(JPG)).start()
    run = dag.test(run_conf={"location": str(src)})
    assert run.state == "success"
    ti = run.get_task_instance("wait_for_files")
    assert ti.xcom_pull(task_ids="wait_for_files") == [
        {
            "path": "r.jpg",
            "size": len(JPG),
            "mtime": (src / "r.jpg").stat().st_mtime,
            "version": f"{len(JPG)}-{(src / 'r.jpg').stat().st_mtime_ns}",
        }
    ]


def test_sensor_then_remove_background_sftp_to_s3(
    airflow_db, tmp_path, sshd, sftp_conn, s3_server, s3_conn, model_store, monkeypatch
):
    from airflow.dag_processing.dagbag import DagBag
    from conftest import SAMPLES, backdate, files_under

    dag = DagBag(dag_folder=str(TEST_DAGS)).get_dag("matting_test_chain")
    root = sshd.root / uuid.uuid4().hex[:8]
    root.mkdir()
    (root / "a.jpg").write_bytes((SAMPLES / "astronaut.jpg").read_bytes())
    (root / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut short")
    backdate(root)  # dropped an hour ago: past the upload grace period
    client = s3_server.client()
    client.create_bucket(Bucket="chain")
    conf = {
        "source": f"sftp://{root}",
        "source_conn_id": sftp_conn,
        "destination": "s3://chain/archive",
        "destination_conn_id": s3_conn,
    }
    # nobody allowed these places: the sensor refuses before it lists anything, the photos stay
    assert dag.test(run_conf=conf).state == "failed"
    assert files_under(root) == ["a.jpg", "bad.jpg"] and "Contents" not in client.list_objects_v2(Bucket="chain")
    # the sensor's places allowed, not the destination: the operator refuses before any storage opens
    allow(monkeypatch, [f"sftp://{root}"], [sftp_conn, s3_conn])
    assert dag.test(run_conf=conf).state == "failed"
    assert files_under(root) == ["a.jpg", "bad.jpg"] and "Contents" not in client.list_objects_v2(Bucket="chain")
    allow(monkeypatch, [f"sftp://{root}", "s3://chain/archive"], [sftp_conn, s3_conn])
    run = dag.test(run_conf=conf)
    assert run.state == "success"
    summary = run.get_task_instance("remove_background").xcom_pull(task_ids="remove_background")
    assert summary["ok"] == 1 and summary["failed"] == 1 and summary["files"] == 2
    manifest = json.loads(client.get_object(Bucket="chain", Key="archive/" + summary["manifest"])["Body"].read())
    assert manifest["dag_id"] == "matting_test_chain" and manifest["params"] == conf
    assert summary["manifest"].endswith("/parts/part-0000.json")
    assert {f["source"]: f["status"] for f in manifest["files"]} == {"a.jpg": "ok", "bad.jpg": "failed"}
    assert files_under(root) == [
        "processed/a.jpg",
        "quarantine/bad.jpg",
        "quarantine/bad.jpg.error.json",
    ]


def test_a_mapped_operator_refuses_places_its_form_did_not_declare(airflow_db, tmp_path, monkeypatch, model_store):
    """A mapped task is created when it runs, after the run's form was filled in: its allow-list must
    still be the DAG's own defaults, not what the run was triggered with."""
    from airflow.dag_processing.dagbag import DagBag
    from conftest import SAMPLES, files_under

    data, outside = tmp_path / "data", tmp_path / "elsewhere"
    for folder in (data / "incoming", outside):
        folder.mkdir(parents=True)
        (folder / "a.jpg").write_bytes((SAMPLES / "astronaut.jpg").read_bytes())
    monkeypatch.setenv("AIRFLOW__MATTING__DATA_DIR", str(data))
    monkeypatch.setenv("AIRFLOW__MATTING__PROVIDERS", "cpu")
    dag = DagBag(dag_folder=str(TEST_DAGS / "mapped_form.py")).get_dag("matting_test_mapped_form")
    run = dag.test(run_conf={"source": str(outside), "destination": str(data / "archive")})
    assert run.state == "failed"
    assert run.get_task_instance("remove_background", map_index=0).state == "failed"
    assert files_under(outside) == ["a.jpg"]  # read from nowhere it was not allowed to
    # the DAG's own places (its form's defaults) work (a fresh DAG object: dag.test() keeps a run's params)
    dag = DagBag(dag_folder=str(TEST_DAGS / "mapped_form.py")).get_dag("matting_test_mapped_form")
    assert dag.test().state == "success"
    assert files_under(data / "incoming") == ["processed/a.jpg"]
