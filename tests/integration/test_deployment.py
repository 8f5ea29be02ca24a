"""docker-compose.yaml, Dockerfile and .env.example checked against the code, without a container
engine (tests/deploy starts the stack for real).

Checked here: Docker Compose v2 itself resolves it (``docker compose config``, the real Go binary that
``make tools`` installs), every service has a health check, the Airflow components agree on their
settings, the GPU worker is wired to the engine's settings, every ``[matting]`` key the services set is an
option of the provider (and every other MATTING_* name is read by the init script),
and the init service's script runs against a real Airflow (SQLite) and creates the pool, connections
and Variables the DAGs read.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
AIRFLOW_COMPONENTS = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
    "airflow-worker": "celery worker",
    "airflow-worker-gpu": "celery worker",
}
ONE_SHOT = {"airflow-init"}


def compose_bin() -> str:
    found = shutil.which("docker-compose", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    if not found:
        pytest.fail("docker-compose missing: `make tools` (part of `make test`) installs it")
    return found


def compose(*args: str, env_file: Path = ENV_EXAMPLE) -> subprocess.CompletedProcess:
    # a clean environment: no variable from this shell may fill in for .env
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root")}
    return subprocess.run(
        [compose_bin(), "--env-file", str(env_file), "-f", str(COMPOSE_FILE), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


@pytest.fixture(scope="module")
def config() -> dict:
    proc = compose("--profile", "gpu", "config", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _dotenv(path: Path) -> dict:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if line and not line.startswith("#"))
    return {k: v for k, v in pairs}


def test_compose_resolves_and_refuses_missing_secrets(tmp_path):
    assert compose("config", "--quiet").returncode == 0
    empty = tmp_path / "empty.env"
    empty.write_text("")
    proc = compose("config", "--quiet", env_file=empty)
    assert proc.returncode != 0 and "in .env" in proc.stderr, proc.stderr
    # every required secret has a value in .env.example
    required = set(re.findall(r"\$\{(\w+):\?", COMPOSE_FILE.read_text()))
    example = _dotenv(ENV_EXAMPLE)
    assert required and all(example.get(name) for name in required), required - set(example)


def test_services_health_checks_and_dependencies(config):
    services = config["services"]
    expected = set(AIRFLOW_COMPONENTS) | ONE_SHOT | {"postgres", "redis", "minio", "sftp"}
    assert set(services) == expected
    for name, svc in services.items():
        if name in ONE_SHOT:
            continue
        assert svc.get("healthcheck", {}).get("test"), f"{name} has no health check"
        assert svc.get("restart") == "always", name
    for name, svc in services.items():
        for dep, cond in (svc.get("depends_on") or {}).items():
            want = "service_completed_successfully" if dep in ONE_SHOT else "service_healthy"
            assert cond["condition"] == want, (name, dep)
    for name, command in AIRFLOW_COMPONENTS.items():
        assert " ".join(services[name]["command"]).startswith(command), name
        assert services[name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
    assert "airflow-init" in services["airflow-init"]["command"][-1]


def test_airflow_components_share_one_configuration(config):
    services = config["services"]
    envs = {name: services[name]["environment"] for name in [*AIRFLOW_COMPONENTS, "airflow-init"]}
    shared = (
        "AIRFLOW__CORE__EXECUTOR",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
        "AIRFLOW__CELERY__BROKER_URL",
        "AIRFLOW__CORE__FERNET_KEY",
        "AIRFLOW__API_AUTH__JWT_SECRET",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE",
        "AIRFLOW__MATTING__POOL",
        "AIRFLOW__MATTING__QUEUE",
        "AIRFLOW__MATTING__DATA_DIR",
    )
    for key in shared:
        values = {name: env.get(key) for name, env in envs.items()}
        assert len(set(values.values())) == 1 and None not in values.values(), (key, values)
    env = envs["airflow-scheduler"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    # the execution API URL names the api-server service and its container port
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
    assert services["airflow-apiserver"]["ports"][0]["target"] == 8080
    assert (
        "@postgres/" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        and "redis:6379" in env["AIRFLOW__CELERY__BROKER_URL"]
    )
    # the CPU image and the GPU image are two variants of one Dockerfile
    cpu, gpu = services["airflow-worker"], services["airflow-worker-gpu"]
    assert cpu["build"]["args"]["MATTING_VARIANT"] == "cpu" and gpu["build"]["args"]["MATTING_VARIANT"] == "gpu"
    assert gpu["image"] == cpu["image"] + "-gpu"
    assert {services[n]["image"] for n in AIRFLOW_COMPONENTS if n != "airflow-worker-gpu"} == {cpu["image"]}


def test_gpu_worker_is_wired_to_the_engine_settings(config, monkeypatch):
    from matting.engine.session import RuntimeOptions
    from matting.flows.defaults import matting_task_args

    gpu = config["services"]["airflow-worker-gpu"]
    assert gpu["profiles"] == ["gpu"]
    device = gpu["deploy"]["resources"]["reservations"]["devices"][0]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"] and int(device["count"]) >= 1
    command = gpu["command"]
    assert command[command.index("--queues") + 1] == "gpu"
    env = gpu["environment"]
    assert int(command[command.index("--concurrency") + 1]) == int(_dotenv(ENV_EXAMPLE)["MATTING_GPU_SESSIONS_PER_GPU"])
    for key, value in env.items():
        if key.startswith("AIRFLOW__MATTING__"):
            monkeypatch.setenv(key, value)
    opts = RuntimeOptions.from_env()
    assert opts.providers[:2] == ("TensorrtExecutionProvider", "CUDAExecutionProvider")
    assert opts.gpu_mem_limit == 4 * 1024**3 and opts.trt_cache_dir == "/opt/airflow/trt-cache"
    targets = {v["target"] for v in gpu["volumes"]}
    assert {v["target"] for v in config["services"]["airflow-worker"]["volumes"]} <= targets
    assert "/opt/airflow/trt-cache" in targets
    # with the GPU settings of .env.example's comments, matting tasks go to the gpu queue and pool
    monkeypatch.setenv("AIRFLOW__MATTING__POOL", "matting_gpu")
    monkeypatch.setenv("AIRFLOW__MATTING__QUEUE", "gpu")
    assert matting_task_args() == {"pool": "matting_gpu", "queue": "gpu"}
    assert '"matting_gpu"' in config["services"]["airflow-init"]["command"][-1]  # the pool init creates


def test_every_matting_setting_exists_in_the_code(config):
    from matting import settings

    init_script = config["services"]["airflow-init"]["command"][-1]
    names = {k for svc in config["services"].values() for k in (svc.get("environment") or {}) if "MATTING_" in k}
    assert "AIRFLOW__MATTING__PROVIDERS" in names
    for name in sorted(names):
        if name.startswith("AIRFLOW__MATTING__"):
            key = name.removeprefix("AIRFLOW__MATTING__").lower()
            assert key in settings.BY_KEY, f"{name} is set by docker-compose.yaml but [matting] has no {key}"
        else:  # the init service's own inputs (webhook URL, pool slots, batch size)
            read = f'env["{name}"]' in init_script or f'env.get("{name}")' in init_script
            assert read, f"{name} is set by docker-compose.yaml but read nowhere"
            assert name.removeprefix("MATTING_").lower() not in settings.BY_KEY, f"{name}: use AIRFLOW__MATTING__"


def test_volumes_and_dockerfile_agree_with_the_layout(config, tmp_path):
    from matting.engine.models import ModelStore

    worker = config["services"]["airflow-worker"]
    binds = {v["target"]: v.get("source") for v in worker["volumes"]}
    for folder in ("dags", "plugins", "include"):
        assert Path(binds[f"/opt/airflow/{folder}"]) == ROOT / folder
    assert worker["environment"]["AIRFLOW__MATTING__DATA_DIR"] in binds
    dockerfile = (ROOT / "Dockerfile").read_text()
    for src, dst in re.findall(r"^COPY --chown=\S+ (\S+) (\S+)$", dockerfile, re.M):
        assert (ROOT / src).exists(), src
        if src in ("plugins", "dags", "include"):
            assert dst == f"/opt/airflow/{src}"
    airflow_pin = re.search(r"^apache-airflow==(\S+)", (ROOT / "requirements-runtime.txt").read_text(), re.M)[1]
    assert re.findall(r"^ARG AIRFLOW_VERSION=(\S+)", dockerfile, re.M) == [airflow_pin, airflow_pin]
    # the official image by default; a build arg lets tests/deploy build on a local stand-in
    assert "ARG AIRFLOW_BASE_IMAGE=apache/airflow:${AIRFLOW_VERSION}-python3.11" in dockerfile
    assert re.findall(r"^FROM (\S+)", dockerfile, re.M) == ["${AIRFLOW_BASE_IMAGE}"]
    assert worker["build"]["args"]["AIRFLOW_BASE_IMAGE"] == f"apache/airflow:{airflow_pin}-python3.11"
    models = set(re.search(r'^ARG MATTING_MODELS="([^"]+)"', dockerfile, re.M)[1].split())
    models |= set(worker["build"]["args"]["MATTING_MODELS"].split())
    manifest = ModelStore()
    for name in models:
        spec = manifest.spec(name)
        assert spec.sha256 or spec.md5, f"{name} has no checksum to verify at build time"
    # the image holds what the default scenario loads whatever MATTING_MODELS says (an old .env's list
    # cannot leave it out): `models fetch defaults`, which names auto's routes' models and its face detector
    import inspect

    from matting.cli import default_models
    from matting.engine.scenarios import DEFAULT_SCENARIO, load_scenarios
    from matting.operators.matting import RemoveBackgroundOperator

    assert re.search(r"matting models fetch defaults \$\{MATTING_MODELS\} idphoto", dockerfile)
    assert inspect.signature(RemoveBackgroundOperator.__init__).parameters["scenario"].default == DEFAULT_SCENARIO
    scenarios = load_scenarios()
    routed = {scenarios[t].model for t in scenarios[DEFAULT_SCENARIO].route.values()}
    assert routed == {"modnet", "isnet-medium"} and routed <= set(default_models(manifest))
    from matting.idphoto.face import DETECTORS

    assert {name for name, *_ in DETECTORS} <= set(default_models(manifest))  # the router's face detectors
    flows = (ROOT / "plugins/matting/flows/__init__.py").read_text()
    assert 'var("matting_scenario", DEFAULT_SCENARIO)' in flows
    # the GPU image is built with the same arguments but the variant, also when .env sets none of them
    bare = tmp_path / "bare.env"
    bare.write_text(
        "".join(
            line + "\n"
            for line in ENV_EXAMPLE.read_text().splitlines()
            if not line.startswith(("MATTING_MODELS=", "AIRFLOW_BASE_IMAGE=", "PUBLISH_ADDRESS="))
        )
    )
    proc = compose("--profile", "gpu", "config", "--format", "json", env_file=bare)
    assert proc.returncode == 0, proc.stderr
    services = json.loads(proc.stdout)["services"]
    cpu_args, gpu_args = services["airflow-worker"]["build"]["args"], services["airflow-worker-gpu"]["build"]["args"]
    assert {**gpu_args, "MATTING_VARIANT": "cpu"} == cpu_args and gpu_args["MATTING_VARIANT"] == "gpu"
    assert cpu_args["AIRFLOW_BASE_IMAGE"] == f"apache/airflow:{airflow_pin}-python3.11"
    # and every port is published on 127.0.0.1 unless PUBLISH_ADDRESS says otherwise
    published = [(n, port) for n, svc in services.items() for port in svc.get("ports") or []]
    assert published and all(port["host_ip"] == "127.0.0.1" for _, port in published), published


def test_defects_found_by_starting_the_stack_stay_fixed(config, tmp_path):
    """What the first real start of the stack (tests/deploy) found, checked here without an engine."""
    services = config["services"]
    # Celery's database result backend with SQLAlchemy 2.1: a bare postgresql:// selects psycopg 3, which fails
    for name in [*AIRFLOW_COMPONENTS, "airflow-init"]:
        assert services[name]["environment"]["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql+psycopg2://")
    for name, svc in services.items():
        test = " ".join(svc.get("healthcheck", {}).get("test") or [])
        # $HOSTNAME can be empty in a check's shell, and `airflow jobs check --hostname ""` checks nothing
        assert "HOSTNAME" not in test, (name, test)
        if "jobs check" in test or "inspect ping" in test:
            assert "$(hostname)" in test, (name, test)
        # a grace period to stop cleanly (containers made through podman's Docker API otherwise get 0 s)
        assert svc.get("stop_grace_period"), name
        for vol in svc.get("volumes") or []:
            # a bind source that does not exist when the containers are created is made a directory (by
            # root): only the checkout's own files and folders, and the data folder itself, are bound
            if vol["type"] == "bind":
                source = Path(vol["source"])
                assert source.exists() or source == ROOT / "data", (name, vol)
                assert source == ROOT / "data" or source.is_relative_to(ROOT), (name, vol)
    # a named volume starts with the owner and mode of the image's folder at its mount point (Docker):
    # each one an Airflow service writes must be made in the Dockerfile and be writable by group 0,
    # since AIRFLOW_UID is any uid with group 0
    dockerfile = (ROOT / "Dockerfile").read_text()
    made = re.search(r"RUN mkdir -p ([^\\]+)\\\n && chmod -R g\+rwX ([^\n]+)", dockerfile)
    assert made, "the Dockerfile makes the volumes' mount points"
    for name in [*AIRFLOW_COMPONENTS, "airflow-init"]:
        for vol in services[name].get("volumes") or []:
            if vol["type"] == "volume" and not vol.get("read_only"):
                assert vol["target"] in made[1].split() and vol["target"] in made[2].split(), (name, vol)
    # airflow-init lists its volumes itself (it adds the host-key volume): it keeps every shared one
    shared = {(v["source"], v["target"]) for v in services["airflow-worker"]["volumes"]}
    assert shared <= {(v["source"], v["target"]) for v in services["airflow-init"]["volumes"]}
    # the SFTP check asks sshd for the key that the start-up script installs from the init's volume
    sftp_check = services["sftp"]["healthcheck"]["test"][1]
    installer = (ROOT / "include/sftp/install-host-key").read_text()
    assert "ssh-keyscan" in sftp_check and "/etc/sftp-host-keys/ssh_host_ed25519_key.pub" in sftp_check
    assert "src=/etc/sftp-host-keys/ssh_host_ed25519_key" in installer
    # every image is a variable, so a stand-in (or a mirror) can take the upstream image's place
    names = {"POSTGRES_IMAGE": "postgres", "REDIS_IMAGE": "redis", "MINIO_IMAGE": "minio", "SFTP_IMAGE": "sftp"}
    env_file = tmp_path / "mirror.env"
    env_file.write_text(
        ENV_EXAMPLE.read_text()
        + "".join(f"{k}=mirror.example/{v}:1\n" for k, v in names.items())
        + "AIRFLOW_BASE_IMAGE=mirror.example/airflow:1\n"
    )
    proc = compose("config", "--format", "json", env_file=env_file)
    assert proc.returncode == 0, proc.stderr
    mirrored = json.loads(proc.stdout)["services"]
    for service in names.values():
        assert mirrored[service]["image"] == f"mirror.example/{service}:1", service
    assert mirrored["airflow-worker"]["build"]["args"]["AIRFLOW_BASE_IMAGE"] == "mirror.example/airflow:1"


def test_constraints_resolve_on_the_oldest_python_311():
    """The pinned set installs on every Python 3.11 an image may have (Debian 12's is 3.11.2;
    soupsieve 4.1.2 needed 3.11.5): pip resolves requirements-runtime.txt for 3.11.2, downloading
    metadata only."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--quiet",
            "--ignore-installed",
            "--python-version",
            "3.11.2",
            "--only-binary=:all:",
            "--target",
            "/nonexistent",
            "-r",
            str(ROOT / "requirements-runtime.txt"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


def _var_names_read_by_dags() -> set[str]:
    text = "\n".join(p.read_text() for p in [*ROOT.glob("dags/*.py"), *ROOT.glob("plugins/matting/flows/*.py")])
    names = set(re.findall(r'var\(\s*f?"([a-z_{}]+)"', text))
    return {n.replace("{kind}", kind) for n in names for kind in ("s3", "sftp")}


def test_init_script_sets_up_a_real_airflow(config, tmp_path):
    """The airflow-init script, run twice (restarts re-run it) against SQLite instead of PostgreSQL,
    and a real S3 server (moto's) for the buckets."""
    from servers import run_moto

    with run_moto() as s3server:
        try:
            _run_init_script(config, tmp_path, s3server)
        finally:
            # moto keeps its buckets process-wide: a later test's fresh server on another port would
            # still see these (and a sensor there would find photos/kept.jpg)
            s3 = s3server.client()
            for bucket in ("incoming", "archive"):
                try:
                    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
                except s3.exceptions.NoSuchBucket:
                    continue
                for key in keys:
                    s3.delete_object(Bucket=bucket, Key=key)
                s3.delete_bucket(Bucket=bucket)


def _run_init_script(config, tmp_path, s3server):
    import boto3

    init = config["services"]["airflow-init"]
    assert init["entrypoint"] == ["/bin/bash"] and init["command"][0] == "-c"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
        **init["environment"],
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "AIRFLOW_HOME": str(tmp_path / "home"),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",  # the CLI commands need no Celery broker
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path / 'airflow.db'}",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(tmp_path / "config" / "passwords.json"),
        "AIRFLOW__MATTING__DATA_DIR": str(tmp_path / "data"),
        "MATTING_S3_ENDPOINT": s3server.endpoint,
        "MATTING_SFTP_HOST_KEY_DIR": str(tmp_path / "sftp-host-keys"),
    }
    env.pop("AIRFLOW__CELERY__RESULT_BACKEND")
    script = init["command"][1].replace("$$", "$")  # `config` output keeps compose's $$ escapes
    hostkey = tmp_path / "sftp-host-keys" / "ssh_host_ed25519_key"
    # the key folder is a volume shared with the sftp service, which mounts it where its start-up script reads it
    sftp_mounts = {v["target"]: v for v in config["services"]["sftp"]["volumes"]}
    init_mounts = {v["target"]: v for v in init["volumes"]}
    for mount in (sftp_mounts["/etc/sftp-host-keys"], init_mounts[init["environment"]["MATTING_SFTP_HOST_KEY_DIR"]]):
        assert (mount["type"], mount["source"]) == ("volume", "sftp-host-keys"), mount
    assert Path(sftp_mounts["/etc/sftp.d/install-host-key"]["source"]) == ROOT / "include/sftp/install-host-key"
    assert os.access(ROOT / "include/sftp/install-host-key", os.X_OK)  # the image runs only executables
    for attempt in (1, 2):
        proc = subprocess.run(
            ["bash", "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300
        )
        assert proc.returncode == 0 and "airflow-init done" in proc.stdout, (
            attempt,
            proc.stdout[-2000:],
            proc.stderr[-3000:],
        )
        # the buckets the Variables name, made through S3's API; a restart keeps them (and what is in them)
        assert ("bucket incoming: created" if attempt == 1 else "bucket incoming: already there") in proc.stdout
        s3 = boto3.client(
            "s3",
            endpoint_url=s3server.endpoint,
            region_name="us-east-1",
            aws_access_key_id="x",
            aws_secret_access_key="x",
        )
        assert {"incoming", "archive"} <= {b["Name"] for b in s3.list_buckets()["Buckets"]}
        if attempt == 1:
            s3.put_object(Bucket="incoming", Key="photos/kept.jpg", Body=b"x")
        else:
            assert s3.get_object(Bucket="incoming", Key="photos/kept.jpg")["Body"].read() == b"x"
        if attempt == 1:  # an admin edits a Variable and a connection in the UI; a restart must keep both
            first_key = hostkey.read_bytes()
            edit = subprocess.run(
                ["airflow", "variables", "set", "matting_batch_size", "4"], env=env, capture_output=True, timeout=120
            )
            assert edit.returncode == 0, edit.stderr
            with sqlite3.connect(tmp_path / "airflow.db") as db:
                slots = db.execute("SELECT slots FROM slot_pool WHERE pool = 'matting_gpu'").fetchone()[0]
                assert slots == int(_dotenv(ENV_EXAMPLE)["MATTING_GPU_POOL_SLOTS"])
                db.execute("UPDATE connection SET login = 'kiosk' WHERE conn_id = 'sftp_default'")
                db.execute("UPDATE slot_pool SET slots = 7 WHERE pool = 'matting_gpu'")
    assert hostkey.read_bytes() == first_key  # generated once, never replaced
    assert oct(hostkey.stat().st_mode & 0o777) == "0o600"

    example = _dotenv(ENV_EXAMPLE)
    with sqlite3.connect(tmp_path / "airflow.db") as db:  # read back what the CLI stored
        pools = dict(db.execute("SELECT pool, slots FROM slot_pool"))
        conns = {row[0]: row[1:] for row in db.execute("SELECT conn_id, host, port, login, extra FROM connection")}
        variables = {row[0] for row in db.execute("SELECT key FROM variable")}
        batch_size = db.execute("SELECT val, is_encrypted FROM variable WHERE key = 'matting_batch_size'").fetchone()
    assert pools["matting_gpu"] == 7  # the admin's slot count survived the restart
    assert set(conns) == {"aws_default", "sftp_default"}  # no webhook URL in .env.example
    fernet = Fernet(example["AIRFLOW_FERNET_KEY"].encode())  # extras are stored encrypted with .env's key
    assert json.loads(fernet.decrypt(conns["aws_default"][3].encode()))["endpoint_url"] == s3server.endpoint
    with sqlite3.connect(tmp_path / "airflow.db") as db:  # the MinIO root credentials from .env, encrypted
        login, password = db.execute("SELECT login, password FROM connection WHERE conn_id = 'aws_default'").fetchone()
    assert login == example["MINIO_ROOT_USER"]
    assert fernet.decrypt(password.encode()).decode() == example["MINIO_ROOT_PASSWORD"]
    assert init["environment"]["MATTING_S3_ENDPOINT"] == "http://minio:9000"  # the bundled server by default
    assert conns["sftp_default"][:3] == ("sftp", 22, "kiosk")  # the admin's edit survived the restart
    value = fernet.decrypt(batch_size[0].encode()).decode() if batch_size[1] else batch_size[0]
    assert value == "4"
    # the SFTP server's host key is pinned (no more no_host_key_check) and is the key the init generated
    pinned = json.loads(fernet.decrypt(conns["sftp_default"][3].encode()))
    derived = subprocess.run(["ssh-keygen", "-y", "-f", str(hostkey)], capture_output=True, text=True, check=True)
    assert pinned == {"host_key": " ".join(derived.stdout.split()[:2])}
    _pinned_key_accepts_that_server_only(hostkey, pinned["host_key"], tmp_path)
    assert variables and variables <= _var_names_read_by_dags(), variables - _var_names_read_by_dags()
    passwords = json.loads((tmp_path / "config" / "passwords.json").read_text())
    assert passwords == {example["AIRFLOW_ADMIN_USER"]: example["AIRFLOW_ADMIN_PASSWORD"]}
    assert (tmp_path / "data" / "portraits").is_dir()
    # the connection ids the ingest DAGs use by default are the ones init creates
    ingest = (ROOT / "dags" / "matting_ingest.py").read_text()
    assert '"aws_default"' in ingest and '"sftp_default"' in ingest
    assert yaml.safe_load(COMPOSE_FILE.read_text())["services"]["sftp"]["command"].startswith("matting:")


def _pinned_key_accepts_that_server_only(hostkey: Path, pinned: str, tmp_path: Path) -> None:
    """An sshd serving the generated host key is accepted through the pinned connection; the same
    connection refuses a server with any other key."""
    from urllib.parse import quote

    from airflow.providers.sftp.hooks.sftp import SFTPHook
    from servers import run_sshd

    for name, key in (("right", hostkey), ("impostor", None)):
        with run_sshd(tmp_path / f"sshd-{name}", host_key=key) as server:
            uri = (
                f"sftp://{server.user}@127.0.0.1:{server.port}/?key_file={quote(str(server.key_file), safe='')}"
                f"&host_key={quote(pinned, safe='')}"
            )
            os.environ["AIRFLOW_CONN_SFTP_PINNED"] = uri
            try:
                hook = SFTPHook(ssh_conn_id="sftp_pinned")
                if name == "right":
                    assert hook.get_conn().listdir(str(server.root)) == []
                else:
                    with pytest.raises(Exception, match="(?i)host key|not found in known_hosts|BadHostKey"):
                        hook.get_conn()
                hook.close_conn()
            finally:
                os.environ.pop("AIRFLOW_CONN_SFTP_PINNED")
