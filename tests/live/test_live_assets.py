"""Live: archived results start a downstream DAG, and lineage names what each task read and wrote.

A real Airflow (api-server, scheduler + LocalExecutor, dag-processor, triggerer) with the OpenLineage
provider and its file transport: photos dropped in the source folder -> a run of ``matting_scheduled``
-> its archive step emits an event on ``x-matting://matting_scheduled/archive`` -> the example DAG
``matting_results_consumer`` (scheduled on that asset) starts and reads the manifest's location from
the triggering event. A second run with nothing new archives nothing and starts nothing. The lineage
events the provider wrote name the photos read and the outputs, manifest and zip written.

Run alone with ``pytest -m live``; ``make test`` runs it with everything else.
"""

from __future__ import annotations

import json
import time

import pytest
from conftest import SAMPLES, files_under
from helpers import backdate
from live_airflow import LiveAirflow

pytestmark = pytest.mark.live

PRODUCER, CONSUMER = "matting_scheduled", "matting_results_consumer"
ASSET = "x-matting://matting_scheduled/archive"


@pytest.fixture(scope="module")
def airflow(tmp_path_factory, model_store):
    import airflow.providers.openlineage  # noqa: F401 - the test needs the optional extra (requirements.txt)

    data = tmp_path_factory.mktemp("assets-data")
    lineage = tmp_path_factory.mktemp("openlineage")
    live = LiveAirflow(
        home=tmp_path_factory.mktemp("assets-airflow-home"),
        extra_env={
            "AIRFLOW__MATTING__DATA_DIR": str(data),
            "AIRFLOW__MATTING__DEADLINES": "off",
            "AIRFLOW__MATTING__RETRIES": "0",
            "AIRFLOW__MATTING__PROVIDERS": "cpu",
            "AIRFLOW_VAR_MATTING_BATCH_SIZE": "2",
            # the OpenLineage provider's file transport: one JSON file per event
            "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
                {"type": "file", "log_file_path": str(lineage / "ol"), "append": False}
            ),
            "AIRFLOW__OPENLINEAGE__NAMESPACE": "matting-live",
        },
    )
    live.data, live.lineage = data, lineage
    with live:
        yield live


def _events(airflow) -> list[dict]:
    assets = airflow.api("GET", "assets", params={"uri_pattern": "x-matting://matting_scheduled"})["assets"]
    ours = [a for a in assets if a["uri"] == ASSET]
    assert len(ours) == 1, assets  # declared by the producer's archive task (and the consumer's schedule)
    return airflow.api("GET", "assets/events", params={"asset_id": ours[0]["id"]})["asset_events"]


def _runs(airflow, dag_id: str) -> list[dict]:
    return airflow.api("GET", f"dags/{dag_id}/dagRuns")["dag_runs"]


def _lineage(airflow, job: str, expected: int) -> list[dict]:
    """The COMPLETE events the provider wrote for ``<dag_id>.<task_id>`` (one per task instance)."""

    def complete():
        found = []
        for path in airflow.lineage.glob("ol*"):
            event = json.loads(path.read_text())
            if event.get("eventType") == "COMPLETE" and event["job"]["name"] == job:
                found.append(event)
        return found if len(found) >= expected else None

    return airflow.wait_for(f"{expected} OpenLineage COMPLETE event(s) of {job}", complete, timeout=60)


def _named(datasets: list[dict]) -> set[tuple[str, str]]:
    return {(d["namespace"], d["name"]) for d in datasets}


def test_archived_results_start_the_downstream_dag_with_the_manifest_location(airflow):
    incoming, archive = airflow.data / "incoming", airflow.data / "archive"
    incoming.mkdir()
    (incoming / "astronaut.jpg").write_bytes((SAMPLES / "astronaut.jpg").read_bytes())
    (incoming / "rocket.jpg").write_bytes((SAMPLES / "rocket.jpg").read_bytes())
    (incoming / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    backdate(incoming)  # uploaded an hour ago: settled, and the broken one is quarantined

    airflow.wait_for_dag(CONSUMER)
    airflow.api("PATCH", f"dags/{CONSUMER}", {"is_paused": False})
    assert _runs(airflow, CONSUMER) == []  # nothing published yet: no run

    run_id = airflow.unpause_and_get_scheduled_run(PRODUCER)
    airflow.wait_for_run(PRODUCER, run_id, timeout=300)
    run_dirs = sorted(p.parent for p in archive.rglob("manifest.json"))
    assert len(run_dirs) == 1, run_dirs
    run_dir = run_dirs[0]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["counts"] == {"files": 3, "ok": 2, "failed": 1}, manifest["counts"]

    # the archive step's event, as the Assets page shows it
    events = _events(airflow)
    assert len(events) == 1, events
    extra = events[0]["extra"]
    assert events[0]["source_dag_id"] == PRODUCER and events[0]["source_run_id"] == run_id
    assert extra["manifest"] == str(run_dir / "manifest.json")
    assert extra["outputs_prefix"] == str(run_dir / "outputs") + "/"
    assert extra["zip"] == str(run_dir / "outputs.zip")
    assert extra["counts"] == {"files": 3, "ok": 2, "failed": 1}
    assert extra["destination"] == str(archive) and extra["destination_conn_id"] == ""
    assert extra["run_prefix"] == run_dir.relative_to(archive).as_posix()

    # the downstream DAG started on it, and its task read the manifest at the location the event gave
    consumer_runs = airflow.wait_for(f"a run of {CONSUMER}", lambda: _runs(airflow, CONSUMER), timeout=120)
    assert len(consumer_runs) == 1 and consumer_runs[0]["run_type"] == "asset_triggered", consumer_runs
    consumer_run = consumer_runs[0]["dag_run_id"]
    airflow.wait_for_run(CONSUMER, consumer_run, timeout=180)
    xcom = airflow.api(
        "GET", f"dags/{CONSUMER}/dagRuns/{consumer_run}/taskInstances/receive_results/xcomEntries/return_value"
    )["value"]
    received = xcom if isinstance(xcom, list) else json.loads(xcom)
    assert len(received) == 1, received
    assert received[0]["manifest"] == str(run_dir / "manifest.json")
    assert received[0]["asset"] == ASSET and received[0]["run_id"] == run_id
    assert received[0]["counts"] == {"files": 3, "ok": 2, "failed": 1}
    outputs = sorted(o for f in manifest["files"] for o in f["outputs"])
    assert sorted(received[0]["outputs"]) == outputs and len(outputs) == 2
    assert {o.rsplit("/", 1)[-1] for o in outputs} == {"astronaut.png", "rocket.png"}

    # every photo ended once: two outputs, one quarantined
    assert files_under(incoming) == [
        "processed/astronaut.jpg",
        "processed/rocket.jpg",
        "quarantine/broken.jpg",
        "quarantine/broken.jpg.error.json",
    ]

    # lineage: the batches read the photos and wrote the cut-outs; the archive read the outputs folder and
    # wrote manifest, zip, sheet
    batches = _lineage(airflow, f"{PRODUCER}.remove_background", expected=2)
    read = set().union(*(_named(e["inputs"]) for e in batches))
    written = set().union(*(_named(e["outputs"]) for e in batches))
    assert read == {("file", str(incoming / n)) for n in ("astronaut.jpg", "rocket.jpg", "broken.jpg")}
    assert {("file", str(archive / o)) for o in outputs} <= written
    assert {n for ns, n in written if n.endswith(".json")} == {
        str(run_dir / "parts" / "part-0000.json"),
        str(run_dir / "parts" / "part-0001.json"),
    }
    archived = _lineage(airflow, f"{PRODUCER}.archive", expected=1)[0]
    assert _named(archived["inputs"]) == {("file", str(run_dir / "outputs"))}  # the folder it zipped
    assert _named(archived["outputs"]) == {
        ("file", str(run_dir / name)) for name in ("manifest.json", "outputs.zip", "contact_sheet.jpg")
    }

    # a run with nothing new archives nothing: no event, no downstream run
    again = airflow.api("POST", f"dags/{PRODUCER}/dagRuns", {"logical_date": None})["dag_run_id"]
    airflow.wait_for_run(PRODUCER, again, timeout=300)
    log = json.dumps(airflow.api("GET", f"dags/{PRODUCER}/dagRuns/{again}/taskInstances/archive/logs/1"))
    assert "no asset event" in log, log[-2000:]
    time.sleep(10)  # the scheduler would have created a consumer run by now (it did within seconds above)
    assert len(_events(airflow)) == 1
    assert len(_runs(airflow, CONSUMER)) == 1
    airflow.api("PATCH", f"dags/{PRODUCER}", {"is_paused": True})
