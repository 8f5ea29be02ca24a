"""A real Airflow on this machine for the live end-to-end tests: the four components a deployment
runs (api-server, scheduler, dag-processor, triggerer) as separate processes on a throwaway SQLite
home, the project's dags/ and plugins/, and a REST client that logs in the way the UI does
(SimpleAuthManager user + password -> JWT). The executor is the LocalExecutor, or the
CeleryExecutor with one ``airflow celery worker`` per queue in ``workers``.

Everything binds 127.0.0.1; ``stop()`` ends every process group it started.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests
from servers import free_port

ROOT = Path(__file__).resolve().parents[1]
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
# settings a test run must not inherit from the pytest process (conftest points Airflow at the repo
# root and turns on unit-test mode for dag.test())
_DROP = ("AIRFLOW__CORE__UNIT_TEST_MODE", "AIRFLOW__CORE__DAGS_FOLDER", "AIRFLOW_HOME")


# imported by every Airflow process from the test's home (on their PYTHONPATH)
_DB_ARGS_MODULE = "live_airflow_sqlite"
SQLITE_BUSY_TIMEOUT_S = 60


class ApiError(RuntimeError):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"HTTP {status}: {text[:500]}")
        self.status = status


@dataclass
class LiveAirflow:
    home: Path
    port: int = field(default_factory=free_port)
    user: str = "admin"
    password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    extra_env: dict = field(default_factory=dict)
    viewers: dict = field(default_factory=dict)  # more users (role viewer): name -> password
    roles: dict = field(default_factory=dict)  # another role than viewer for some of them: name -> role
    workers: dict = field(default_factory=dict)  # Celery: worker name -> queue it serves
    procs: dict = field(default_factory=dict)
    token: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if k not in _DROP}
        bin_dir = str(Path(sys.executable).parent)
        env.update(
            {
                "PATH": bin_dir + os.pathsep + env.get("PATH", ""),
                # this checkout's package first, also where the venv has another checkout installed editable
                "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT / "plugins"), env.get("PYTHONPATH", "")) if p),
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": "4",
                "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__FERNET_KEY": "",
                # SQLite's default busy timeout is 5 s: on two busy cores the scheduler can hold the write
                # lock longer, and a REST write then fails with HTTP 500 "Database error" (seen in CI)
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS": f"{_DB_ARGS_MODULE}.CONNECT_ARGS",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS_ASYNC": f"{_DB_ARGS_MODULE}.CONNECT_ARGS_ASYNC",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(
                    [f"{self.user}:admin", *(f"{name}:{self.roles.get(name, 'viewer')}" for name in self.viewers)]
                ),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.home / "passwords.json"),
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__BASE_URL": self.url,
                "AIRFLOW__API_AUTH__JWT_SECRET": self.jwt_secret,
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
                "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            }
        )
        env.update(self.extra_env)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (env["PYTHONPATH"], str(self.home)) if p)  # the DB args
        return env

    @property
    def jwt_secret(self) -> str:
        path = self.home / "jwt_secret"
        if not path.exists():
            path.write_text(secrets.token_urlsafe(32))
        return path.read_text()

    # ---- processes -------------------------------------------------------------------------
    def __enter__(self) -> LiveAirflow:
        """Started, and stopped on exit even when the start itself fails half-way."""
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self, timeout: float = 240.0) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "passwords.json").write_text(json.dumps({self.user: self.password, **self.viewers}))
        (self.home / f"{_DB_ARGS_MODULE}.py").write_text(
            f"CONNECT_ARGS = {{'timeout': {SQLITE_BUSY_TIMEOUT_S}}}\n"
            f"CONNECT_ARGS_ASYNC = {{'timeout': {SQLITE_BUSY_TIMEOUT_S}}}  # its own dict: engines may add to theirs\n"
        )
        airflow = str(Path(sys.executable).parent / "airflow")
        migrate = subprocess.run([airflow, "db", "migrate"], env=self.env, capture_output=True, text=True, timeout=300)
        if migrate.returncode:
            raise RuntimeError("airflow db migrate failed:\n" + migrate.stdout[-2000:] + migrate.stderr[-2000:])
        commands = {name: [airflow, name] for name in COMPONENTS}
        for name, queue in self.workers.items():
            # one node name per worker; no log-serving port (two would clash, and the api-server
            # reads task logs from the shared home)
            commands[name] = [airflow, "celery", "worker", "--queues", queue, "--concurrency", "1"]
            commands[name] += ["--celery-hostname", f"{name}@%h", "--skip-serve-logs"]
        for name, command in commands.items():
            log = open(self.home / f"{name}.log", "ab")  # noqa: SIM115 - owned by the process
            self.procs[name] = subprocess.Popen(
                command, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.wait_healthy(timeout)
        for name in self.workers:
            self.wait_for(f"Celery worker {name}", lambda n=name: " ready." in self.log_of(n), timeout=120)
        self.token = self.login(self.user, self.password)

    def wait_healthy(self, timeout: float) -> dict:
        """Until /api/v2/monitor/health reports the DB, scheduler, triggerer and dag-processor healthy."""
        deadline = time.monotonic() + timeout
        last: dict | str = "no answer"
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                last = requests.get(f"{self.url}/api/v2/monitor/health", timeout=5).json()
                parts = ("metadatabase", "scheduler", "triggerer", "dag_processor")
                if all((last.get(p) or {}).get("status") == "healthy" for p in parts):
                    return last
            except (requests.RequestException, ValueError) as exc:
                last = repr(exc)
            time.sleep(2)
        raise TimeoutError(f"Airflow not healthy after {timeout:.0f}s: {last}\n{self.logs_tail()}")

    def check_alive(self) -> None:
        dead = {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}
        if dead:
            raise RuntimeError(f"Airflow component(s) exited: {dead}\n{self.logs_tail()}")

    def log_of(self, name: str) -> str:
        path = self.home / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def logs_tail(self, chars: int = 3000) -> str:
        return "\n".join(f"--- {name}.log ---\n{self.log_of(name)[-chars:]}" for name in self.procs)

    def task_logs_tail(self, dag_id: str, chars: int = 4000) -> str:
        files = sorted((self.home / "logs").glob(f"dag_id={dag_id}/**/*.log"))
        return "\n".join(f"--- {p.relative_to(self.home)} ---\n{p.read_text(errors='replace')[-chars:]}" for p in files)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        for proc in self.procs.values():  # task processes the executor forked in the same groups
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.procs.clear()

    # ---- REST API, as the UI calls it ----------------------------------------------------------
    def login(self, user: str, password: str) -> str:
        r = requests.post(f"{self.url}/auth/token", json={"username": user, "password": password}, timeout=30)
        if r.status_code != 201:
            raise ApiError(r.status_code, r.text)
        return r.json()["access_token"]

    def api(self, method: str, path: str, body: dict | None = None, params: dict | None = None) -> dict:
        r = requests.request(
            method,
            f"{self.url}/api/v2/{path.lstrip('/')}",
            json=body,
            params=params,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=SQLITE_BUSY_TIMEOUT_S + 30,  # the server may wait that long for SQLite's write lock
        )
        if r.status_code >= 400:
            raise ApiError(r.status_code, r.text)
        return r.json() if r.content else {}

    def set_variable(self, key: str, value: str) -> None:
        """Create or update a Variable, as Admin > Variables does."""
        try:
            self.api("PATCH", f"variables/{key}", {"key": key, "value": value})
        except ApiError as exc:
            if exc.status != 404:
                raise
            self.api("POST", "variables", {"key": key, "value": value})

    def wait_for(self, what: str, probe, timeout: float, every: float = 2.0):
        """Call ``probe()`` until it returns something truthy; fail with the components' logs."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            value = probe()
            if value:
                return value
            time.sleep(every)
        raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}\n{self.logs_tail()}")

    def wait_for_dag(self, dag_id: str, timeout: float = 120.0) -> dict:
        def parsed():
            try:
                return self.api("GET", f"dags/{dag_id}")
            except ApiError as exc:
                if exc.status == 404:
                    return None
                raise

        return self.wait_for(f"DAG {dag_id} to be parsed", parsed, timeout)

    def unpause_and_get_scheduled_run(self, dag_id: str, timeout: float = 120.0) -> str:
        """Unpause a cron DAG (catchup off): the scheduler creates the latest run; its id."""
        self.wait_for_dag(dag_id)
        self.api("PATCH", f"dags/{dag_id}", {"is_paused": False})

        def first_run():
            runs = self.api("GET", f"dags/{dag_id}/dagRuns")["dag_runs"]
            return runs[0]["dag_run_id"] if runs else None

        return self.wait_for(f"the scheduled run of {dag_id}", first_run, timeout)

    def wait_for_task_state(self, dag_id: str, run_id: str, task_id: str, state: str, timeout: float = 180.0) -> dict:
        path = f"dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"

        def in_state():
            ti = self.api("GET", path)
            return ti if ti["state"] == state else None

        return self.wait_for(f"{dag_id}.{task_id} to be {state}", in_state, timeout)

    def wait_until_parked(self, dag_id: str, run_id: str, task_id: str, timeout: float = 300.0) -> dict:
        """The task waits for a person: awaiting_input, and still the same try 5 s later (Airflow
        3.3.2's LocalExecutor may report a freshly parked task as finished, which retries it: answer
        the retry)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ti = self.wait_for_task_state(dag_id, run_id, task_id, "awaiting_input", timeout=timeout)
            time.sleep(5)
            again = self.api("GET", f"dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")
            if again["state"] == "awaiting_input" and again["try_number"] == ti["try_number"]:
                return again
        raise TimeoutError(f"{dag_id}.{task_id} never stayed parked")

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 300.0) -> str:
        """The run's final state (success or failed); a failed run carries its task logs."""

        def finished():
            state = self.api("GET", f"dags/{dag_id}/dagRuns/{run_id}")["state"]
            return state if state in ("success", "failed") else None

        state = self.wait_for(f"run {dag_id}/{run_id} to finish", finished, timeout, every=3)
        if state != "success":
            raise AssertionError(f"{dag_id} run {run_id} ended {state}\n{self.task_logs_tail(dag_id)}")
        return state
