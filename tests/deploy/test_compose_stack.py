"""docker-compose.yaml started for real (issue #31): build, every service healthy, photos through S3
and SFTP on the CeleryExecutor, ID photos, the Results pages, a worker restarted mid-run, ``down -v``.

The stack is the repository's docker-compose.yaml and Dockerfile as users get them, with locally
built stand-ins for the upstream images (tests/deploy/standins: no registry is reachable here) and
podman serving Docker's API (tests/deploy/engine.py). The host reaches it only through ports
published on 127.0.0.1. Timings and memory go to out/deploy/stack.json (quoted in docs/deployment.md).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import boto3
import pytest
import requests
from botocore.config import Config
from engine import Podman
from PIL import Image
from stack import AIRFLOW_UID, ROOT, Stack, Timings, build_images

pytestmark = pytest.mark.deploy
SAMPLES = ROOT / "include" / "samples"
OUT = ROOT / "out" / "deploy"
COMPONENTS_WITH_JOB_CHECKS = {"airflow-dag-processor": "DagProcessorJob", "airflow-triggerer": "TriggererJob"}
WORKERS = ("airflow-worker",)


class Api:
    def __init__(self, stack: Stack):
        self.stack = stack
        self.url = stack.url
        r = requests.post(
            f"{self.url}/auth/token",
            json={
                "username": stack.env_values["AIRFLOW_ADMIN_USER"],
                "password": stack.env_values["AIRFLOW_ADMIN_PASSWORD"],
            },
            timeout=30,
        )
        assert r.status_code == 201, r.text
        self.headers = {"Authorization": f"Bearer {r.json()['access_token']}"}

    def __call__(self, method: str, path: str, body: dict | None = None) -> dict:
        r = requests.request(method, f"{self.url}/api/v2/{path}", json=body, headers=self.headers, timeout=60)
        assert r.status_code < 400, (method, path, r.status_code, r.text[:2000])
        return r.json() if r.content else {}

    def wait(self, what: str, probe, timeout: float, every: float = 3.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = probe()
            if value:
                return value
            time.sleep(every)
        raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}\n{self.stack.logs_tail(chars=12000)}")

    def start(self, dag_id: str, conf: dict | None = None) -> str:
        """The run that will handle what was just uploaded: a scheduled DAG, unpaused for the first
        time, gets its latest interval's run from the scheduler (a second run triggered beside it would
        find nothing left); otherwise a run is triggered, as the UI's Trigger button does."""
        dag = self.wait(
            f"DAG {dag_id} parsed",
            lambda: (
                (r := requests.get(f"{self.url}/api/v2/dags/{dag_id}", headers=self.headers, timeout=30)).ok
                and r.json()
            ),
            180,
        )
        if dag["is_paused"] and dag.get("timetable_summary") not in (None, "None"):
            self("PATCH", f"dags/{dag_id}", {"is_paused": False})
            return self.wait(
                f"the scheduled run of {dag_id}",
                lambda: [r["dag_run_id"] for r in self("GET", f"dags/{dag_id}/dagRuns")["dag_runs"]][:1],
                180,
            )[0]
        if dag["is_paused"]:
            self("PATCH", f"dags/{dag_id}", {"is_paused": False})
        return self("POST", f"dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf or {}})["dag_run_id"]

    def run_state(self, dag_id: str, run_id: str) -> str:
        return self("GET", f"dags/{dag_id}/dagRuns/{quote(run_id, safe='')}")["state"]

    def wait_run(self, dag_id: str, run_id: str, timeout: float) -> str:
        state = self.wait(
            f"{dag_id} run {run_id}",
            lambda: (s := self.run_state(dag_id, run_id)) in ("success", "failed") and s,
            timeout,
        )
        if state != "success":
            tis = self("GET", f"dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances")["task_instances"]
            states = {(t["task_id"], t["map_index"]): (t["state"], t["try_number"], t["hostname"]) for t in tis}
            raise AssertionError(f"{dag_id} {run_id} ended {state}: {states}\n{self.stack.logs_tail('airflow-worker')}")
        return state

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        return self("GET", f"dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances")["task_instances"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    # a SIGTERM (a CI job's timeout) ends the test through its teardown, so the stack still goes down
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        yield from _stack(tmp_path_factory)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _exit_on_sigterm(signum, frame):
    raise SystemExit("SIGTERM")


def _stack(tmp_path_factory):
    timings = Timings()
    podman = Podman()
    podman.sweep("matting-deploy-")  # what a killed earlier run left: containers, then volumes and networks
    images = build_images(podman, timings)
    workdir = tmp_path_factory.mktemp("stack")
    with podman.serving() as docker_host:
        stack = Stack(podman, docker_host, workdir, images)
        stack.timings = timings
        try:
            with timings.timed("build_s"):
                # one service builds the image all Airflow services share (compose would build it once per service)
                stack.compose("build", "airflow-scheduler", timeout=3600)
            podman.run("image", "prune", "-f", timeout=300, check=False)  # the previous build's layers
            podman.start_health_checks(stack.project)
            with timings.timed("cold_start_to_healthy_s"):
                stack.compose("up", "-d", "--wait", "--no-build", "--wait-timeout", "600", timeout=900)
            yield stack
        finally:
            ids = stack.container_ids()
            with timings.timed("down_s"):
                down = stack.compose("down", "-v", "--remove-orphans", "-t", "10", timeout=600, check=False)
            left = [c for c in ids if podman.run("container", "exists", c, check=False).returncode == 0]
            for cid in left:  # whatever down left: removed by id
                podman.run("rm", "-f", "-v", cid, check=False)
            volumes = (
                podman.run(
                    "volume", "ls", "-q", "--filter", f"label=com.docker.compose.project={stack.project}", check=False
                )
                .stdout.decode()
                .split()
            )
            networks = (
                podman.run(
                    "network", "ls", "-q", "--filter", f"label=com.docker.compose.project={stack.project}", check=False
                )
                .stdout.decode()
                .split()
            )
            for vol in volumes:
                podman.run("volume", "rm", "-f", vol, check=False)
            for net in networks:
                podman.run("network", "rm", "-f", net, check=False)
            OUT.mkdir(parents=True, exist_ok=True)
            (OUT / "stack.json").write_text(json.dumps(stack.timings.marks, indent=2))
            print("\nstack timings and memory:", json.dumps(stack.timings.marks))
            assert down.returncode == 0 and not left and not volumes and not networks, (
                down.stderr[-2000:],
                left,
                volumes,
                networks,
            )


@pytest.fixture(scope="module")
def api(stack):
    return Api(stack)


def _s3(stack: Stack):
    return boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{stack.ports['MINIO_PORT']}",
        region_name="us-east-1",
        aws_access_key_id=stack.env_values["MINIO_ROOT_USER"],
        aws_secret_access_key=stack.env_values["MINIO_ROOT_PASSWORD"],
        config=Config(connect_timeout=10, read_timeout=60, retries={"max_attempts": 3}),
    )


def _keys(s3, bucket: str, prefix: str = "") -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def _sftp(stack: Stack, commands: str, workdir: Path) -> str:
    """OpenSSH's sftp client on the published port, password from .env, host key checking on (the key
    the server serves, read inside its container; its health check compares it with the one
    airflow-init generated and pinned)."""
    known = workdir / "known_hosts"
    if not known.exists():
        pub = _service_exec(stack, "sftp", "cat", "/etc/ssh/ssh_host_ed25519_key.pub").split()
        known.write_text(f"[127.0.0.1]:{stack.ports['SFTP_PORT']} {pub[0]} {pub[1]}\n")
    proc = subprocess.run(
        [
            "sshpass",
            "-e",
            "sftp",
            "-P",
            str(stack.ports["SFTP_PORT"]),
            "-o",
            f"UserKnownHostsFile={known}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "PubkeyAuthentication=no",
            "-o",
            "ConnectTimeout=20",
            "matting@127.0.0.1",
        ],
        input=commands,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "SSHPASS": stack.env_values["SFTP_PASSWORD"]},
    )
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-2000:])
    return proc.stdout


def _service_id(stack: Stack, service: str) -> str:
    running = stack.podman.run(
        "ps",
        "-q",
        "--filter",
        f"label=com.docker.compose.project={stack.project}",
        "--filter",
        f"label=com.docker.compose.service={service}",
    )
    return running.stdout.decode().split()[0]


def _service_exec(stack: Stack, service: str, *cmd: str) -> str:
    return stack.podman.run("exec", _service_id(stack, service), *cmd, timeout=120).stdout.decode()


def _variant(src: Path, n: int, into: Path) -> Path:
    """A distinct photo (its own pixels, so no result cache answers for it)."""
    img = Image.open(src).convert("RGB")
    img.putpixel((n % img.width, 0), (n % 256, (n * 7) % 256, (n * 13) % 256))
    out = into / f"{src.stem}-{n:03d}.jpg"
    img.save(out, quality=92)
    return out


def _manifest(s3, dag_id: str, run_id: str) -> dict:
    """The run's manifest in the archive bucket, found where the product says a run's folder is."""
    from matting.operators.base import default_run_prefix

    class _Run:  # what default_run_prefix reads of a DAG run
        run_after = None

    when = re.search(r"__(\d{4}-\d\d-\d\d)", run_id)[1]
    context = {"dag_id": dag_id, "run_id": run_id, "logical_date": datetime.fromisoformat(when), "dag_run": _Run()}
    key = f"matting/{default_run_prefix(context)}/manifest.json"
    listing = _keys(s3, "archive", f"matting/{dag_id}/")
    assert key in listing, (key, [k for k in listing if k.endswith("manifest.json")])
    return json.loads(s3.get_object(Bucket="archive", Key=key)["Body"].read())


def test_every_service_comes_up_healthy(stack, api):
    services = {c["Service"]: c for c in stack.ps()}
    assert set(services) == {
        "postgres",
        "redis",
        "minio",
        "sftp",
        "airflow-init",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "airflow-worker",
    }
    for name, c in services.items():
        if name == "airflow-init":
            assert c["State"] == "exited" and c.get("ExitCode", 0) == 0, c
        else:
            assert c["State"] == "running" and c["Health"] == "healthy", c
    assert stack.podman.health_runs > 0  # the health states come from checks run, not from a default
    # the UI opens, and the REST API answers the admin from .env (and nobody else)
    assert requests.get(stack.url, timeout=30).status_code == 200
    assert api("GET", "version")["version"]
    bad = requests.post(f"{stack.url}/auth/token", json={"username": "admin", "password": "admin"}, timeout=30)
    assert bad.status_code in (401, 403)
    # ports are published on 127.0.0.1 only, each where .env says
    published = {
        (name, pub["TargetPort"], pub["PublishedPort"], pub["URL"])
        for name, c in services.items()
        for pub in c.get("Publishers") or []
        if pub.get("PublishedPort")
    }
    ports = stack.ports
    assert published == {
        ("airflow-apiserver", 8080, ports["AIRFLOW_PORT"], "127.0.0.1"),
        ("minio", 9000, ports["MINIO_PORT"], "127.0.0.1"),
        ("minio", 9001, ports["MINIO_CONSOLE_PORT"], "127.0.0.1"),
        ("sftp", 22, ports["SFTP_PORT"], "127.0.0.1"),
    }, published


def test_health_checks_check_the_container_they_run_in(stack):
    """The job and worker checks name the container by $(hostname), not $HOSTNAME (empty in podman's
    check shells, and `airflow jobs check --hostname ""` passes without checking anything): each
    passes in its own container with HOSTNAME unset, and fails in another Airflow container."""
    config = json.loads(stack.compose("config", "--format", "json").stdout)["services"]
    ids = {c["Service"]: _service_id(stack, c["Service"]) for c in stack.ps() if c["State"] == "running"}
    for service in [*COMPONENTS_WITH_JOB_CHECKS, *WORKERS]:
        test = [part.replace("$$", "$") for part in config[service]["healthcheck"]["test"]]  # compose's escapes
        assert test[0] == "CMD-SHELL" and "HOSTNAME" not in test[1], test
        own = stack.podman.run(
            "exec", ids[service], "env", "-u", "HOSTNAME", "sh", "-c", test[1], timeout=120, check=False
        )
        assert own.returncode == 0, (service, own.stdout[-500:], own.stderr[-500:])
        other = stack.podman.run(
            "exec", ids["airflow-scheduler"], "env", "-u", "HOSTNAME", "sh", "-c", test[1], timeout=120, check=False
        )
        assert other.returncode != 0, (service, "passed in the scheduler's container", other.stdout[-500:])


def test_photos_through_s3_and_sftp_on_celery(stack, api, tmp_path):
    s3 = _s3(stack)
    assert {"incoming", "archive"} <= {b["Name"] for b in s3.list_buckets()["Buckets"]}  # made by airflow-init
    # S3: two photos (one as a multipart upload) and a broken one; SFTP: two photos and a broken one
    big = tmp_path / "astronaut-big.png"
    Image.open(SAMPLES / "astronaut.jpg").resize((1600, 1600)).save(big)  # ~4 MB: multipart at a 1 MB threshold
    from boto3.s3.transfer import TransferConfig

    started = time.monotonic()
    s3.upload_file(
        str(big),
        "incoming",
        "photos/astronaut-big.png",
        Config=TransferConfig(multipart_threshold=1024 * 1024, multipart_chunksize=5 * 1024 * 1024),
    )
    s3.upload_file(str(SAMPLES / "coffee.jpg"), "incoming", "photos/coffee.jpg")
    s3.put_object(Bucket="incoming", Key="photos/broken.jpg", Body=b"\xff\xd8 not a jpeg at all")
    broken = tmp_path / "broken-sftp.jpg"
    broken.write_bytes(b"\xff\xd8 truncated upload")
    _sftp(
        stack,
        f"cd upload/photos\nput {SAMPLES / 'rocket.jpg'}\nput {SAMPLES / 'coffee.jpg'} mug.jpg\nput {broken}\nls -l\n",
        tmp_path,
    )

    runs = {dag: api.start(dag) for dag in ("matting_s3_ingest", "matting_sftp_ingest")}
    for dag, run_id in runs.items():
        api.wait_run(dag, run_id, timeout=1200)
    stack.timings.marks["first_runs_upload_to_archive_s"] = round(time.monotonic() - started, 1)
    stack.timings.marks["memory_mb_after_first_runs"] = stack.memory_mb()

    # every task ran on the Celery worker
    tis = api.task_instances("matting_s3_ingest", runs["matting_s3_ingest"])
    assert {t["queue"] for t in tis if t["state"] == "success"} == {"default"}
    workers = {t["hostname"] for t in tis if t["state"] == "success"}
    assert len(workers) == 1 and all(workers), workers

    s3_manifest = _manifest(s3, "matting_s3_ingest", runs["matting_s3_ingest"])
    sftp_manifest = _manifest(s3, "matting_sftp_ingest", runs["matting_sftp_ingest"])
    for manifest, good, bad in (
        (s3_manifest, {"astronaut-big.png", "coffee.jpg"}, {"broken.jpg"}),
        (sftp_manifest, {"rocket.jpg", "mug.jpg"}, {"broken-sftp.jpg"}),
    ):
        text = json.dumps(manifest)
        for name in good | bad:
            assert name in text, (name, text[:2000])
        assert manifest["counts"]["ok"] == 2 and manifest["counts"]["failed"] == 1, manifest["counts"]
    # the outputs are in the archive bucket; the originals moved, the broken one quarantined with its reason
    outputs = _keys(s3, "archive", "matting/matting_s3_ingest/")
    assert sum(k.endswith(".png") and "/outputs/" in k for k in outputs) >= 2, outputs
    left = _keys(s3, "incoming", "photos/")
    assert not [k for k in left if k.count("/") == 1], left  # nothing left at the top of incoming/photos
    assert [k for k in left if "quarantine/" in k and k.endswith("broken.jpg")], left
    notes = [k for k in left if "quarantine/" in k and k.endswith(".error.json")]
    assert len(notes) == 1, left
    note = json.loads(s3.get_object(Bucket="incoming", Key=notes[0])["Body"].read())
    assert note["source"].endswith("broken.jpg") and note["error_type"] and note["error"], note
    # the SFTP side, as the server's volume holds it
    files = _service_exec(stack, "sftp", "find", "/home/matting/upload/photos", "-type", "f").split()
    rel = sorted(f.removeprefix("/home/matting/upload/photos/") for f in files)
    assert not [f for f in rel if "/" not in f], rel  # nothing left at the top of upload/photos
    assert [f for f in rel if f.startswith("quarantine/") and f.endswith("broken-sftp.jpg")], rel
    assert {"rocket.jpg", "mug.jpg"} <= {f.rsplit("/", 1)[-1] for f in rel if f.startswith("processed/")}, rel

    # the Results tab answers for those runs (as the UI's iframe asks, with the admin's token)
    shown = {
        "matting_s3_ingest": ("astronaut-big.png", "coffee.jpg", "broken.jpg"),
        "matting_sftp_ingest": ("rocket.jpg", "mug.jpg", "broken-sftp.jpg"),
    }
    for dag, run_id in runs.items():
        page = requests.get(f"{stack.url}/matting/runs/{dag}/{quote(run_id, safe='')}", headers=api.headers, timeout=60)
        assert page.status_code == 200, (page.status_code, page.text[:500])
        assert all(name in page.text for name in shown[dag]), (dag, page.text[:2000])
        thumb = requests.get(
            f"{stack.url}/matting/runs/{dag}/{quote(run_id, safe='')}/thumb/0/after.jpg",
            headers=api.headers,
            timeout=60,
        )
        assert thumb.status_code == 200 and thumb.content[:2] == b"\xff\xd8"
    assert requests.get(
        f"{stack.url}/matting/runs/matting_s3_ingest/{quote(runs['matting_s3_ingest'], safe='')}", timeout=30
    ).status_code in (401, 403)


def test_id_photo_batch(stack, api):
    from idphoto.portraits import portrait

    portraits = stack.data / "portraits"
    portraits.mkdir(exist_ok=True)
    for src in (SAMPLES / "astronaut.jpg", portrait("obama.jpg")):
        shutil.copy(src, portraits / src.name)
        os.chown(portraits / src.name, AIRFLOW_UID, 0)
    run_id = api.start("id_photo_batch", {"spec": "cn-1inch", "mode": "lenient"})
    api.wait_run("id_photo_batch", run_id, timeout=900)
    reports = sorted((stack.data / "id-photos").rglob("*.report.json"))
    assert len(reports) == 2, sorted(p.name for p in (stack.data / "id-photos").rglob("*"))
    for report in reports:
        photo = report.with_name(report.name.removesuffix(".report.json") + ".jpg")
        assert photo.exists(), photo
        with Image.open(photo) as img:
            assert img.size == (295, 413), img.size  # 1 inch at 300 dpi
    page = requests.get(
        f"{stack.url}/matting/runs/id_photo_batch/{quote(run_id, safe='')}", headers=api.headers, timeout=60
    )
    assert page.status_code == 200 and "astronaut" in page.text


def test_worker_restarted_mid_run_loses_nothing(stack, api, tmp_path):
    s3 = _s3(stack)
    names = []
    for n in range(24):
        photo = _variant(SAMPLES / ("astronaut.jpg" if n % 2 else "coffee.jpg"), n, tmp_path)
        s3.upload_file(str(photo), "incoming", f"photos/{photo.name}")
        names.append(photo.name)
    run_id = api.start("matting_s3_ingest")  # unpaused by the first test: a triggered run

    def matting_running():
        return [
            t
            for t in api.task_instances("matting_s3_ingest", run_id)
            if t["state"] == "running" and t["task_id"].startswith("remove")
        ]

    running = api.wait("a matting task running on the worker", matting_running, timeout=600, every=2)
    worker = _service_id(stack, "airflow-worker")
    first_start = stack.podman.run("inspect", worker, "--format", "{{.State.StartedAt}}").stdout
    started = time.monotonic()
    before = datetime.now(UTC)
    stack.compose("restart", "airflow-worker", timeout=300)
    restarted_at = datetime.now(UTC)
    assert stack.podman.run("inspect", worker, "--format", "{{.State.StartedAt}}").stdout != first_start
    stack.timings.marks["worker_restart_s"] = round(time.monotonic() - started, 1)
    api.wait_run("matting_s3_ingest", run_id, timeout=1500)
    manifest = _manifest(s3, "matting_s3_ingest", run_id)
    text = json.dumps(manifest)
    assert all(name in text for name in names), [n for n in names if n not in text]
    assert manifest["counts"]["ok"] == len(names) and manifest["counts"]["failed"] == 0, manifest["counts"]
    left = [k for k in _keys(s3, "incoming", "photos/") if k.count("/") == 1]
    assert not left, left
    processed = [k for k in _keys(s3, "incoming", "photos/processed/") if any(k.endswith(n) for n in names)]
    assert len(processed) == len(names), processed  # each original moved exactly once
    tis = api.task_instances("matting_s3_ingest", run_id)
    stack.timings.marks["restart_run_tries"] = {f"{t['task_id']}[{t['map_index']}]": t["try_number"] for t in tis}
    # the batches that were running when the worker went down: each either finished inside the stop's
    # grace period (Celery's warm shutdown) or was run again by a later try
    after = {(t["task_id"], t["map_index"]): t for t in tis}
    for ti in running:
        now = after[(ti["task_id"], ti["map_index"])]
        assert now["state"] == "success" and now["end_date"], now
        ended = datetime.fromisoformat(now["end_date"])
        assert now["try_number"] > ti["try_number"] or before <= ended <= restarted_at, (ti, now, before, restarted_at)
