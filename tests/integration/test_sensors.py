"""New-file detection, the sensors' poke path and the deferrable trigger, against real servers."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid

import pytest
from matting.pipeline.detection import ScanOptions, scan
from matting.sensors.new_files import LocalNewFilesSensor, S3NewFilesSensor, SftpNewFilesSensor
from matting.storage import Ledger, LocalStorage
from matting.triggers.new_files import NewFilesTrigger

JPG = b"\xff\xd8\xff\xe0" + b"0" * 100


def run_trigger(trigger: NewFilesTrigger, timeout: float = 30.0) -> dict:
    async def first_event():
        async for event in trigger.run():
            return event.payload

    return asyncio.run(asyncio.wait_for(first_event(), timeout))


# --- detection on a local folder ------------------------------------------------------------


def test_filters_temp_names_and_max_files(tmp_path):
    for name in [
        "a.jpg",
        "b.PNG",
        "c.heic",
        "notes.txt",
        "up.jpg.part",
        ".hidden.jpg",
        "x.tmp",
        "sub/d.jpg",
        "processed/old.jpg",
        "quarantine/bad.jpg",
        ".cache/e.jpg",
        "raw/skip_me.jpg",
    ]:
        p = tmp_path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(JPG)
    opts = ScanOptions(settle_seconds=0, exclude=("processed/*", "quarantine/*", "raw/*"))
    r = scan(LocalStorage(tmp_path), opts)
    assert sorted(f.path for f in r.new) == ["a.jpg", "b.PNG", "c.heic", "sub/d.jpg"]
    # processed/, quarantine/ and raw/ are excluded whole: pruned from the walk, so not even counted
    assert r.ignored == 5
    r = scan(LocalStorage(tmp_path), ScanOptions(settle_seconds=0, include=("*.jpg",), recursive=False))
    assert [f.path for f in r.new] == ["a.jpg"]
    r = scan(LocalStorage(tmp_path), ScanOptions(settle_seconds=0, regex=r"^sub/"))
    assert [f.path for f in r.new] == ["sub/d.jpg"]
    r = scan(LocalStorage(tmp_path), ScanOptions(settle_seconds=0, max_files=2, exclude=("processed/*",)))
    assert len(r.new) == 2 and r.more >= 2


def test_growing_file_is_not_handed_out_until_it_settles(tmp_path):
    (tmp_path / "done.jpg").write_bytes(JPG)
    growing = tmp_path / "growing.jpg"
    growing.write_bytes(JPG)

    def grow(_seconds):  # the uploader appends while the scan waits out the settle interval
        with open(growing, "ab") as fh:
            fh.write(b"more")

    r = scan(LocalStorage(tmp_path), ScanOptions(settle_seconds=1), sleep=grow)
    assert [f.path for f in r.new] == ["done.jpg"] and r.unsettled == ["growing.jpg"]
    r = scan(LocalStorage(tmp_path), ScanOptions(settle_seconds=0.2))
    assert sorted(f.path for f in r.new) == ["done.jpg", "growing.jpg"]


def test_ledger_marks_files_processed_and_a_replaced_file_is_new(tmp_path):
    src, dest = tmp_path / "src", tmp_path / "dest"
    src.mkdir()
    (src / "a.jpg").write_bytes(JPG)
    (src / "b.jpg").write_bytes(JPG)
    opts = ScanOptions(settle_seconds=0)
    ledger = Ledger(LocalStorage(dest))
    first = scan(LocalStorage(src), opts, ledger.ids())
    ledger.record(first.new[:1], run_id="run-1")
    second = scan(LocalStorage(src), opts, ledger.ids())
    assert [f.path for f in second.new] == ["b.jpg"] and second.processed == 1
    time.sleep(0.01)
    (src / "a.jpg").write_bytes(JPG + b"v2")  # replaced under the same name: new again
    assert sorted(f.path for f in scan(LocalStorage(src), opts, ledger.ids()).new) == ["a.jpg", "b.jpg"]


# --- the three sensors against their servers ------------------------------------------------------


@pytest.fixture(params=["local", "s3", "sftp"])
def source(request, tmp_path):
    """(sensor class, kwargs, put(rel, data), grower or None) for each backend."""
    if request.param == "local":
        root = tmp_path / "incoming"
        root.mkdir()
        put = _fs_put(root)
        yield LocalNewFilesSensor, {"location": str(root)}, put, root
    elif request.param == "s3":
        conn, server = request.getfixturevalue("s3_conn"), request.getfixturevalue("s3_server")
        bucket = f"b-{uuid.uuid4().hex[:10]}"
        client = server.client()
        client.create_bucket(Bucket=bucket)

        def put(rel, data):
            client.put_object(Bucket=bucket, Key=f"incoming/{rel}", Body=data)

        yield S3NewFilesSensor, {"location": f"s3://{bucket}/incoming", "conn_id": conn}, put, None
    else:
        conn, sshd = request.getfixturevalue("sftp_conn"), request.getfixturevalue("sshd")
        root = sshd.root / uuid.uuid4().hex[:10]
        root.mkdir()
        yield SftpNewFilesSensor, {"location": f"sftp://{root}", "conn_id": conn}, _fs_put(root), root


def _fs_put(root):
    def put(rel, data):
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)

    return put


def test_sensor_poke_and_trigger_agree(source, capsys):
    cls, kwargs, put, fs_root = source
    put("a.jpg", JPG)
    put("nested/b.png", JPG)
    put("skip.txt", b"x")
    put("upload.jpg.part", JPG)
    put("processed/old.jpg", JPG)  # moved out by an earlier run: not new
    sensor = cls(task_id="wait", settle_seconds=0.5, poke_interval=0.2, **kwargs)
    poked = sensor.poke({})
    assert poked.is_done
    files = poked.xcom_value
    assert sorted(f["path"] for f in files) == ["a.jpg", "nested/b.png"]
    assert {"path", "size", "mtime", "version"} <= set(files[0]) and files[0]["size"] == len(JPG)
    logged = "".join(capsys.readouterr())  # the task logger (structlog) writes to the console here
    assert "new=2 unsettled=0 already-processed=0 ignored=2" in logged
    event = run_trigger(
        NewFilesTrigger(kwargs["location"], sensor.conn_id, sensor.scan_options().to_dict(), poll_interval=0.2)
    )
    assert event["status"] == "found" and event["files"] == files
    assert sensor.execute_complete({}, event) == files


@pytest.mark.parametrize("source", ["local", "sftp"], indirect=True)  # S3 objects appear whole
def test_sensor_waits_for_a_growing_file(source):
    cls, kwargs, put, fs_root = source
    put("growing.jpg", JPG)
    stop = threading.Event()

    def uploader():
        with open(fs_root / "growing.jpg", "ab") as fh:
            while not stop.is_set():
                fh.write(b"x" * 100)
                fh.flush()
                time.sleep(0.1)

    t = threading.Thread(target=uploader)
    t.start()
    try:
        poked = cls(task_id="wait", settle_seconds=1.0, **kwargs).poke({})
        assert not poked.is_done  # still being written: not handed out
    finally:
        stop.set()
        t.join()
    time.sleep(1.1)  # mtime must move past the last write
    assert [f["path"] for f in cls(task_id="wait", settle_seconds=1.0, **kwargs).poke({}).xcom_value] == ["growing.jpg"]


def allow(monkeypatch, location: str, conn_id: str | None) -> None:
    """A sensor's execute checks its places against the allow-list first: these run outside a DAG, so
    the Variables name them, as an admin would."""
    monkeypatch.setenv("AIRFLOW_VAR_MATTING_ALLOWED_LOCATIONS", json.dumps([location]))
    monkeypatch.setenv("AIRFLOW_VAR_MATTING_ALLOWED_CONN_IDS", json.dumps([conn_id or ""]))


def test_deferrable_sensor_defers_until_files_arrive(source, monkeypatch):
    from airflow.sdk.exceptions import TaskDeferred

    cls, kwargs, put, _ = source
    allow(monkeypatch, kwargs["location"], kwargs.get("conn_id") or cls.default_conn_id)
    sensor = cls(task_id="wait", settle_seconds=0.3, poke_interval=0.2, deferrable=True, timeout=60, **kwargs)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})
    trigger = deferred.value.trigger
    assert trigger.serialize()[0] == "matting.triggers.new_files.NewFilesTrigger"
    threading.Timer(0.5, lambda: put("late.jpg", JPG)).start()
    event = run_trigger(NewFilesTrigger(**trigger.serialize()[1]))
    assert [f["path"] for f in sensor.execute_complete({}, event)] == ["late.jpg"]


def test_sftp_sensor_survives_server_restart_between_pokes(sshd, sftp_conn):
    root = sshd.root / "restarts"
    root.mkdir(exist_ok=True)
    sensor = SftpNewFilesSensor(task_id="wait", location=f"sftp://{root}", conn_id=sftp_conn, settle_seconds=0)
    assert not sensor.poke({}).is_done
    sshd.restart()
    (root / "after.jpg").write_bytes(JPG)
    assert [f["path"] for f in sensor.poke({}).xcom_value] == ["after.jpg"]


def test_s3_sensor_retries_a_5xx_listing(s3_server, monkeypatch, caplog):
    from servers import Fault, FaultProxy

    client = s3_server.client()
    client.create_bucket(Bucket="flaky")
    client.put_object(Bucket="flaky", Key="in/a.jpg", Body=JPG)
    with FaultProxy(s3_server.endpoint, [Fault("LIST", status=500, code="InternalError", limit=1)]) as proxy:
        monkeypatch.setenv("AIRFLOW_CONN_AWS_FLAKY", proxy.conn_uri())
        caplog.set_level(logging.WARNING)
        poked = S3NewFilesSensor(task_id="wait", location="s3://flaky/in", conn_id="aws_flaky").poke({})
    assert [f["path"] for f in poked.xcom_value] == ["a.jpg"]
    seen = [status for _, status in proxy.seen]
    assert seen[0] == 500 and 200 in seen
    assert "failed (attempt 1/5)" in caplog.text and "InternalError" in caplog.text


# --- errors: transient ones are retried, permanent ones fail the task (also with soft_fail) -------


def _bad_locations(request) -> dict[str, tuple]:
    sshd = request.getfixturevalue("sshd")
    return {
        "wrong password": (
            f"sftp://{sshd.root}",
            f"sftp://{sshd.user}:wrong@127.0.0.1:{sshd.port}/?no_host_key_check=true",
        ),
        "unknown connection": (f"sftp://{sshd.root}", None),
        "no such bucket": ("s3://no-such-bucket-here/in", request.getfixturevalue("s3_server").conn_uri),
    }


@pytest.mark.parametrize("case", ["wrong password", "unknown connection", "no such bucket"])
def test_a_permanent_error_fails_the_task_at_once_even_with_soft_fail(case, request, monkeypatch):
    from matting.errors import AccessError

    location, conn_uri = _bad_locations(request)[case]
    if conn_uri:
        monkeypatch.setenv("AIRFLOW_CONN_MATTING_BAD", conn_uri)
    cls = S3NewFilesSensor if location.startswith("s3://") else SftpNewFilesSensor
    kwargs = {"task_id": "wait", "location": location, "conn_id": "matting_bad", "soft_fail": True, "timeout": 600}
    allow(monkeypatch, location, "matting_bad")  # allowed: what fails is the storage itself
    with pytest.raises(Exception) as poked:  # poke mode: the error itself, not a skip
        cls(**kwargs).execute({})
    assert type(poked.value).__name__ != "AirflowSkipException"
    assert "refused before touching any storage" not in str(poked.value)
    sensor = cls(deferrable=True, poke_interval=0.2, **kwargs)
    trigger = NewFilesTrigger(location, "matting_bad", sensor.scan_options().to_dict(), poll_interval=0.2)
    started = time.monotonic()
    event = run_trigger(trigger, timeout=60)  # not retried until the sensor's 10-minute timeout
    assert event["status"] == "error" and time.monotonic() - started < 30, event
    with pytest.raises(AccessError, match="cannot watch"):  # the sensor's resume path, soft_fail on
        sensor.resume_execution("execute_complete", {"event": event}, {})


def test_a_transient_error_keeps_the_trigger_waiting(tmp_path, monkeypatch):
    from servers import free_port

    port = free_port()  # nothing listens there: connection refused, as when S3 is unreachable
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DOWN", f"aws://?region_name=us-east-1&endpoint_url=http://127.0.0.1:{port}")
    monkeypatch.setenv("AIRFLOW__MATTING__S3_MAX_ATTEMPTS", "1")
    trigger = NewFilesTrigger("s3://photos/in", "aws_down", ScanOptions().to_dict(), poll_interval=0.2)
    with pytest.raises(TimeoutError):
        run_trigger(trigger, timeout=3)


def test_the_trigger_keeps_one_connection_for_its_whole_wait(tmp_path, monkeypatch):
    import matting.storage

    opened = []
    real = matting.storage.open_storage

    def counting(location, conn_id=None):
        opened.append(location)
        return real(location, conn_id)

    monkeypatch.setattr(matting.storage, "open_storage", counting)
    root = tmp_path / "incoming"
    root.mkdir()
    threading.Timer(1.0, lambda: (root / "late.jpg").write_bytes(JPG)).start()
    trigger = NewFilesTrigger(str(root), None, ScanOptions(settle_seconds=0).to_dict(), poll_interval=0.1)
    assert [f["path"] for f in run_trigger(trigger)["files"]] == ["late.jpg"]
    assert opened == [str(root)]  # about ten checks, one connection


@pytest.mark.parametrize("make", ["new_files", "s3_events"])
def test_triggers_survive_airflows_own_serialization(make):
    """What the triggerer does with a deferred trigger: a Trigger row (kwargs encrypted through
    Airflow's serde), then the class re-imported by path and built from the decrypted kwargs."""
    from airflow._shared.module_loading import import_string  # what the triggerer imports a trigger with
    from airflow.models.trigger import Trigger
    from matting.triggers.s3_events import S3UploadsTrigger

    if make == "new_files":
        original = NewFilesTrigger("s3://b/in", "aws_x", ScanOptions(include=("*.jpg",)).to_dict(), "/dest", None, 7.5)
    else:
        original = S3UploadsTrigger("http://127.0.0.1:1/q", "aws_x", 5, 120, "http://127.0.0.1:1/dlq", ["processed"])
    row = Trigger.from_object(original)
    rebuilt = import_string(row.classpath)(**row.kwargs)
    assert type(rebuilt) is type(original) and rebuilt.serialize() == original.serialize()
