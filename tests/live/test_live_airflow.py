"""Live end-to-end: a real Airflow (api-server, scheduler + LocalExecutor, dag-processor, triggerer
as separate processes) runs the product's DAGs the way an operator drives them: REST calls with a
logged-in user, a Params payload, files dropped on a real SFTP server and picked up by the deferrable
sensor in the triggerer. Retries stay as configured by the DAGs, except that the retry delay is short.

Deadline Alerts are real too: a 1.2-second SLA that no run can meet, reported to a loopback webhook.
Run alone with ``pytest -m live``; ``make test`` runs it with everything else.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
import zipfile

import paramiko
import pytest
from conftest import DATA, SAMPLES, files_under
from live_airflow import SQLITE_BUSY_TIMEOUT_S, ApiError, LiveAirflow
from servers import run_webhook_receiver

pytestmark = pytest.mark.live


@pytest.fixture(scope="module")
def webhook():
    with run_webhook_receiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def airflow(tmp_path_factory, model_store, sshd, webhook):
    data = tmp_path_factory.mktemp("live-data")
    live = LiveAirflow(
        home=tmp_path_factory.mktemp("live-airflow-home"),
        extra_env={
            "AIRFLOW__MATTING__DATA_DIR": str(data),
            "AIRFLOW__MATTING__DEADLINES": "on",
            # a 1.2-second SLA: no run can meet it, so the Deadline Alert fires for real
            "AIRFLOW__MATTING__SLA_MINUTES": "0.02",
            "AIRFLOW_CONN_MATTING_WEBHOOK": json.dumps({"conn_type": "http", "host": webhook.url}),
            "AIRFLOW__MATTING__RETRIES": "1",
            "AIRFLOW__MATTING__RETRY_DELAY_S": "5",
            "AIRFLOW__MATTING__POKE_INTERVAL_S": "3",
            "AIRFLOW__MATTING__SETTLE_SECONDS": "2",
            "AIRFLOW__MATTING__PROVIDERS": "cpu",
            # the ID-photo form may name folders under the data folder (unset: only its default folders)
            "AIRFLOW_VAR_MATTING_ALLOWED_LOCATIONS": json.dumps({"id_photo_batch": [str(data)]}),
        },
    )
    live.data = data
    try:
        live.start()
        yield live
    finally:
        live.stop()


def _run_dir(root):
    found = sorted(p for p in root.glob("*/*/*/*/*") if p.is_dir())
    assert len(found) == 1, found
    return found[0]


def test_rest_login_rejects_a_wrong_password(airflow):
    with pytest.raises(ApiError) as err:
        airflow.login(airflow.user, "not-the-password")
    assert err.value.status == 401


def test_airflow_processes_wait_for_sqlites_write_lock(airflow):
    """Every process reads the home's connect args: a write waits up to the busy timeout for the lock the
    scheduler holds instead of failing at SQLite's 5 s default (a REST call then answered HTTP 500)."""
    probe = (
        "import asyncio\n"
        "from sqlalchemy import text\n"
        "from airflow import settings\n"
        "settings.configure_orm()\n"
        "with settings.engine.connect() as c:\n"
        "    print(c.exec_driver_sql('PRAGMA busy_timeout').scalar())\n"
        "async def main():\n"  # the api-server's async engine (aiosqlite) too
        "    async with settings.async_engine.connect() as c:\n"
        "        print((await c.execute(text('PRAGMA busy_timeout'))).scalar())\n"
        "    await settings.async_engine.dispose()\n"
        "asyncio.run(main())\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], env=airflow.env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-2:] == [str(SQLITE_BUSY_TIMEOUT_S * 1000)] * 2, out.stdout


def _portraits_for_id_photo_batch(airflow, name: str, photos: dict) -> tuple:
    """A folder of portraits under the data folder (on id_photo_batch's allow-list here), its destination,
    and id_photo_batch parsed and unpaused: (source, destination)."""
    src = airflow.data / name
    src.mkdir()
    for target, path in photos.items():
        (src / target).write_bytes(path.read_bytes())
    airflow.wait_for_dag("id_photo_batch")
    airflow.api("PATCH", "dags/id_photo_batch", {"is_paused": False})
    return src, airflow.data / f"{name}-out"


def test_id_photo_batch_triggered_through_the_rest_api(airflow, webhook):
    photos = {"astronaut.jpg": SAMPLES / "astronaut.jpg", "cup.jpg": SAMPLES / "coffee.jpg"}
    src, dest = _portraits_for_id_photo_batch(airflow, "portraits", photos)
    # the Params form is validated before a run is created: a bad standard is refused at once
    with pytest.raises(ApiError) as bad:
        airflow.api("POST", "dags/id_photo_batch/dagRuns", {"logical_date": None, "conf": {"spec": "mars-passport"}})
    assert bad.value.status in (400, 422), bad.value
    conf = {
        "source": str(src),
        "destination": str(dest),
        "spec": "us-passport",
        "background": "white",
        "sheet": "4x6",
        "mode": "strict",
    }
    run = airflow.api("POST", "dags/id_photo_batch/dagRuns", {"logical_date": None, "conf": conf})
    assert run["conf"]["spec"] == "us-passport"
    airflow.wait_for_run("id_photo_batch", run["dag_run_id"], timeout=300)

    run_dir = _run_dir(dest)
    # a manual run has no logical date: its folder is the DAG, the day it ran (run_after) and its run id
    assert run_dir.relative_to(dest).parts[:4] == ("id_photo_batch", *run["run_after"][:10].split("-"))
    assert run_dir.name == run["dag_run_id"].replace(":", "-").replace("+", "_")
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
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["counts"] == {"files": 2, "ok": 1, "failed": 1}
    assert manifest["params"]["spec"] == "us-passport"
    report = json.loads((run_dir / "astronaut.report.json").read_text())
    assert report["passed"], report
    # the run made a photo: one event on its results asset, saying where the manifest is
    uri = "x-matting://id_photo_batch/make_id_photos"
    (asset,) = [a for a in airflow.api("GET", "assets", params={"uri_pattern": uri})["assets"] if a["uri"] == uri]
    events = airflow.api("GET", "assets/events", params={"asset_id": asset["id"]})["asset_events"]
    mine = [e for e in events if e["source_run_id"] == run["dag_run_id"]]
    assert len(mine) == 1, events
    assert mine[0]["extra"]["manifest"] == str(run_dir / "manifest.json")
    assert mine[0]["extra"]["counts"] == {"files": 2, "ok": 1, "failed": 1}
    # the run took longer than its 1.2-second SLA: the scheduler saw the deadline pass and the
    # triggerer ran the AsyncCallback, which posted to the webhook
    alert = webhook.wait_for(lambda b: b.get("event") == "deadline_missed" and b.get("run_id") == run["dag_run_id"])
    assert alert["dag_id"] == "id_photo_batch" and alert["sla"] == "0.02 min"
    assert not [b for b in webhook.received if b.get("event") == "task_failed"]
    # the task log is reachable through the API, as the UI shows it
    log = airflow.api("GET", f"dags/id_photo_batch/dagRuns/{run['dag_run_id']}/taskInstances/make_id_photos/logs/1")
    assert "astronaut" in json.dumps(log)


def test_held_id_photos_are_reviewed_through_required_actions(airflow):
    """Strict Schengen run: both smiling portraits are held; a reviewer approves one and rejects the
    other with a note through the REST API (what the UI's Required Actions page calls)."""
    photos = {"astronaut.jpg": SAMPLES / "astronaut.jpg", "tilted.jpg": DATA / "portrait_tilted_8deg.jpg"}
    src, dest = _portraits_for_id_photo_batch(airflow, "portraits-review", photos)
    conf = {"source": str(src), "destination": str(dest), "spec": "schengen", "background": "light-grey"}
    run = airflow.api("POST", "dags/id_photo_batch/dagRuns", {"logical_date": None, "conf": conf})
    run_id = run["dag_run_id"]
    airflow.wait_until_parked("id_photo_batch", run_id, "review_held_photos")
    base = f"dags/id_photo_batch/dagRuns/{run_id}/taskInstances/review_held_photos/-1/hitlDetails"
    detail = airflow.api("GET", base)
    assert {"astronaut.jpg", "tilted.jpg"} <= set(detail["options"]) and detail["multiple"]
    assert "mouth open" in detail["body"] and "tilted.jpg" in detail["body"]
    pending = airflow.api("GET", "dags/~/dagRuns/~/hitlDetails", params={"response_received": "false"})
    assert any(d["task_instance"]["dag_run_id"] == run_id for d in pending["hitl_details"])
    with pytest.raises(ApiError) as bad:  # only photos held in this run can be approved
        airflow.api("PATCH", base, {"chosen_options": ["someone-else.jpg"], "params_input": {"note": ""}})
    assert bad.value.status == 400
    answer = {"chosen_options": ["astronaut.jpg"], "params_input": {"note": "smiling: please retake"}}
    airflow.api("PATCH", base, answer)
    airflow.wait_for_run("id_photo_batch", run_id, timeout=300)

    run_dir = _run_dir(dest)
    assert "results/index.json" in files_under(run_dir)  # rewritten with the manifest after the review
    assert [n for n in files_under(run_dir) if not n.startswith("results/")] == [
        "astronaut.jpg",
        "astronaut.report.json",
        "manifest.json",
        "rejected/tilted.jpg",
        "rejected/tilted.report.json",
        "rejected/tilted.review.json",
        "run.json",
    ]
    decision = json.loads((run_dir / "rejected" / "tilted.review.json").read_text())
    assert decision["note"] == "smiling: please retake" and decision["reviewer"] == airflow.user
    assert decision["decision"] == "rejected"


def _sftp_put(sshd, remote_dir: str, files: dict[str, bytes]) -> None:
    """Upload like a kiosk would: over SFTP, each file under a temporary name, then renamed, keeping
    its capture time (an hour ago, as `sftp put -p` does): past the upload grace period."""
    key = paramiko.Ed25519Key.from_private_key_file(str(sshd.key_file))
    with paramiko.SSHClient() as ssh:
        ssh.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # noqa: S507 - throwaway loopback server
        ssh.connect("127.0.0.1", port=sshd.port, username=sshd.user, pkey=key, allow_agent=False, look_for_keys=False)
        with ssh.open_sftp() as sftp:
            for name, data in files.items():
                with sftp.open(f"{remote_dir}/{name}.part", "wb") as fh:
                    fh.write(data)
                taken = time.time() - 3600
                sftp.utime(f"{remote_dir}/{name}.part", (taken, taken))
                sftp.rename(f"{remote_dir}/{name}.part", f"{remote_dir}/{name}")


def test_sftp_files_picked_up_by_the_deferrable_sensor_in_the_triggerer(airflow, sshd):
    dag_id = "matting_sftp_ingest"
    incoming = sshd.root / f"live-{uuid.uuid4().hex[:6]}"
    incoming.mkdir()
    archive = airflow.data / "archive"
    airflow.api(
        "POST",
        "connections",
        {
            "connection_id": "sftp_live",
            "conn_type": "sftp",
            "host": "127.0.0.1",
            "port": sshd.port,
            "login": sshd.user,
            "extra": json.dumps({"key_file": str(sshd.key_file), "no_host_key_check": True}),
        },
    )
    for key, value in {
        "matting_sftp_source": f"sftp://{incoming}",
        "matting_sftp_conn_id": "sftp_live",
        "matting_destination": str(archive),
        "matting_batch_size": "2",
    }.items():
        airflow.set_variable(key, value)

    run_id = airflow.unpause_and_get_scheduled_run(dag_id)
    ti_path = f"dags/{dag_id}/dagRuns/{run_id}/taskInstances/wait_for_new_files"
    airflow.wait_for_task_state(dag_id, run_id, "wait_for_new_files", "deferred")
    time.sleep(4)  # at least one empty check in the triggerer before anything arrives
    assert airflow.api("GET", ti_path)["state"] == "deferred"

    _sftp_put(
        sshd,
        str(incoming),
        {
            "astronaut.jpg": (SAMPLES / "astronaut.jpg").read_bytes(),
            "rocket.jpg": (SAMPLES / "rocket.jpg").read_bytes(),
            "broken.jpg": b"\xff\xd8\xff\xe0 not really a jpeg",
        },
    )
    airflow.wait_for_run(dag_id, run_id, timeout=300)
    airflow.api("PATCH", f"dags/{dag_id}", {"is_paused": True})

    ti = airflow.api("GET", ti_path)
    assert ti["state"] == "success" and ti["try_number"] == 1
    sensor_log = json.dumps(airflow.api("GET", f"{ti_path}/logs/1"))
    assert "trigger found files" in sensor_log and "new=3" in sensor_log

    run_dir = _run_dir(archive)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["counts"] == {"files": 3, "ok": 2, "failed": 1}, manifest["counts"]
    assert len(manifest["parts"]) == 2  # batch size 2: two mapped batches
    with zipfile.ZipFile(run_dir / "outputs.zip") as zf:
        pngs = sorted(n.rsplit("/", 1)[-1] for n in zf.namelist() if n.endswith(".png"))
        assert pngs == ["astronaut.png", "rocket.png"], zf.namelist()
    assert (run_dir / "contact_sheet.jpg").stat().st_size > 0
    left = files_under(incoming)
    assert left == [
        "processed/astronaut.jpg",
        "processed/rocket.jpg",
        "quarantine/broken.jpg",
        "quarantine/broken.jpg.error.json",
    ]


def test_s3_objects_picked_up_with_the_compose_files_settings(airflow, s3_server):
    """matting_s3_ingest configured exactly as docker-compose.yaml's airflow-init configures it:
    connection aws_default (an S3 endpoint), source s3://incoming/photos, destination
    s3://archive/matting; the sensor waits in the triggerer until objects arrive."""
    dag_id = "matting_s3_ingest"
    s3 = s3_server.client()
    for bucket in ("incoming", "archive"):
        s3.create_bucket(Bucket=bucket)
    airflow.api(
        "POST",
        "connections",
        {
            "connection_id": "aws_default",
            "conn_type": "aws",
            "login": "testing",
            "password": "testing",
            "extra": json.dumps({"endpoint_url": s3_server.endpoint, "region_name": "us-east-1"}),
        },
    )
    for key, value in {
        "matting_s3_source": "s3://incoming/photos",
        "matting_destination": "s3://archive/matting",
        "matting_destination_conn_id": "aws_default",
        "matting_batch_size": "16",
    }.items():
        airflow.set_variable(key, value)

    run_id = airflow.unpause_and_get_scheduled_run(dag_id)
    airflow.wait_for_task_state(dag_id, run_id, "wait_for_new_files", "deferred")
    s3.put_object(Bucket="incoming", Key="photos/kiosk-7/astronaut.jpg", Body=(SAMPLES / "astronaut.jpg").read_bytes())
    s3.put_object(Bucket="incoming", Key="photos/notes.txt", Body=b"not an image: filtered out")
    s3.put_object(Bucket="incoming", Key="photos/empty.jpg", Body=b"")
    airflow.wait_for_run(dag_id, run_id, timeout=300)
    airflow.api("PATCH", f"dags/{dag_id}", {"is_paused": True})

    archived = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="archive")["Contents"])
    manifest_key = next(k for k in archived if k.endswith("/manifest.json"))
    assert manifest_key.startswith(f"matting/{dag_id}/") and manifest_key.count("/") == 6, manifest_key  # dag/Y/M/D/run
    manifest = json.loads(s3.get_object(Bucket="archive", Key=manifest_key)["Body"].read())
    assert manifest["counts"] == {"files": 2, "ok": 1, "failed": 1}, manifest["counts"]
    assert any(k.endswith("/outputs/kiosk-7/astronaut.png") for k in archived), archived
    left = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="incoming")["Contents"])
    assert left == [
        "photos/notes.txt",
        "photos/processed/kiosk-7/astronaut.jpg",
        "photos/quarantine/empty.jpg",
        "photos/quarantine/empty.jpg.error.json",
    ], left
