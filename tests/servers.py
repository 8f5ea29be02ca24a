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
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def debian_binary(name: str, fallback: str, package: str) -> str:
    """Path of a server binary from a Debian package, or a clear error naming the package."""
    path = shutil.which(name) or fallback
    if not os.path.exists(path):
        raise RuntimeError(f"{name} not found: install Debian's {package} (`make system`, part of `make test`, does)")
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
        """Stop the listener *and* every live session (as a server reboot would), then start again:
        clients must really reconnect."""
        self.kill_sessions()
        self.stop()
        self.start()

    def sessions(self) -> list[int]:
        """PIDs of the per-connection sshd processes (children of the listener, and theirs)."""
        if not self.proc:
            return []
        found, todo = [], [self.proc.pid]
        while todo:
            out = subprocess.run(["pgrep", "-P", str(todo.pop())], capture_output=True, text=True).stdout
            kids = [int(x) for x in out.split()]
            found += kids
            todo += kids
        return found

    def kill_sessions(self) -> int:
        """SIGKILL every live session (a dropped connection mid-transfer); the listener stays up."""
        import signal

        pids = self.sessions()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return len(pids)

    def signal_sessions(self, sig: int) -> list[int]:
        pids = self.sessions()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        return pids

    @property
    def conn_uri(self) -> str:
        from urllib.parse import quote

        extra = f"key_file={quote(str(self.key_file), safe='')}&no_host_key_check=true"
        return f"sftp://{self.user}@127.0.0.1:{self.port}/?{extra}"


@contextlib.contextmanager
def run_sshd(workdir: Path, sftp_flags: str = "", host_key: Path | None = None) -> Iterator[Sshd]:
    """sshd on a free loopback port: throwaway host key, key-only login as the current user.
    ``sftp_flags`` go to internal-sftp: ``-R`` (a read-only account), ``-P posix-rename@openssh.com``
    (a server without OpenSSH's posix-rename extension)."""
    debian_binary("sshd", "/usr/sbin/sshd", "openssh-server")
    workdir.mkdir(parents=True, exist_ok=True)
    root = workdir / "sftp-root"
    root.mkdir(exist_ok=True)
    for name in ("host_key", "user_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(workdir / name)], check=True)
    (workdir / "authorized_keys").write_text((workdir / "user_key.pub").read_text())
    if host_key is not None:  # serve a given host key (e.g. the one a deployment pinned)
        shutil.copyfile(host_key, workdir / "host_key")
        os.chmod(workdir / "host_key", 0o600)
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
Subsystem sftp internal-sftp -d {root} {sftp_flags}
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


@dataclass
class Fault:
    """Every ``every``-th request of ``kind`` (GET, PUT, HEAD, DELETE, POST or LIST: a bucket listing)
    gets ``mode``: an HTTP ``status`` with an S3 error ``code``, a connection ``reset`` without an
    answer, or a ``stall`` of ``seconds`` before it is forwarded. ``limit`` caps how many it injects;
    ``path`` (a substring of the request's path) limits it to those requests (counted apart)."""

    kind: str
    every: int = 1
    mode: str = "status"  # status | reset | stall
    status: int = 503
    code: str = "SlowDown"
    seconds: float = 0.0
    limit: int | None = None
    injected: int = 0
    path: str = ""
    seen: int = 0


class FaultProxy:
    """An HTTP proxy on loopback in front of an S3 server that injects faults by rule (``Fault``).
    ``seen`` lists (kind, status or 'reset'/'stall') for every faulted request, in order; ``requests``
    (kind, path) for every request."""

    def __init__(self, upstream: str, faults: list[Fault] | None = None) -> None:
        self.upstream, self.faults = upstream, list(faults or [])
        self.seen: list[tuple[str, object]] = []
        self.requests: list[tuple[str, str]] = []
        self.counts: dict[str, int] = {}
        self.url = ""
        self._srv = None

    def injected(self) -> int:
        return sum(f.injected for f in self.faults)

    def _kind(self, command: str, path: str) -> str:
        from urllib.parse import urlsplit

        parts = urlsplit(path)
        if command == "GET" and (parts.path.strip("/").count("/") == 0 or "list-type" in parts.query):
            return "LIST"
        return command

    def __enter__(self) -> FaultProxy:
        import http.client
        import http.server
        import threading
        from urllib.parse import urlsplit

        proxy = self
        parts = urlsplit(self.upstream)
        self.host, self.port = parts.hostname, parts.port
        lock = threading.Lock()

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                kind = proxy._kind(self.command, self.path)
                action = None
                with lock:
                    proxy.requests.append((kind, urlsplit(self.path).path))
                    n = proxy.counts[kind] = proxy.counts.get(kind, 0) + 1
                    for fault in proxy.faults:
                        if fault.path:
                            if fault.kind != kind or fault.path not in urlsplit(self.path).path:
                                continue
                            fault.seen += 1
                        if fault.kind == kind and (fault.seen if fault.path else n) % fault.every == 0:
                            if fault.limit is None or fault.injected < fault.limit:
                                fault.injected += 1
                                action = fault
                                break
                if action is not None and action.mode == "reset":
                    proxy.seen.append((kind, "reset"))
                    self.close_connection = True
                    import socket

                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if action is not None and action.mode == "status":
                    proxy.seen.append((kind, action.status))
                    payload = f"<Error><Code>{action.code}</Code><Message>injected</Message></Error>".encode()
                    self.send_response(action.status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload) if self.command != "HEAD" else 0))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                    return
                if action is not None and action.mode == "stall":
                    proxy.seen.append((kind, "stall"))
                    time.sleep(action.seconds)
                # forwarded as is with http.client (urllib would add a form Content-Type and drop bodies)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "expect", "connection")}
                upstream = http.client.HTTPConnection(proxy.host, proxy.port, timeout=30)
                try:
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    resp = upstream.getresponse()
                    code, rheaders, data = resp.status, resp.headers, resp.read()
                finally:
                    upstream.close()
                proxy.seen.append((kind, code))
                try:
                    self.send_response(code)
                    for k, v in rheaders.items():
                        if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                            self.send_header(k, v)
                    self.send_header(
                        "Content-Length",
                        str(len(data)) if self.command != "HEAD" else rheaders.get("Content-Length", "0"),
                    )
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                except OSError:  # the client gave up (a stall past its timeout)
                    self.close_connection = True

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

            def log_message(self, *args):
                pass

        self._srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._srv.daemon_threads = True
        threading.Thread(target=self._srv.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._srv.server_address[1]}"
        return self

    def __exit__(self, *exc) -> None:
        self._srv.shutdown()
        self._srv.server_close()

    def conn_uri(self) -> str:
        from urllib.parse import quote

        return "aws://testing:testing@/?region_name=us-east-1&endpoint_url=" + quote(self.url, safe="")


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
    headers: list = field(default_factory=list)  # each request's headers, same order

    def wait_for(self, match, timeout: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = next((body for body in list(self.received) if match(body)), None)
            if found is not None:
                return found
            time.sleep(0.5)
        raise TimeoutError(f"no matching webhook call in {timeout:.0f}s; received {self.received}")


@contextlib.contextmanager
def run_webhook_receiver(status: int = 204) -> Iterator[WebhookReceiver]:
    """An HTTP server on loopback that records the JSON bodies POSTed to it (a stand-in for Slack/Teams)
    and answers each with ``status``."""
    import http.server
    import json
    import threading

    received: list[dict] = []
    headers: list[dict] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            headers.append(dict(self.headers))
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield WebhookReceiver(f"http://127.0.0.1:{srv.server_address[1]}/hook", received, headers)
    finally:
        srv.shutdown()
        srv.server_close()
