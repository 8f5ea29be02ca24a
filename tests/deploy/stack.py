"""docker-compose.yaml started for real: the repository's compose file and Dockerfile as they are,
driven by Docker Compose v2 over podman, with locally built stand-ins in the image variables.

Only the stand-ins' own health check for the S3 server differs (``compose.standins.yaml``: MinIO's is
``mc ready local``, a MinIO tool). The host reaches the stack only through ports published on
127.0.0.1; the containers talk to each other on the network compose creates for the project.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.fernet import Fernet
from engine import Podman, _run
from servers import free_port

ROOT = Path(__file__).resolve().parents[2]
OVERRIDE = Path(__file__).resolve().parent / "compose.standins.yaml"
AIRFLOW_VERSION = re.search(r"^apache-airflow==(\S+)", (ROOT / "requirements-runtime.txt").read_text(), re.M)[1]
STANDIN_TAG = "test"
# the product image the test builds: one fixed name, so a rebuild untags the previous one (pruned)
PRODUCT_IMAGE = "localhost/airflow-matting-deploy-test"
# not the image's own 50000: the docs tell Linux users to set AIRFLOW_UID to theirs (group 0 as always)
AIRFLOW_UID = 4321


def compose_bin() -> str:
    found = shutil.which("docker-compose", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    if not found:
        raise RuntimeError("docker-compose missing: `make tools` (part of `make test`) installs it")
    return found


@dataclass
class Timings:
    marks: dict = field(default_factory=dict)

    def timed(self, name: str):
        stack = self

        class _T:
            def __enter__(self):
                self.t = time.monotonic()

            def __exit__(self, *exc):
                stack.marks[name] = round(time.monotonic() - self.t, 1)

        return _T()


def build_images(podman: Podman, timings: Timings) -> dict[str, str]:
    """The stand-ins, built here (layers cached in the engine's storage): name -> image reference."""
    with timings.timed("base_image_s"):
        base = podman.base_image()
    refs = {}
    with timings.timed("standins_s"):
        for name in ("postgres", "redis", "s3", "sftp", "airflow"):
            args = {"AIRFLOW_VERSION": AIRFLOW_VERSION} if name == "airflow" else None
            refs[name] = podman.build_standin(
                name,
                f"localhost/matting-standin-{name}:{STANDIN_TAG}",
                base=base,
                constraints=ROOT / "constraints.txt",
                args=args,
            )
    return refs


@dataclass
class Stack:
    podman: Podman
    docker_host: str
    workdir: Path
    images: dict[str, str]
    project: str = field(default_factory=lambda: f"matting-deploy-{os.getpid()}")
    env_values: dict = field(default_factory=dict)

    def __post_init__(self):
        self.data = self.workdir / "data"
        self.data.mkdir(parents=True, exist_ok=True)
        # the containers run as AIRFLOW_UID, gid 0: the data folder is theirs, as `mkdir -p data` makes it
        os.chown(self.data, AIRFLOW_UID, 0)
        self.data.chmod(0o775)
        self.ports = {k: free_port() for k in ("AIRFLOW_PORT", "MINIO_PORT", "MINIO_CONSOLE_PORT", "SFTP_PORT")}
        example = dict(
            line.split("=", 1)
            for line in (ROOT / ".env.example").read_text().splitlines()
            if line and not line.startswith("#")
        )
        self.env_values = {
            **example,
            **{k: str(v) for k, v in self.ports.items()},
            "PUBLISH_ADDRESS": "127.0.0.1",
            "AIRFLOW_UID": str(AIRFLOW_UID),
            "AIRFLOW_ADMIN_PASSWORD": secrets.token_urlsafe(12),
            "AIRFLOW_FERNET_KEY": Fernet.generate_key().decode(),
            "AIRFLOW_JWT_SECRET": secrets.token_urlsafe(32),
            "POSTGRES_PASSWORD": secrets.token_urlsafe(12),
            "MINIO_ROOT_PASSWORD": secrets.token_urlsafe(12),
            "SFTP_PASSWORD": secrets.token_urlsafe(12),
            "AIRFLOW_PROJ_DIR": str(ROOT),
            "MATTING_DATA_HOST_DIR": str(self.data),
            "MATTING_IMAGE": PRODUCT_IMAGE,
            "MATTING_IMAGE_TAG": "latest",
            "AIRFLOW_BASE_IMAGE": self.images["airflow"],
            "POSTGRES_IMAGE": self.images["postgres"],
            "REDIS_IMAGE": self.images["redis"],
            "MINIO_IMAGE": self.images["s3"],
            "SFTP_IMAGE": self.images["sftp"],
            # a yearly schedule: unpausing gives one run (the latest interval's), and no cron run starts
            # during the test beside the runs it triggers (which would find the uploads already taken)
            "MATTING_S3_SCHEDULE": "0 0 1 1 *",
            "MATTING_SFTP_SCHEDULE": "0 0 1 1 *",
        }
        self.env_file = self.workdir / ".env"
        self.env_file.write_text("".join(f"{k}={v}\n" for k, v in self.env_values.items()))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports['AIRFLOW_PORT']}"

    def compose(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
        env = {
            "PATH": os.environ["PATH"],
            "HOME": os.environ.get("HOME", "/root"),
            "DOCKER_HOST": self.docker_host,
            "DOCKER_BUILDKIT": "0",  # the classic build API: no buildx/BuildKit with podman 4.3
            "COMPOSE_PROJECT_NAME": self.project,
        }
        cmd = [
            compose_bin(),
            "--env-file",
            str(self.env_file),
            "-f",
            str(ROOT / "docker-compose.yaml"),
            "-f",
            str(OVERRIDE),
            "--project-directory",
            str(ROOT),
            *args,
        ]
        proc = _run(
            cmd,
            timeout=timeout,
            env=env,
            check=check,
            what=f"docker compose {' '.join(args)}",
            more=lambda: f"{self.podman.health_checks_alive()}\n{self.logs_tail()}",
        )
        out, err = (b.decode(errors="replace") for b in (proc.stdout, proc.stderr))
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    def logs_tail(self, service: str = "", chars: int = 6000) -> str:
        try:
            proc = self.compose(
                "logs", "--no-color", "--tail", "60", *([service] if service else []), timeout=60, check=False
            )
        except Exception as exc:  # noqa: BLE001 - only for a failure message
            return f"(no logs: {exc})"
        return (proc.stdout + proc.stderr)[-chars:]

    def ps(self) -> list[dict]:
        out = self.compose("ps", "--all", "--format", "json", timeout=60).stdout.strip()
        if out.startswith("["):
            return json.loads(out)
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def container_ids(self) -> list[str]:
        return (
            self.podman.run(
                "ps",
                "-a",
                "-q",
                "--no-trunc",
                "--filter",
                f"label=com.docker.compose.project={self.project}",
                check=False,
            )
            .stdout.decode()
            .split()
        )

    def memory_mb(self) -> dict[str, float]:
        """Resident memory per running container (podman stats, one sample)."""
        proc = self.podman.run(
            "stats", "--no-stream", "--format", "json", *self.container_ids(), timeout=120, check=False
        )
        try:
            rows = json.loads(proc.stdout or b"[]")
        except ValueError:
            return {}
        sizes = {}
        for row in rows:
            used = str(row.get("mem_usage", "")).split("/")[0].strip()
            m = re.match(r"([\d.]+)\s*([kKMG]i?B|B)", used)
            if m:
                factor = {
                    "B": 1e-6,
                    "kB": 1e-3,
                    "KB": 1e-3,
                    "KiB": 1.024e-3,
                    "MB": 1,
                    "MiB": 1.048576,
                    "GB": 1e3,
                    "GiB": 1073.741824,
                }.get(m[2], 1)
                sizes[row.get("name", row.get("id", "?"))] = round(float(m[1]) * factor, 1)
        return sizes
