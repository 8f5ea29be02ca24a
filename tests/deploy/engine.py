"""A container engine for the compose stack test: podman serving Docker's API, on its own storage.

Docker Compose v2 (the binary ``make tools`` installs) drives podman 4.3 through Docker's API. What
podman 4.3 needs on these machines (root, no systemd; docs/deployment.md), all set here and nowhere
else on the machine:

- its own ``containers.conf`` (``CONTAINERS_CONF``): runc, cgroupfs, file events, lowered default
  ulimits (the default ones cannot be set here);
- its own image storage (``--root``), kept between runs so unchanged layers are not rebuilt
  (``MATTING_DEPLOY_HOME``, default /var/tmp/airflow-matting-deploy);
- ``podman system service`` on a socket of its own for ``DOCKER_HOST``;
- health checks: podman runs them through systemd timers, which this machine does not have, so a
  thread here runs ``podman healthcheck run`` for each of the stack's containers at its interval.

Everything started is stopped by its id: the API service, the health-check thread, and (through the
stack's ``down``) the containers, networks and volumes.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

DEPLOY_HOME = Path(os.environ.get("MATTING_DEPLOY_HOME", "/var/tmp/airflow-matting-deploy"))
STANDINS = Path(__file__).resolve().parent / "standins"
# the Debian packages podman needs here (make system installs them)
PACKAGES = "podman runc netavark aardvark-dns slirp4netns fuse-overlayfs uidmap catatonit iptables debootstrap".split()
CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=16384:16384", "nproc=16384:16384"]
log_driver = "k8s-file"
[network]
network_backend = "netavark"
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""
BASE_PACKAGES = "python3,python3-venv,ca-certificates,curl,netbase,procps"


def _run(
    cmd: list[str],
    *,
    timeout: float,
    env: dict | None = None,
    input: bytes | None = None,
    check=True,
    what: str = "",
    more=None,
):
    """Run ``cmd``; with ``check``, a failure raises with its output (and ``more()``: logs, states)."""
    proc = subprocess.run(cmd, capture_output=True, timeout=timeout, env=env, input=input)
    if check and proc.returncode != 0:
        raise RuntimeError(
            f"{what or ' '.join(cmd[:6])} failed ({proc.returncode}):\n{proc.stdout.decode(errors='replace')[-4000:]}"
            f"\n{proc.stderr.decode(errors='replace')[-6000:]}\n{more() if more else ''}"
        )
    return proc


_PRCTL = ctypes.CDLL(None, use_errno=True).prctl  # resolved here: loading a library after fork is not safe


def _die_with_parent(parent: int = os.getpid()) -> None:
    """In the child, before exec: SIGTERM when the process that started it dies (Linux prctl); and
    not started at all if that process is already gone."""
    _PRCTL(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os._exit(1)


def _mirror() -> str:
    """The Debian mirror apt uses on this machine (debootstrap fetches from the same one)."""
    for path in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            words = line.split()
            if words[:1] == ["URIs:"] and "security" not in words[1]:
                return words[1]
            if words[:1] == ["deb"] and "security" not in line:
                return next(w for w in words[1:] if w.startswith("http"))
    return "http://deb.debian.org/debian"


@dataclass
class Podman:
    home: Path = DEPLOY_HOME
    service: subprocess.Popen | None = None
    socket: Path | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _checker: threading.Thread | None = None
    health_runs: int = 0
    health_error: str = ""

    def __post_init__(self):
        missing = [p for p in ("podman", "runc", "debootstrap") if shutil.which(p) is None]
        if missing:
            raise RuntimeError(f"the compose stack test needs {missing} (make system installs: {' '.join(PACKAGES)})")
        self.home.mkdir(parents=True, exist_ok=True)
        self.conf = self.home / "containers.conf"
        self.conf.write_text(CONTAINERS_CONF)
        self.root = self.home / "storage"
        self.runroot = self.home / "run"
        self.env = {**os.environ, "CONTAINERS_CONF": str(self.conf)}

    # --- the podman CLI on this engine's storage -------------------------------------------------
    def cmd(self, *args: str) -> list[str]:
        return ["podman", "--root", str(self.root), "--runroot", str(self.runroot), *args]

    def run(self, *args: str, timeout: float = 120, input: bytes | None = None, check: bool = True):
        return _run(self.cmd(*args), timeout=timeout, env=self.env, input=input, check=check)

    def image_exists(self, ref: str) -> bool:
        return self.run("image", "exists", ref, check=False).returncode == 0

    def sweep(self, prefix: str) -> list[str]:
        """Remove what an earlier test run left behind when it was killed before its ``down``: the
        containers, volumes and networks of compose projects ``<prefix><pid>`` whose process is gone."""
        removed = []
        for kind in ("container", "volume", "network"):
            listing = self.run(kind, "ls", *(["-a"] if kind == "container" else []), "--format", "json", check=False)
            try:
                rows = json.loads(listing.stdout or b"[]") or []
            except ValueError:
                continue
            for row in rows:
                labels = row.get("Labels") or row.get("labels") or {}
                project = labels.get("com.docker.compose.project", "")
                pid = project.removeprefix(prefix)
                if not project.startswith(prefix) or not pid.isdigit() or Path(f"/proc/{pid}").exists():
                    continue
                ident = row.get("Id") or row.get("ID") or row.get("Name") or row.get("name")
                force = ["-f", "-v"] if kind == "container" else ["-f"]
                self.run(kind, "rm", *force, ident, check=False)
                removed.append(f"{kind} {ident}")
        return removed

    # --- Docker's API ---------------------------------------------------------------------------
    @contextmanager
    def serving(self):
        """``podman system service`` on a private socket, and the health-check thread; both stopped on exit."""
        sockdir = Path(tempfile.mkdtemp(prefix="podman-api-", dir="/run" if os.access("/run", os.W_OK) else None))
        self.socket = sockdir / "podman.sock"
        self.service = subprocess.Popen(
            self.cmd("system", "service", "--time=0", f"unix://{self.socket}"),
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=open(self.home / "service.log", "ab"),
            # its own session: a Ctrl-C to the test does not stop it before the test's `down` has run;
            # and it dies with the test process, however that ends
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        try:
            deadline = time.monotonic() + 30
            while not self.socket.exists():
                if self.service.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"podman system service did not start: see {self.home / 'service.log'}")
                time.sleep(0.1)
            yield f"unix://{self.socket}"
        finally:
            self.stop_health_checks()
            self.service.terminate()
            try:
                self.service.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.service.kill()
                self.service.wait(timeout=10)
            shutil.rmtree(sockdir, ignore_errors=True)

    # --- health checks without systemd --------------------------------------------------------------
    def start_health_checks(self, project: str) -> None:
        """Run each of ``project``'s containers' health checks at its own interval (podman 4.3 runs
        them only through systemd)."""
        self._stop.clear()
        self._checker = threading.Thread(target=self._check_loop, args=(project,), daemon=True, name="healthchecks")
        self._checker.start()

    def stop_health_checks(self) -> None:
        self._stop.set()
        if self._checker is not None:
            self._checker.join(timeout=120)  # a check in flight may take its own timeout (90 s)
            self._checker = None

    def health_checks_alive(self) -> str:
        """The checker's state, for a failing ``up --wait``: running or not, checks run, last error."""
        alive = self._checker is not None and self._checker.is_alive()
        return (
            f"health-check thread: {'running' if alive else 'not running'}, {self.health_runs} checks run, "
            f"last error: {self.health_error or 'none'}"
        )

    def _check_loop(self, project: str) -> None:
        due: dict[str, float] = {}
        intervals: dict[str, float] = {}
        while not self._stop.is_set():
            try:
                ids = (
                    self.run(
                        "ps", "-q", "--no-trunc", "--filter", f"label=com.docker.compose.project={project}", timeout=30
                    )
                    .stdout.decode()
                    .split()
                )
                now = time.monotonic()
                for cid in ids:
                    if cid not in intervals:
                        intervals[cid] = self._interval(cid)
                    if intervals[cid] and now >= due.get(cid, 0):
                        due[cid] = now + intervals[cid]
                        # the result lands in the container's health state, which compose reads
                        self.run("healthcheck", "run", cid, timeout=90, check=False)
                        self.health_runs += 1
            except Exception as exc:  # noqa: BLE001 - kept, and named when the stack never gets healthy
                self.health_error = f"{type(exc).__name__}: {str(exc)[:500]}"
            self._stop.wait(1.0)

    def _interval(self, cid: str) -> float:
        proc = self.run("inspect", cid, "--format", "{{json .Config.Healthcheck}}", timeout=30, check=False)
        try:
            hc = json.loads(proc.stdout or b"null")
        except ValueError:
            return 0.0
        if not hc or not hc.get("Test") or hc["Test"][0] == "NONE":
            return 0.0
        # the stack waits on "healthy": check every 2 s until then would be kinder, but the interval is
        # what the compose file says; start_period is honoured by podman itself
        return max(2.0, (hc.get("Interval") or 30e9) / 1e9)

    # --- images -------------------------------------------------------------------------------------
    def base_image(self) -> str:
        """A Debian 12 image made here with debootstrap (no registry to pull one from), with this
        machine's extra CA certificates, tagged by what went into it."""
        certs = sorted(Path("/usr/local/share/ca-certificates").glob("**/*.crt"))
        recipe = hashlib.sha256(
            "\n".join([BASE_PACKAGES, _mirror(), *(c.read_text() for c in certs)]).encode()
        ).hexdigest()[:12]
        ref = f"localhost/matting-standin-debian:bookworm-{recipe}"
        if self.image_exists(ref):
            return ref
        with tempfile.TemporaryDirectory(prefix="debootstrap-", dir=self.home) as tmp:
            rootfs = Path(tmp) / "rootfs"
            _run(
                ["debootstrap", "--variant=minbase", f"--include={BASE_PACKAGES}", "bookworm", str(rootfs), _mirror()],
                timeout=900,
            )
            dest = rootfs / "usr/local/share/ca-certificates"
            for cert in certs:
                shutil.copy(cert, dest / cert.name)
            _run(["chroot", str(rootfs), "update-ca-certificates"], timeout=120)
            _run(["chroot", str(rootfs), "apt-get", "clean"], timeout=60)
            shutil.rmtree(rootfs / "var/lib/apt/lists", ignore_errors=True)
            (rootfs / "var/lib/apt/lists/partial").mkdir(parents=True)
            tarball = Path(tmp) / "rootfs.tar"
            _run(["tar", "-C", str(rootfs), "-cf", str(tarball), "."], timeout=600)
            imp = self.run(
                "import",
                "--change",
                'CMD ["bash"]',
                "--change",
                "ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt",
                "--change",
                "ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt",
                str(tarball),
                ref,
                timeout=600,
                check=False,
            )
            if imp.returncode != 0:
                raise RuntimeError(f"podman import failed: {imp.stderr.decode(errors='replace')[-2000:]}")
        return ref

    def build_standin(self, name: str, ref: str, *, base: str, constraints: Path, args: dict | None = None) -> str:
        """Build tests/deploy/standins/<name> as ``ref`` (layers cached in this engine's storage)."""
        with tempfile.TemporaryDirectory(prefix=f"standin-{name}-") as ctx:
            shutil.copytree(STANDINS / name, ctx, dirs_exist_ok=True)
            shutil.copy(constraints, Path(ctx) / "constraints.txt")
            build_args = [f"--build-arg=BASE={base}", *(f"--build-arg={k}={v}" for k, v in (args or {}).items())]
            self.run("build", "--layers", "-q", "-f", "Containerfile", *build_args, "-t", ref, ctx, timeout=1800)
        return ref
