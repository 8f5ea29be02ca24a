"""Fault injection against real servers: each scenario ends with the same audit (tests/faults/audit.py).

Every input must end exactly once as {output + processed original, quarantined with a true reason,
untouched for the next run}: zero lost, zero duplicated, zero good photos quarantined. `make faults`
runs these and prints the table (also written to out/faults.md)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import scenario
from audit import Audit, Input, audit
from helpers import backdate
from matting.errors import InfrastructureError
from matting.pipeline.archive import close_run
from matting.pipeline.detection import ScanOptions, scan
from matting.pipeline.manifest import RunManifest, utc_now
from matting.pipeline.runner import BREAKER, BatchConfig, BatchRunner, write_manifest
from matting.storage import Ledger, LocalStorage, S3Storage, SftpStorage
from PIL import Image
from scenario import ROOT, local_snapshot, name_inputs, s3_snapshot, scenario_inputs
from servers import Fault, FaultProxy, run_sshd

NOW = ScanOptions(settle_seconds=0)


@pytest.fixture(scope="session")
def job(model_store):
    from matting.engine import Engine, OutputOptions
    from matting.pipeline.jobs import MattingJob

    return MattingJob(Engine(store=model_store), OutputOptions.build("png"))


@pytest.fixture
def report():
    """``report(name, audit, faults=..., attempts=..., note=...)`` adds the scenario's row to the table."""
    t0 = time.monotonic()

    def add(name: str, result: Audit, faults: str, attempts: int, note: str = "") -> None:
        scenario.ROWS.append(
            {
                "scenario": name,
                "inputs": len(result.outcome),
                "done": sum(1 for v in result.outcome.values() if v.startswith("done")),
                "quarantined": result.count("quarantined"),
                "untouched": result.count("untouched"),
                "lost": result.lost,
                "duplicated": result.duplicated,
                "good quarantined": result.good_quarantined,
                "faults": faults,
                "task attempts": attempts,
                "seconds": f"{time.monotonic() - t0:.0f}",
                "note": note,
            }
        )

    return add


def put_local(root: Path, inputs: list[Input]) -> None:
    """Drop the inputs as a user did an hour ago (past the upload grace period)."""
    for item in inputs:
        p = root / item.path
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(item.data)
        backdate(p)


def count_records(root: Path) -> int:
    return len(list(root.glob("**/records/*.json")))


def when(predicate, then, timeout: float = 120.0) -> threading.Thread:
    """Run ``then()`` on a thread as soon as ``predicate()`` holds (a fault injected mid-batch)."""

    def watch():
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                then()
                return
            time.sleep(0.02)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def retry_locally(
    job, src_root: Path, dest_root: Path, files, inputs: list[Input], prefix: str = "run", archive: bool = False
):
    """Airflow's retry (or the next run) of a local batch (and with ``archive`` the run's archive step),
    then the final audit: nothing may be left."""
    BatchRunner(LocalStorage(src_root), LocalStorage(dest_root), job, BatchConfig(run_prefix=prefix)).run(files)
    if archive:
        close_run(LocalStorage(dest_root / prefix), LocalStorage(src_root), make_sheet=False)
    result = audit(inputs, local_snapshot(src_root), local_snapshot(dest_root))
    result.assert_clean(finished=True)
    return result


def fast_retries(monkeypatch, timeout: float = 2.0) -> None:
    monkeypatch.setenv("AIRFLOW__MATTING__IO_TIMEOUT_S", str(timeout))
    monkeypatch.setenv("AIRFLOW__MATTING__IO_BACKOFF_S", "0.2")


def s3_inputs(s3_server, name: str):
    """A fresh bucket with the scenario's inputs under in/: (client, bucket, inputs)."""
    client = s3_server.client()
    bucket = f"{name}-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    inputs = scenario_inputs()
    for item in inputs:
        client.put_object(Bucket=bucket, Key=f"in/{item.path}", Body=item.data)
    return client, bucket, inputs


def test_s3_throttling_resets_and_stalls(s3_server, monkeypatch, job, report):
    """503 SlowDown on listings and GETs, connection resets on PUTs, 500s on DELETEs, stalls past the
    read timeout on HEADs: botocore's standard retries and the in-task retry absorb them all."""
    fast_retries(monkeypatch, timeout=1.0)
    client, bucket, inputs = s3_inputs(s3_server, "faults")
    faults = [
        Fault("LIST", every=2),
        Fault("GET", every=3),
        Fault("PUT", every=4, mode="reset"),
        Fault("HEAD", every=5, mode="stall", seconds=2.5),
        Fault("DELETE", every=3, status=500, code="InternalError"),
    ]
    with FaultProxy(s3_server.endpoint, faults) as proxy:
        monkeypatch.setenv("AIRFLOW_CONN_AWS_FAULTY", proxy.conn_uri())
        src, dest = S3Storage(bucket, "in", "aws_faulty"), S3Storage(bucket, "out", "aws_faulty")
        files = scan(src, NOW).new
        cfg = BatchConfig(run_prefix="run")
        records = BatchRunner(src, dest, job, cfg).run(files)
        manifest = RunManifest("faults", "r", {}, job.describe(), utc_now(), run_prefix="run", files=records)
        write_manifest(dest, cfg, manifest, name="parts/part-0000")
        summary = close_run(dest.sub("run"), src)
    assert len(files) == len(inputs)
    result = audit(inputs, s3_snapshot(client, bucket, "in"), s3_snapshot(client, bucket, "out"))
    result.assert_clean(finished=True)
    assert summary["ok"] == 8 and summary["failed"] == 3 and summary["zip"] == "outputs.zip"
    kinds = {k for k, s in proxy.seen if s in (503, 500, "reset", "stall")}
    assert kinds == {"LIST", "GET", "PUT", "HEAD", "DELETE"} and proxy.injected() >= 15
    report(
        "S3: 503 SlowDown (LIST, GET), resets (PUT), 500 (DELETE), stalls (HEAD)",
        result,
        f"{proxy.injected()} injected",
        1,
    )


def test_s3_outage_fails_the_task_then_the_retry_finishes(s3_server, monkeypatch, job, report):
    """Every PUT refused: nothing may be quarantined; the task fails with the originals in place, and
    Airflow's retry (a new runner on the same batch) finishes the job once S3 is back."""
    fast_retries(monkeypatch)
    monkeypatch.setenv("AIRFLOW__MATTING__S3_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("AIRFLOW__MATTING__IO_ATTEMPTS", "2")
    client, bucket, inputs = s3_inputs(s3_server, "outage")
    with FaultProxy(s3_server.endpoint, [Fault("PUT", every=1, status=503, code="ServiceUnavailable")]) as proxy:
        monkeypatch.setenv("AIRFLOW_CONN_AWS_DOWN", proxy.conn_uri())
        src, dest = S3Storage(bucket, "in", "aws_down"), S3Storage(bucket, "out", "aws_down")
        files = scan(src, NOW).new
        with pytest.raises(InfrastructureError, match="originals left in place, nothing quarantined"):
            BatchRunner(src, dest, job, BatchConfig(run_prefix="run")).run(files)
        during = audit(inputs, s3_snapshot(client, bucket, "in"), s3_snapshot(client, bucket, "out"))
        during.assert_clean(finished=False)
        assert during.count("untouched") == len(inputs)  # not one file blamed for the outage
        proxy.faults.clear()  # S3 is back; Airflow retries the task with the same batch
        BatchRunner(src, dest, job, BatchConfig(run_prefix="run")).run(files)
    result = audit(inputs, s3_snapshot(client, bucket, "in"), s3_snapshot(client, bucket, "out"))
    result.assert_clean(finished=True)
    report(
        "S3 down for every PUT, then back",
        result,
        "all PUTs 503 in attempt 1",
        2,
        "attempt 1: task failed, 11/11 untouched",
    )


def test_a_full_s3_outage_costs_each_object_a_bounded_number_of_requests(s3_server, monkeypatch, job, report):
    """Every GET answered 503 (the default settings: 5 botocore attempts, 3 in-task rounds): botocore
    owns S3 retries, so the in-task rounds add none; after 3 photos in a row fail the attempt stops,
    so the other photos cost no request at all. Per object: 5 requests per task try, 20 over
    Airflow's 4 tries (the defaults), not 5 x 3 x 4 = 60; the batch: at most 25 per try."""
    fast_retries(monkeypatch)
    for name in ("AIRFLOW__MATTING__S3_MAX_ATTEMPTS", "AIRFLOW__MATTING__IO_ATTEMPTS"):
        monkeypatch.delenv(name, raising=False)
    client, bucket, inputs = s3_inputs(s3_server, "counted")
    src_direct = S3Storage(bucket, "in", "aws_counted")
    monkeypatch.setenv("AIRFLOW_CONN_AWS_COUNTED", s3_server.conn_uri)
    files = scan(src_direct, NOW).new
    with FaultProxy(s3_server.endpoint, [Fault("GET", every=1, status=503, code="ServiceUnavailable")]) as proxy:
        monkeypatch.setenv("AIRFLOW_CONN_AWS_DOWN2", proxy.conn_uri())
        src, dest = S3Storage(bucket, "in", "aws_down2"), S3Storage(bucket, "out", "aws_down2")
        with pytest.raises(InfrastructureError, match="nothing quarantined"):
            BatchRunner(src, dest, job, BatchConfig(run_prefix="run")).run(files)
    gets: dict[str, int] = {}
    for kind, path in proxy.requests:
        if kind == "GET":
            gets[path] = gets.get(path, 0) + 1
    assert len(files) == len(inputs)
    assert set(gets.values()) == {5}, gets  # 5 requests an object, the first included: no in-task round
    # the attempt stops after 3 in a row; the engine has read up to 2 more ahead by then (prefetch 1 +
    # the read in flight): the rest of the batch costs no request at all
    assert BREAKER <= len(gets) <= BREAKER + 2 < len(files), gets
    during = audit(inputs, s3_snapshot(client, bucket, "in"), s3_snapshot(client, bucket, "out"))
    during.assert_clean(finished=False)
    assert during.count("untouched") == len(inputs)
    report(
        "S3 down for every GET, default retry settings",
        during,
        f"{sum(gets.values())} GETs for {len(files)} photos",
        1,
        f"5 per object (botocore), {len(gets)} objects then the attempt stops",
    )


def sftp_to_local(sshd, conn: str, tmp_path: Path, name: str):
    """The scenario's inputs on the session-wide sshd; (inputs, source root, destination root, source,
    destination, the detected files)."""
    root = sshd.root / f"{name}-{uuid.uuid4().hex[:6]}"
    inputs = scenario_inputs()
    put_local(root, inputs)
    dest_root = tmp_path / "dest"
    src = SftpStorage(str(root), conn)
    return inputs, root, dest_root, src, LocalStorage(dest_root), scan(src, NOW).new


def test_sftp_sessions_killed_mid_transfer(sshd, sftp_conn, tmp_path, monkeypatch, job, report):
    """The sshd session process is SIGKILLed twice while the batch reads, writes and moves over it."""
    fast_retries(monkeypatch)
    inputs, root, dest_root, src, dest, files = sftp_to_local(sshd, sftp_conn, tmp_path, "kill")
    killed: list[int] = []
    when(lambda: count_records(dest_root) >= 2, lambda: killed.append(sshd.kill_sessions()))
    when(lambda: count_records(dest_root) >= 6, lambda: killed.append(sshd.kill_sessions()))
    BatchRunner(src, dest, job, BatchConfig(run_prefix="run")).run(files)
    src.close()
    assert len(killed) == 2 and all(killed), killed
    result = audit(inputs, local_snapshot(root), local_snapshot(dest_root))
    result.assert_clean(finished=True)
    report("SFTP session process killed twice mid-batch", result, f"{len(killed)} kills", 1)


def test_stalled_sftp_server_fails_the_request_not_the_task(sshd, sftp_conn, tmp_path, monkeypatch, job, report):
    """SIGSTOP on the session: the channel timeout fails the request in seconds, the storage
    reconnects, the batch finishes. Nothing waits for the 2-hour execution_timeout."""
    fast_retries(monkeypatch, timeout=2.0)
    inputs, root, dest_root, src, dest, files = sftp_to_local(sshd, sftp_conn, tmp_path, "stall")
    stopped: list[int] = []
    when(lambda: count_records(dest_root) >= 3, lambda: stopped.extend(sshd.signal_sessions(signal.SIGSTOP)))
    t0 = time.monotonic()
    try:
        BatchRunner(src, dest, job, BatchConfig(run_prefix="run")).run(files)
    finally:
        for pid in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        src.close()
    took = time.monotonic() - t0
    assert stopped, "the stall was never injected"
    assert took < 60, f"the batch took {took:.0f}s around a stalled server"
    result = audit(inputs, local_snapshot(root), local_snapshot(dest_root))
    result.assert_clean(finished=True)
    report("SFTP server stalled (SIGSTOP) mid-batch", result, "1 stall, 2 s timeout", 1, f"batch {took:.0f} s")


WORKER = """
import sys
from matting.pipeline.detection import ScanOptions, scan
from matting.engine import Engine, OutputOptions
from matting.pipeline.jobs import MattingJob
from matting.pipeline.runner import BatchConfig, BatchRunner
from matting.storage import LocalStorage
src, dest = LocalStorage(sys.argv[1]), LocalStorage(sys.argv[2])
job = MattingJob(Engine(), OutputOptions.build("png"))
BatchRunner(src, dest, job, BatchConfig(run_prefix="run")).run(scan(src, ScanOptions(settle_seconds=0)).new)
"""


def test_worker_killed_mid_batch_then_retried(tmp_path, job, report):
    """A real worker process SIGKILLed mid-batch (OOM killer, node loss); the retry finishes it, and
    the archive step deletes the temp file of a write the kill cut short (when it landed mid-write)."""
    src_root, dest_root = tmp_path / "incoming", tmp_path / "dest"
    inputs = scenario_inputs()
    put_local(src_root, inputs)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "plugins")}
    proc = subprocess.Popen([sys.executable, "-c", WORKER, str(src_root), str(dest_root)], env=env)
    deadline = time.monotonic() + 120
    while count_records(dest_root) < 4 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    during = audit(inputs, local_snapshot(src_root), local_snapshot(dest_root))
    during.assert_clean(finished=False)
    files = scan(LocalStorage(src_root), NOW).new  # what is left, as the retry's batch
    result = retry_locally(job, src_root, dest_root, files, inputs, archive=True)
    report(
        "worker SIGKILLed mid-batch, task retried",
        result,
        "SIGKILL after 4 records",
        2,
        f"{during.count('untouched')} untouched after the kill",
    )


def test_local_destination_runs_out_of_space(tmp_path, monkeypatch, job, report):
    """A 1 MB tmpfs destination: ENOSPC is an infrastructure error (task fails, nothing quarantined);
    with space again the retry finishes."""
    fast_retries(monkeypatch)
    monkeypatch.setenv("AIRFLOW__MATTING__IO_ATTEMPTS", "2")
    src_root, dest_root = tmp_path / "incoming", tmp_path / "full"
    dest_root.mkdir()
    inputs = scenario_inputs()
    put_local(src_root, inputs)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(dest_root)], check=True)
    try:
        files = scan(LocalStorage(src_root), NOW).new
        runner = BatchRunner(LocalStorage(src_root), LocalStorage(dest_root), job, BatchConfig(run_prefix="run"))
        with pytest.raises(InfrastructureError, match="No space left"):
            runner.run(files)
        during = audit(inputs, local_snapshot(src_root), local_snapshot(dest_root))
        during.assert_clean(finished=False)
        assert during.count("untouched") >= 1
        subprocess.run(["mount", "-o", "remount,size=64m", str(dest_root)], check=True)
        BatchRunner(LocalStorage(src_root), LocalStorage(dest_root), job, BatchConfig(run_prefix="run")).run(files)
        result = audit(inputs, local_snapshot(src_root), local_snapshot(dest_root))
        assert not [p for p in local_snapshot(dest_root) if ".tmp-" in p]  # no half-written file left
    finally:
        subprocess.run(["umount", str(dest_root)], check=False)
    result.assert_clean(finished=True)
    report(
        "local destination out of space (ENOSPC), then freed",
        result,
        "1 MB tmpfs",
        2,
        f"{during.count('untouched')} untouched after attempt 1",
    )


class WorkerKilled(BaseException):
    pass


class DiesOnFirstMove(LocalStorage):
    def __init__(self, root, victim):
        super().__init__(root)
        self.victim = victim

    def move(self, rel, dest_rel, expect=None):
        if rel == self.victim:
            self.victim = None
            raise WorkerKilled("killed between the record and the move")
        return super().move(rel, dest_rel, expect)


def _reencoded(data: bytes, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.open(io.BytesIO(data)).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def test_same_name_reuploaded_during_a_run(tmp_path, job, report):
    """(1) The task dies after recording astronaut.jpg, a new astronaut.jpg is uploaded, the task is
    retried: the new upload must stay, untouched, for the next run (never moved as the old one).
    (2) rocket.jpg is replaced after detection, before it is read: it is left for the next run."""
    src_root, dest_root = tmp_path / "incoming", tmp_path / "dest"
    inputs = scenario_inputs()
    put_local(src_root, inputs)
    files = scan(LocalStorage(src_root), NOW).new
    with pytest.raises(WorkerKilled):
        BatchRunner(
            DiesOnFirstMove(src_root, "astronaut.jpg"), LocalStorage(dest_root), job, BatchConfig(run_prefix="run")
        ).run(files)
    old_astro = next(i for i in inputs if i.path == "astronaut.jpg")
    old_astro.superseded = True
    new_astro = Input("astronaut.jpg", _reencoded(old_astro.data, 70), True)
    time.sleep(0.01)
    (src_root / "astronaut.jpg").write_bytes(new_astro.data)

    rocket = next(i for i in inputs if i.path == "rocket.jpg")
    new_rocket = Input("rocket.jpg", _reencoded(rocket.data, 60), True)

    class ReplacesRocket(LocalStorage):  # the uploader overwrites rocket.jpg while the batch runs
        def write(self, rel, data):
            if "/outputs/" in rel and not rocket.superseded:
                rocket.superseded = True
                (src_root / "rocket.jpg").write_bytes(new_rocket.data)
            return super().write(rel, data)

    order = [f for f in files if f.path != "rocket.jpg"] + [f for f in files if f.path == "rocket.jpg"]
    runner = BatchRunner(LocalStorage(src_root), ReplacesRocket(dest_root), job, BatchConfig(run_prefix="run"))
    runner.run(order)  # Airflow's retry: the same batch as detected
    assert runner.left_for_next_run == ["rocket.jpg"]
    everyone = [*inputs, new_astro, new_rocket]
    during = audit(everyone, local_snapshot(src_root), local_snapshot(dest_root))
    during.assert_clean(finished=False)
    assert during.outcome[f"astronaut.jpg@{new_astro.sha[:8]}"] == "untouched"
    assert during.outcome[f"rocket.jpg@{new_rocket.sha[:8]}"] == "untouched"
    # the next run picks both new uploads up as new files
    nxt = scan(LocalStorage(src_root), NOW).new
    assert sorted(f.path for f in nxt) == ["astronaut.jpg", "rocket.jpg"]
    result = retry_locally(job, src_root, dest_root, nxt, everyone, prefix="run2")
    report(
        "same name re-uploaded: after the record, and before the read",
        result,
        "2 re-uploads",
        3,
        "new uploads processed by the next run",
    )


@pytest.fixture(scope="module")
def restricted_sshd(tmp_path_factory):
    """Two more servers: a read-only SFTP account, and a server without posix-rename."""
    with (
        run_sshd(tmp_path_factory.mktemp("ro"), sftp_flags="-R") as ro,
        run_sshd(tmp_path_factory.mktemp("noposix"), sftp_flags="-P posix-rename@openssh.com") as noposix,
    ):
        yield ro, noposix


def test_read_only_sftp_source_is_processed_once(restricted_sshd, tmp_path, monkeypatch, job, report):
    ro, _ = restricted_sshd
    monkeypatch.setenv("AIRFLOW_CONN_SFTP_RO", ro.conn_uri)
    inputs = scenario_inputs()
    put_local(ro.root, inputs)
    dest_root = tmp_path / "dest"
    src, dest = SftpStorage(str(ro.root), "sftp_ro"), LocalStorage(dest_root)
    files = scan(src, NOW, Ledger(dest).ids()).new
    records = BatchRunner(src, dest, job, BatchConfig(run_prefix="run")).run(files)
    assert all(r.kept_reason and "refused the move" in r.kept_reason for r in records)
    again = scan(src, NOW, Ledger(dest).ids())
    assert again.new == [] and again.processed == len(inputs)  # no run reprocesses them
    src.close()
    result = audit(inputs, local_snapshot(ro.root), local_snapshot(dest_root), kept=True)
    result.assert_clean(finished=True)
    report(
        "read-only SFTP account (moves refused)",
        result,
        "every move refused",
        1,
        "kept in place + ledger; next scan: 0 new",
    )


def test_sftp_server_without_posix_rename(restricted_sshd, monkeypatch, job, report):
    _, noposix = restricted_sshd
    monkeypatch.setenv("AIRFLOW_CONN_SFTP_NOPOSIX", noposix.conn_uri)
    inputs = scenario_inputs()
    put_local(noposix.root / "in", inputs)
    src = SftpStorage(str(noposix.root / "in"), "sftp_noposix")
    dest = SftpStorage(str(noposix.root / "out"), "sftp_noposix")
    BatchRunner(src, dest, job, BatchConfig(run_prefix="run")).run(scan(src, NOW).new)
    src.close()
    dest.close()
    out = local_snapshot(noposix.root / "out")
    assert not [p for p in out if ".tmp-" in p]
    result = audit(inputs, local_snapshot(noposix.root / "in"), out)
    result.assert_clean(finished=True)
    report("SFTP server without posix-rename (source and destination)", result, "posix-rename denied", 1)


def test_sftp_dag_at_default_batch_size_with_openssh_uploads_in_progress(
    sshd, sftp_conn, tmp_path, monkeypatch, model_store, airflow_db, job, report
):
    """matting_sftp_ingest as shipped (batch size 16, settle 10 s): photos uploaded with OpenSSH's own
    `sftp` client, one more still uploading (slowly) while the sensor looks. The batch of six reads,
    writes and moves over one SFTP connection from two threads: it must neither hang nor mix replies."""
    from airflow.dag_processing.dagbag import DagBag

    root = sshd.root / f"dag-{uuid.uuid4().hex[:6]}"
    root.mkdir()
    local = tmp_path / "camera"
    inputs = [i for i in scenario_inputs() if i.good][:6] + [i for i in scenario_inputs() if not i.good][:1]
    put_local(local, inputs)
    ssh = [
        "-i",
        str(sshd.key_file),
        "-P",
        str(sshd.port),
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "BatchMode=yes",
    ]
    target = f"{sshd.user}@127.0.0.1"
    batch = tmp_path / "upload.batch"
    batch.write_text(
        "".join(f"-mkdir {root}/{Path(i.path).parent}\nput -p {local / i.path} {root}/{i.path}\n" for i in inputs)
    )
    done = subprocess.run(["sftp", *ssh, "-b", str(batch), target], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    big = tmp_path / "big.jpg"
    big.write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(2_000_000))  # a photo: it starts like a JPEG
    slow = subprocess.Popen(  # 64 kbit/s: still growing under its final name while the DAG runs
        ["sftp", *ssh, "-l", "64", "-b", "-", target],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    slow.stdin.write(f"put {big} {root}/in_progress.jpg\n".encode())
    slow.stdin.close()
    deadline = time.monotonic() + 20
    while not (root / "in_progress.jpg").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    dest_root = tmp_path / "archive"
    for key, value in {
        "MATTING_SFTP_SOURCE": f"sftp://{root}",
        "MATTING_SFTP_CONN_ID": sftp_conn,
        "MATTING_DESTINATION": str(dest_root),
    }.items():
        monkeypatch.setenv(f"AIRFLOW_VAR_{key}", value)
    monkeypatch.setenv("AIRFLOW__MATTING__IO_TIMEOUT_S", "15")  # a regression hangs one request, never the suite
    try:
        dag = DagBag(dag_folder=str(ROOT / "dags")).get_dag("matting_sftp_ingest")
        t0 = time.monotonic()
        run = dag.test()
        took = time.monotonic() - t0
        partial = (root / "in_progress.jpg").stat().st_size
    finally:
        slow.kill()
        slow.wait(10)
    assert run.state == "success"
    assert 0 < partial < len(big.read_bytes())  # it really was mid-upload
    source = local_snapshot(root)
    # its size held still longer than the 10 s settle time (OpenSSH's -l sends a burst, then pauses), so
    # the sensor handed it out; it looked truncated and was fresh: left untouched, no record, no quarantine
    assert "in_progress.jpg" in source
    source.pop("in_progress.jpg")
    dest = local_snapshot(dest_root)
    assert not any("in_progress" in json.dumps(json.loads(v)) for k, v in dest.items() if "/records/" in k)
    manifest = json.loads(next(v for k, v in dest.items() if k.endswith("/manifest.json")))
    assert manifest["counts"] == {"files": 7, "ok": 6, "failed": 1} and len(manifest["parts"]) == 1  # one batch
    result = audit(inputs, source, dest)
    result.assert_clean(finished=True)
    report(
        "matting_sftp_ingest, batch size 16, OpenSSH sftp uploads (one in progress)",
        result,
        "upload in progress",
        1,
        f"DAG run {took:.0f} s",
    )


# --- names a destination cannot hold (issue #37) --------------------------------------------------

RUN_PREFIX = "names_dag/2026/12/03/scheduled__2026-12-03T07_00_00_00_00"  # <dag_id>/YYYY/MM/DD/<run_id>


class Place:
    """One side of a run (``in`` or ``out``) on a real server: its storage, how an uploader drops
    files there, and a snapshot of everything under it for the audit."""

    def __init__(self, kind: str, side: str, request, tmp_path: Path, bucket: str, sftp_root: Path) -> None:
        self.kind = kind
        if kind == "s3":
            server = request.getfixturevalue("s3_server")
            conn = request.getfixturevalue("s3_conn")
            self.client, self.bucket, self.side = server.client(), bucket, side
            self.storage = S3Storage(bucket, side, conn)
        elif kind == "sftp":
            self.root = sftp_root / side
            self.storage = SftpStorage(str(self.root), request.getfixturevalue("sftp_conn"))
        else:
            self.root = tmp_path / side
            self.storage = LocalStorage(self.root)

    def put(self, inputs: list[Input]) -> None:
        if self.kind == "s3":
            for item in inputs:
                self.client.put_object(Bucket=self.bucket, Key=f"{self.side}/{item.path}", Body=item.data)
        else:
            put_local(self.root, inputs)

    def snapshot(self) -> dict[str, bytes]:
        if self.kind == "s3":
            return s3_snapshot(self.client, self.bucket, self.side)
        return local_snapshot(self.root) if self.root.exists() else {}


@pytest.fixture
def places(request, tmp_path):
    """``places(source_kind, dest_kind)``: the two sides of a run, on one bucket / one SFTP folder."""
    bucket = f"names-{uuid.uuid4().hex[:8]}"
    sftp_root = None
    opened: list[Place] = []

    def make(source_kind: str, dest_kind: str) -> tuple[Place, Place]:
        nonlocal sftp_root
        if "s3" in (source_kind, dest_kind):
            request.getfixturevalue("s3_server").client().create_bucket(Bucket=bucket)
        if "sftp" in (source_kind, dest_kind):
            sftp_root = request.getfixturevalue("sshd").root / f"names-{uuid.uuid4().hex[:6]}"
        for kind, side in ((source_kind, "in"), (dest_kind, "out")):
            opened.append(Place(kind, side, request, tmp_path, bucket, sftp_root))
        return opened[-2], opened[-1]

    yield make
    for place in opened:
        place.storage.close()


NAME_ROUTES = [("s3", "local"), ("s3", "sftp"), ("s3", "s3"), ("local", "s3"), ("sftp", "local"), ("local", "sftp")]


@pytest.mark.parametrize(("source_kind", "dest_kind"), NAME_ROUTES, ids=[f"{s}-to-{d}" for s, d in NAME_ROUTES])
def test_names_a_destination_cannot_hold_settle_in_the_first_run(source_kind, dest_kind, places, job, report):
    """Long names (304 bytes of ASCII, 130 x é, a 1,018-byte S3 key), names at a folder's 255-byte
    limit, ``\\``, ``:``, control characters, trailing dots and spaces, each on a source that can hold
    it: every photo ends exactly once in the FIRST run (an output under a name the destination holds,
    or quarantined with its true reason), no in-task retry, and the next scan finds nothing left."""
    src, dest = places(source_kind, dest_kind)
    inputs = name_inputs(source_kind)
    src.put(inputs)
    files = scan(src.storage, NOW).new
    assert sorted(f.path for f in files) == sorted(i.path for i in inputs)  # every name listed as itself
    slept: list[float] = []
    records = BatchRunner(src.storage, dest.storage, job, BatchConfig(RUN_PREFIX), sleep=slept.append).run(files)
    after = {place: place.snapshot() for place in (src, dest)}
    result = audit(inputs, after[src], after[dest])
    result.assert_clean(finished=True)
    assert not slept and result.count("done") == sum(i.good for i in inputs)  # no round retried anything
    for place, names in after.items():  # what the run wrote fits where it lies (moto takes any key length)
        for name in names:
            if name not in {i.path for i in inputs}:
                place.storage.check_name(name)
    assert scan(src.storage, NOW).new == []  # not one photo for the next run to fail on again
    renamed = sum(1 for r in records if r.outputs and posixpath_stem(r.outputs[0]) != posixpath_stem(r.source))
    report(
        f"names a destination cannot hold: {source_kind} -> {dest_kind}",
        result,
        f"{len(inputs)} awkward names",
        1,
        f"{renamed} outputs renamed to fit",
    )


@pytest.mark.parametrize("dest_kind", ["local", "sftp"])
def test_a_destination_holding_less_than_it_declares_quarantines_the_name(dest_kind, places, job, report):
    """The original failure of issue #37, on a destination whose limits are not declared (a share
    that holds less than its storage says): the folder itself (ENAMETOOLONG) or the OpenSSH server
    ("Bad message") refuses the 304- and 264-byte names. Those photos are quarantined in the source as
    ``unwritable_name``, with the reason, in the first run; before, each run failed on them again."""
    src, dest = places("s3", dest_kind)
    dest.storage.max_name_bytes = None  # an instance attribute: the capability as this share misdeclares it
    inputs = name_inputs("s3")
    for item in inputs:
        if item.path in (scenario.LONG_ASCII, scenario.LONG_UTF8):
            item.good, item.expect = False, "unwritable_name"
    src.put(inputs)
    slept: list[float] = []
    runner = BatchRunner(src.storage, dest.storage, job, BatchConfig(RUN_PREFIX), sleep=slept.append)
    runner.run(scan(src.storage, NOW).new)
    result = audit(inputs, src.snapshot(), dest.snapshot())
    result.assert_clean(finished=True)
    assert not slept and result.count("quarantined") == 4  # the two names, the two files that are no photos
    report(
        f"{dest_kind} destination holding less than it declares",
        result,
        "2 names refused by the server",
        1,
        "quarantined as unwritable_name",
    )


def posixpath_stem(path: str) -> str:
    return path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
