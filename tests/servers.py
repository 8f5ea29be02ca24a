"""Real servers on loopback for integration tests: OpenSSH's sshd (SFTP) and moto's S3 server.

Both bind 127.0.0.1 on a free port, use throwaway keys and credentials, and stop by themselves.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def debian_binary(name: str, fallback: str, package: str) -> str:
    """Path of a server binary from a Debian package, or a clear error naming the package."""
    path = shutil.which(name) or fallback
    if not os.path.exists(path):
        raise RuntimeError(f"{name} not found: install Debian's {package} (.ci/run does)")
    return path


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


@dataclass
class Sshd:
    port: int
    user: str
    key_file: Path
    root: Path  # the SFTP session starts here; tests put incoming files below it
    workdir: Path
    proc: subprocess.Popen | None = None

    def start(self) -> None:
        sshd = debian_binary("sshd", "/usr/sbin/sshd", "openssh-server")
        log = open(self.workdir / "sshd.log", "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(
            [sshd, "-D", "-e", "-f", str(self.workdir / "sshd_config")],
            stdout=log,
            stderr=log,
        )
        wait_port(self.port)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def conn_uri(self) -> str:
        from urllib.parse import quote

        extra = f"key_file={quote(str(self.key_file), safe='')}&no_host_key_check=true"
        return f"sftp://{self.user}@127.0.0.1:{self.port}/?{extra}"


@contextlib.contextmanager
def run_sshd(workdir: Path) -> Iterator[Sshd]:
    """sshd on a free loopback port: throwaway host key, key-only login as the current user."""
    debian_binary("sshd", "/usr/sbin/sshd", "openssh-server")
    workdir.mkdir(parents=True, exist_ok=True)
    root = workdir / "sftp-root"
    root.mkdir(exist_ok=True)
    for name in ("host_key", "user_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(workdir / name)], check=True)
    (workdir / "authorized_keys").write_text((workdir / "user_key.pub").read_text())
    os.makedirs("/run/sshd", exist_ok=True)
    port = free_port()
    import getpass

    user = getpass.getuser()
    (workdir / "sshd_config").write_text(
        f"""Port {port}
ListenAddress 127.0.0.1
HostKey {workdir / "host_key"}
PidFile none
AuthorizedKeysFile {workdir / "authorized_keys"}
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
AllowUsers {user}
Subsystem sftp internal-sftp -d {root}
LogLevel ERROR
"""
    )
    server = Sshd(port=port, user=user, key_file=workdir / "user_key", root=root, workdir=workdir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class S3Server:
    endpoint: str
    server: object

    def client(self):
        """A boto3 S3 client on this server, for tests to set up buckets and check objects."""
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1")

    @property
    def conn_uri(self) -> str:
        from urllib.parse import quote

        return "aws://testing:testing@/?region_name=us-east-1&endpoint_url=" + quote(self.endpoint, safe="")


@contextlib.contextmanager
def run_moto() -> Iterator[S3Server]:
    """moto's S3 over real HTTP on loopback (ThreadedMotoServer)."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    wait_port(port)
    try:
        yield S3Server(endpoint=f"http://127.0.0.1:{port}", server=server)
    finally:
        server.stop()


@contextlib.contextmanager
def faulty_proxy(upstream: str, fail_first: int = 1, status: int = 500) -> Iterator[tuple[str, list]]:
    """An HTTP proxy on loopback in front of ``upstream`` that answers the first ``fail_first``
    GET requests with ``status`` (an S3 5xx on a listing), then forwards everything."""
    import http.server
    import threading
    import urllib.error
    import urllib.request

    seen: list[int] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _forward(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            if self.command == "GET" and sum(1 for s in seen if s == status) < fail_first:
                seen.append(status)
                payload = b"<Error><Code>InternalError</Code><Message>injected</Message></Error>"
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                return
            req = urllib.request.Request(
                upstream + self.path,
                data=body,
                method=self.command,
                headers={k: v for k, v in self.headers.items() if k.lower() != "host"},
            )
            try:
                with urllib.request.urlopen(req, timeout=30) as resp:
                    code, headers, data = resp.status, resp.headers, resp.read()
            except urllib.error.HTTPError as err:
                code, headers, data = err.code, err.headers, err.read()
            seen.append(code)
            self.send_response(code)
            for k, v in headers.items():
                if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}", seen
    finally:
        srv.shutdown()
        srv.server_close()


@dataclass
class Redis:
    port: int

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"


@contextlib.contextmanager
def run_redis(workdir: Path) -> Iterator[Redis]:
    """Debian's redis-server on a free loopback port, in memory only (the Celery broker)."""
    binary = debian_binary("redis-server", "/usr/bin/redis-server", "redis-server")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    args = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(workdir)]
    log = open(workdir / "redis.log", "ab")  # noqa: SIM115 - owned by the process
    proc = subprocess.Popen([binary, *args], stdout=log, stderr=log)
    try:
        wait_port(port)
        yield Redis(port)
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


@dataclass
class WebhookReceiver:
    url: str
    received: list  # JSON bodies, in arrival order

    def wait_for(self, match, timeout: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = next((body for body in list(self.received) if match(body)), None)
            if found is not None:
                return found
            time.sleep(0.5)
        raise TimeoutError(f"no matching webhook call in {timeout:.0f}s; received {self.received}")


@contextlib.contextmanager
def run_webhook_receiver() -> Iterator[WebhookReceiver]:
    """An HTTP server on loopback that records the JSON bodies POSTed to it (a stand-in for Slack/Teams)."""
    import http.server
    import json
    import threading

    received: list[dict] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield WebhookReceiver(f"http://127.0.0.1:{srv.server_address[1]}/hook", received)
    finally:
        srv.shutdown()
        srv.server_close()
