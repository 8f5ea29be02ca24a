"""The product DAGs: they import cleanly with nothing configured and declare what operations needs;
matting_scheduled runs end to end with dag.test() on local folders."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

import pytest
from conftest import ROOT, SAMPLES, backdate, files_under
from PIL import Image

DAG_IDS = {"matting_scheduled", "matting_s3_ingest", "matting_sftp_ingest", "matting_s3_events", "id_photo_batch"}


@pytest.fixture(scope="module")
def product_dags(monkeypatch_module, airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch_module.setenv("AIRFLOW__MATTING__DEADLINES", "on")
    monkeypatch_module.setenv("AIRFLOW__MATTING__RETRIES", "3")
    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert not bag.import_errors, bag.import_errors
    return bag


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_dags_import_with_retries_deadline_tags_docs(product_dags):
    assert DAG_IDS <= set(product_dags.dag_ids)
    for dag_id in DAG_IDS:
        dag = product_dags.get_dag(dag_id)
        assert dag.tags and dag.doc_md and "###" in dag.doc_md, dag_id
        assert dag.deadline, f"{dag_id} declares no Deadline Alert"
        assert not dag.catchup
        if dag_id != "id_photo_batch":
            assert dag.max_active_runs == 1
        for task in dag.tasks:
            # the run's verdict (fail_if_work_failed) is not retried: it would only fail again, later
            retries = 0 if task.task_id == "fail_if_work_failed" else 1
            assert task.retries >= retries and task.execution_timeout is not None, (dag_id, task.task_id)
            assert task.max_retry_delay is not None and task.retry_exponential_backoff, (dag_id, task.task_id)
            assert task.on_failure_callback, (dag_id, task.task_id)
    assert product_dags.get_dag("matting_scheduled").schedule == "0 9,13,18 * * *"


def test_matting_tasks_routed_by_pool_queue_and_executor(airflow_db, monkeypatch):
    """What a GPU deployment sets: the matting tasks (only they) go to the GPU pool, queue, executor."""
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("AIRFLOW__MATTING__POOL", "matting_gpu")
    monkeypatch.setenv("AIRFLOW__MATTING__QUEUE", "gpu")
    monkeypatch.setenv("AIRFLOW__MATTING__EXECUTOR", "LocalExecutor")  # must be one of [core] executor
    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert not bag.import_errors, bag.import_errors
    routed = {}
    for dag_id in ("matting_scheduled", "matting_sftp_ingest", "id_photo_batch"):
        for task in bag.get_dag(dag_id).tasks:
            routed[(dag_id, task.task_id)] = (task.pool, task.queue, task.executor)
    gpu = ("matting_gpu", "gpu", "LocalExecutor")
    assert routed[("matting_scheduled", "remove_background")] == gpu
    assert routed[("matting_sftp_ingest", "remove_background")] == gpu
    assert routed[("id_photo_batch", "make_id_photos")] == gpu
    assert routed[("matting_sftp_ingest", "wait_for_new_files")] == ("default_pool", "default", None)
    assert routed[("matting_sftp_ingest", "archive")][0] == "default_pool"


def test_dag_files_do_no_io_at_import(tmp_path):
    """Parsing a DAG file must not touch storage or the model: run it with no network, no model dir."""
    code = "import runpy, sys; [runpy.run_path(p) for p in sys.argv[1:]]"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "plugins"),
        "AIRFLOW__MATTING__MODEL_DIR": str(tmp_path / "none"),
        "AIRFLOW__MATTING__DATA_DIR": str(tmp_path / "nothing-here"),
    }
    files = [str(p) for p in (ROOT / "dags").glob("*.py")]
    proc = subprocess.run([sys.executable, "-c", code, *files], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not (tmp_path / "nothing-here").exists()


def test_matting_scheduled_end_to_end(tmp_path, model_store, monkeypatch, airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    data = tmp_path / "data"
    incoming = data / "incoming"
    (incoming / "sub").mkdir(parents=True)
    (incoming / "a.jpg").write_bytes((SAMPLES / "astronaut.jpg").read_bytes())
    (incoming / "sub" / "rocket.jpg").write_bytes((SAMPLES / "rocket.jpg").read_bytes())
    (incoming / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 broken")
    backdate(incoming)  # dropped an hour ago: settled, and past the upload grace period
    monkeypatch.setenv("AIRFLOW__MATTING__DATA_DIR", str(data))
    monkeypatch.setenv("AIRFLOW__MATTING__DEADLINES", "off")  # the 3.3.2 dag.test() trap; declared-deadline test above
    monkeypatch.delenv("AIRFLOW_VAR_MATTING_SCENARIO", raising=False)  # the default users get: auto
    dag = DagBag(dag_folder=str(ROOT / "dags")).get_dag("matting_scheduled")
    run = dag.test()
    assert run.state == "success"
    runs = list((data / "archive").glob("matting_scheduled/*/*/*/*"))
    assert len(runs) == 1
    run_dir = runs[0]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["counts"] == {"files": 3, "ok": 2, "failed": 1}
    assert {f["source"]: f["status"] for f in manifest["files"]} == {
        "a.jpg": "ok",
        "sub/rocket.jpg": "ok",
        "bad.jpg": "failed",
    }
    # auto: the portrait to MODNet, the rocket to ISNet; each photo's model is on its record
    assert {f["source"]: f["model"] for f in manifest["files"] if f["status"] == "ok"} == {
        "a.jpg": "modnet",
        "sub/rocket.jpg": "isnet-medium",
    }
    assert manifest["job"]["scenario"] == "auto" and manifest["job"]["model"] == "isnet-medium, people: modnet"
    assert Image.open(run_dir / "outputs" / "a.png").mode == "RGBA"
    assert sorted(zipfile.ZipFile(run_dir / "outputs.zip").namelist()) == ["outputs/a.png", "outputs/sub/rocket.png"]
    assert Image.open(run_dir / "contact_sheet.jpg").width > 300
    assert files_under(incoming) == [
        "processed/a.jpg",
        "processed/sub/rocket.jpg",
        "quarantine/bad.jpg",
        "quarantine/bad.jpg.error.json",
    ]
    # a second run finds nothing new and archives nothing
    run2 = dag.test()
    assert run2.state == "success"
    assert len(list((data / "archive").glob("*/*/*/*/*"))) == 1


def test_a_run_reuses_repeated_photos_unless_its_trigger_says_not_to(tmp_path, model_store, monkeypatch, airflow_db):
    """The same shot uploaded to two folders is matted once (the result cache); a run triggered with
    ``{"matting_reuse": false}`` (the trigger form's param) mattes every photo again."""
    from airflow.dag_processing.dagbag import DagBag

    data = tmp_path / "data"
    incoming = data / "incoming"
    for folder in ("shop-a", "shop-b"):
        (incoming / folder).mkdir(parents=True)
        (incoming / folder / "mug.jpg").write_bytes((SAMPLES / "coffee.jpg").read_bytes())
    backdate(incoming)
    monkeypatch.setenv("AIRFLOW__MATTING__DATA_DIR", str(data))
    monkeypatch.setenv("AIRFLOW__MATTING__DEADLINES", "off")  # the 3.3.2 dag.test() trap
    dag = DagBag(dag_folder=str(ROOT / "dags")).get_dag("matting_scheduled")
    assert "matting_reuse" in dag.params
    assert dag.test().state == "success"
    (first,) = [json.loads(p.read_text()) for p in (data / "archive").glob("matting_scheduled/*/*/*/*/manifest.json")]
    assert first["counts"] == {"files": 2, "ok": 2, "failed": 0, "reused": 1}
    copy = next(f for f in first["files"] if f["reused_from"])
    assert copy["reused_from"] != copy["outputs"][0] and copy["status"] == "ok"
    (incoming / "shop-c").mkdir()
    (incoming / "shop-c" / "mug.jpg").write_bytes((SAMPLES / "coffee.jpg").read_bytes())
    backdate(incoming / "shop-c")
    assert dag.test(run_conf={"matting_reuse": False}).state == "success"
    manifests = [json.loads(p.read_text()) for p in (data / "archive").glob("*/*/*/*/*/manifest.json")]
    second = next(m for m in manifests if m["run_id"] != first["run_id"])
    assert second["counts"] == {"files": 1, "ok": 1, "failed": 0}  # matted again: no reuse


def test_matting_sftp_ingest_to_s3(tmp_path, model_store, monkeypatch, airflow_db, sshd, sftp_conn, s3_server, s3_conn):
    """The product's SFTP ingestion DAG, configured only through Variables (AIRFLOW_VAR_*)."""
    import uuid

    from airflow.dag_processing.dagbag import DagBag

    root = sshd.root / uuid.uuid4().hex[:8]
    root.mkdir()
    (root / "a.jpg").write_bytes((SAMPLES / "astronaut.jpg").read_bytes())
    (root / "empty.jpg").write_bytes(b"")
    (root / "upload.jpg.part").write_bytes(b"still coming")
    backdate(root / "a.jpg", root / "empty.jpg")  # dropped an hour ago
    client = s3_server.client()
    client.create_bucket(Bucket="ingest")
    for key, value in {
        "MATTING_SFTP_SOURCE": f"sftp://{root}",
        "MATTING_SFTP_CONN_ID": sftp_conn,
        "MATTING_DESTINATION": "s3://ingest/archive",
        "MATTING_DESTINATION_CONN_ID": s3_conn,
        "MATTING_BATCH_SIZE": "1",
    }.items():
        monkeypatch.setenv(f"AIRFLOW_VAR_{key}", value)
    monkeypatch.setenv("AIRFLOW__MATTING__DEADLINES", "off")
    dag = DagBag(dag_folder=str(ROOT / "dags")).get_dag("matting_sftp_ingest")
    run = dag.test()
    assert run.state == "success"
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket="ingest")["Contents"])
    manifest_key = next(k for k in keys if k.endswith("/manifest.json"))
    manifest = json.loads(client.get_object(Bucket="ingest", Key=manifest_key)["Body"].read())
    assert manifest["counts"] == {"files": 2, "ok": 1, "failed": 1} and len(manifest["parts"]) == 2  # 2 mapped
    assert any(k.endswith("/outputs/a.png") for k in keys) and any(k.endswith("/contact_sheet.jpg") for k in keys)
    assert files_under(root) == [
        "processed/a.jpg",
        "quarantine/empty.jpg",
        "quarantine/empty.jpg.error.json",
        "upload.jpg.part",
    ]


def test_id_photo_form_lists_every_preset_and_the_users_own(product_dags, tmp_path, monkeypatch, airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    shipped = product_dags.get_dag("id_photo_batch").params.get_param("spec").schema["enum"]
    assert {"cn-1inch", "us-passport", "schengen", "uk-passport", "icao"} <= set(shipped)
    extra = tmp_path / "badges.yaml"
    extra.write_text(
        "specs:\n  staff-badge:\n    title: Staff badge\n    width_px: 300\n    height_px: 400\n"
        "    dpi: 300\n    head_ratio: [0.5, 0.7]\n    top_margin_ratio: [0.05, 0.15]\n"
    )
    monkeypatch.setenv("AIRFLOW__MATTING__IDPHOTO_SPECS", str(extra))  # read when the DAG file is parsed
    bag = DagBag(dag_folder=str(ROOT / "dags" / "id_photo_batch.py"))
    assert sorted(bag.get_dag("id_photo_batch").params.get_param("spec").schema["enum"]) == sorted(
        [*shipped, "staff-badge"]
    )


def test_id_photo_batch_from_the_form(tmp_path, model_store, monkeypatch, airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    src = tmp_path / "portraits"
    src.mkdir()
    (src / "astronaut.jpg").write_bytes((SAMPLES / "astronaut.jpg").read_bytes())
    (src / "cup.jpg").write_bytes((SAMPLES / "coffee.jpg").read_bytes())
    monkeypatch.setenv("AIRFLOW__MATTING__DEADLINES", "off")
    # the default allow-list: the DAG's own places, its form's defaults <data_dir>/portraits and /id-photos
    monkeypatch.setenv("AIRFLOW__MATTING__DATA_DIR", str(tmp_path))
    dag = DagBag(dag_folder=str(ROOT / "dags")).get_dag("id_photo_batch")
    conf = {
        "source": str(src),
        "destination": str(tmp_path / "id-photos"),
        "spec": "schengen",
        "background": "custom",
        "custom_colour": "#A0C8F0",  # Schengen's light blue, given as a hex
        "sheet": "4x6",
        "kb_max": 40,
        "mode": "lenient",
    }
    run = dag.test(run_conf=conf)
    assert run.state == "success"
    run_dir = next((tmp_path / "id-photos").glob("id_photo_batch/*/*/*/*"))
    names = files_under(run_dir)
    assert "results/index.json" in names  # the results pages' index (matting.results.index)
    names = [n for n in names if not n.startswith("results/")]
    assert names == [
        "astronaut.jpg",
        "astronaut.report.json",
        "astronaut.sheet-4x6.jpg",
        "manifest.json",
        "review/cup.report.json",
        "run.json",
    ]
    report = json.loads((run_dir / "astronaut.report.json").read_text())
    assert report["background"] == "#A0C8F0" and report["file_kb"] <= 40
    # the astronaut smiles with her teeth showing, Schengen asks for a neutral expression; lenient: emitted
    assert not report["passed"] and report["reasons"][0] == "mouth open: close it (neutral expression)"
    assert Image.open(run_dir / "astronaut.jpg").size == (413, 531)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["counts"] == {"files": 2, "ok": 1, "failed": 1} and manifest["params"]["spec"] == "schengen"


def test_id_photo_batch_refuses_what_the_standard_does_not_allow_before_any_photo(tmp_path, airflow_db, monkeypatch):
    """A background (light blue for a US passport), a KB limit above the standard's or a format it does not
    take fails the task at once, without a retry: no photo read, nothing written, no original moved."""
    from airflow.dag_processing.dagbag import DagBag

    src = tmp_path / "portraits"
    src.mkdir()
    photo = (SAMPLES / "astronaut.jpg").read_bytes()
    (src / "astronaut.jpg").write_bytes(photo)
    monkeypatch.setenv("AIRFLOW__MATTING__DEADLINES", "off")
    monkeypatch.setenv("AIRFLOW__MATTING__RETRIES", "2")  # a retryable failure would be tried again
    monkeypatch.setenv("AIRFLOW__MATTING__RETRY_DELAY_S", "1")
    monkeypatch.setenv("AIRFLOW__MATTING__DATA_DIR", str(tmp_path))
    dag = DagBag(dag_folder=str(ROOT / "dags")).get_dag("id_photo_batch")
    assert dag.get_task("make_id_photos").retries == 2
    # every key given: dag.test merges a run's conf into the DAG's Param objects, the next run would inherit it
    base = {
        "source": str(src),
        "destination": str(tmp_path / "id-photos"),
        "spec": "us-passport",
        "background": "standard",
        "custom_colour": "#438EDB",
        "format": "jpeg",
        "kb_max": None,
    }
    for conf in (  # the messages: tests/unit/test_idphoto_backgrounds.py, tests/test_cli.py
        {"background": "custom", "custom_colour": "#D6E4F0"},
        {"background": "blue"},
        {"kb_max": 300},
        {"format": "png"},
    ):
        run = dag.test(run_conf={**base, **conf})
        assert run.state == "failed", conf
        ti = run.get_task_instance("make_id_photos")
        assert ti.state == "failed" and ti.try_number == 1, (conf, ti.state, ti.try_number)
    assert files_under(src) == ["astronaut.jpg"] and (src / "astronaut.jpg").read_bytes() == photo
    assert not (tmp_path / "id-photos").exists()

    # the same run with the US's off-white is accepted
    run = dag.test(run_conf={**base, "background": "custom", "custom_colour": "#F0F0F0"})
    assert run.state == "success"
    run_dir = next((tmp_path / "id-photos").glob("id_photo_batch/*/*/*/*"))
    report = json.loads((run_dir / "astronaut.report.json").read_text())
    assert report["passed"] and report["background"] == "#F0F0F0", report["reasons"]


def test_id_photo_batch_bad_params_fail_fast(tmp_path, airflow_db, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("AIRFLOW__MATTING__DEADLINES", "off")
    dag = DagBag(dag_folder=str(ROOT / "dags")).get_dag("id_photo_batch")
    with pytest.raises(Exception, match="spec|enum|not one of"):
        dag.test(run_conf={"source": str(tmp_path), "spec": "mars-passport"})


def test_id_photo_batch_refuses_locations_and_connections_off_the_allow_list(tmp_path, airflow_db, monkeypatch):
    """Anyone allowed to trigger the form must not read or write wherever the worker can."""
    from airflow.dag_processing.dagbag import DagBag

    data, outside = tmp_path / "data", tmp_path / "elsewhere"
    (data / "portraits").mkdir(parents=True)
    (data / "other-team").mkdir()
    (data / "other-team" / "badge.jpg").write_bytes((SAMPLES / "astronaut.jpg").read_bytes())
    outside.mkdir()
    (outside / "secret.jpg").write_bytes((SAMPLES / "astronaut.jpg").read_bytes())
    monkeypatch.setenv("AIRFLOW__MATTING__DEADLINES", "off")
    monkeypatch.setenv("AIRFLOW__MATTING__RETRIES", "0")
    monkeypatch.setenv("AIRFLOW__MATTING__DATA_DIR", str(data))
    dag = DagBag(dag_folder=str(ROOT / "dags")).get_dag("id_photo_batch")
    for conf in (
        # the data folder is not the DAG's: another team's folder beside its own is refused
        {"source": str(data / "other-team"), "destination": str(data / "id-photos")},
        {"source": str(outside), "destination": str(data / "out")},  # read from outside
        {"source": str(data / "portraits"), "destination": str(outside / "out")},  # write outside
        {"source": f"{data}/portraits/../../elsewhere", "destination": str(data / "out")},  # climb out
        {"source": str(data / "portraits"), "source_conn_id": "prod_db_admin", "destination": str(data / "out")},
    ):
        run = dag.test(run_conf={"source_conn_id": "", **conf, "spec": "cn-1inch"})
        assert run.state == "failed", conf
    assert files_under(outside) == ["secret.jpg"] and not (data / "out").exists()  # nothing touched
    assert not (data / "id-photos").exists()

    # an admin widens the list with a Variable (for this DAG): the same outside source is then accepted
    widened = {"id_photo_batch": [str(data), str(outside)]}
    monkeypatch.setenv("AIRFLOW_VAR_MATTING_ALLOWED_LOCATIONS", json.dumps(widened))
    conf = {"source": str(outside), "source_conn_id": "", "destination": str(data / "out"), "spec": "cn-1inch"}
    assert dag.test(run_conf=conf).state == "success"
    # a list for another DAG only: this one is back to its own places
    monkeypatch.setenv("AIRFLOW_VAR_MATTING_ALLOWED_LOCATIONS", json.dumps({"matting_scheduled": [str(outside)]}))
    assert dag.test(run_conf=conf).state == "failed"
