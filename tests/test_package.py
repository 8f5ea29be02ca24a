"""The distribution: a wheel built from this tree works outside it (console script, shipped data,
Airflow's provider and plugin entry points), and the installed package is what Airflow lists."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    import shutil

    out, src = tmp_path_factory.mktemp("dist"), tmp_path_factory.mktemp("src")
    # build from a copy of what the sdist holds: setuptools writes build/ and *.egg-info next to it
    shutil.copy(ROOT / "pyproject.toml", src)
    shutil.copy(ROOT / "README.md", src)
    shutil.copytree(ROOT / "plugins", src / "plugins", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(out), str(src)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (found,) = out.glob("airflow_matting-*.whl")
    return found


def test_the_wheel_carries_the_package_its_data_and_entry_points(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        entry_points = zf.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    for data in ("models.json", "idphoto_specs.yaml", "scenarios.yaml"):
        assert f"matting/data/{data}" in names
    assert {"matting/plugin.py", "matting/results/app.py", "matting/operators/matting.py"} <= names
    templates = {
        p.name for p in (Path(__file__).resolve().parents[1] / "plugins/matting/results/templates").glob("*.html")
    }
    assert templates and {f"matting/results/templates/{t}" for t in templates} <= names  # the results pages render
    assert not [n for n in names if n.startswith(("tests/", "dags/")) or n.endswith((".onnx", ".tflite"))]
    assert "matting = matting.cli:main" in entry_points
    assert "provider_info = matting.get_provider_info:get_provider_info" in entry_points
    assert "matting = matting.plugin:MattingPlugin" in entry_points


def test_installed_from_the_wheel_it_runs_without_this_checkout(wheel, tmp_path, model_store):
    """pip install into a fresh target (no PYTHONPATH=plugins, run from elsewhere): the `matting`
    command, the shipped catalogues and the provider info all come from the installed copy."""
    target = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(target), str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(target)
    env["AIRFLOW__MATTING__MODEL_DIR"] = str(model_store.model_dir)
    probe = (
        "import json, matting, importlib.metadata as md\n"
        "from matting.idphoto.specs import load_specs\n"
        "from matting.engine.scenarios import load_scenarios\n"
        "from matting.engine.models import ModelStore\n"
        "ep = md.entry_points(group='apache_airflow_provider', name='provider_info')\n"
        "info = [e for e in ep if e.dist.metadata['Name'] == 'airflow-matting'][0].load()()\n"
        "print(json.dumps({'file': matting.__file__, 'specs': len(load_specs()), 'scenarios': len(load_scenarios()),\n"
        "  'u2netp': ModelStore().status('u2netp'), 'info': info}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["file"].startswith(str(target)), got["file"]
    assert got["specs"] >= 10 and got["scenarios"] >= 3 and got["u2netp"] == "ready"
    assert got["info"]["package-name"] == "airflow-matting"

    import jsonschema
    from airflow.providers_manager import ProvidersManager  # noqa: F401 - the schema Airflow validates with

    schema = json.loads((Path(sys.modules["airflow"].__file__).parent / "provider_info.schema.json").read_text())
    jsonschema.validate(got["info"], schema)

    cli = subprocess.run(
        [str(target / "bin" / "matting"), "models", "list"], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert cli.returncode == 0, cli.stderr[-2000:]
    assert "u2netp" in cli.stdout and str(model_store.model_dir) in cli.stdout


def test_plain_pip_install_of_the_wheel_makes_id_photos(wheel, tmp_path, model_store):
    """`pip install` of the wheel into a fresh venv, no side installs and no --no-deps (issue #20):
    face detection, mesh, iris and palms all run on the package's own dependencies. It makes an ID
    photo that passes and refuses a photo of two people for that reason."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    proc = subprocess.run(
        [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "-c", str(ROOT / "constraints.txt")]
        + [str(wheel)],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    listed = subprocess.run([python, "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True).stdout
    names = {line.split("==")[0].lower() for line in listed.splitlines()}
    assert "airflow-matting" in names and "mtcnn-runtime" not in names and "mediapipe" not in names
    assert "opencv-python" not in names  # only the headless OpenCV

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["AIRFLOW__MATTING__MODEL_DIR"] = str(model_store.model_dir)
    samples = ROOT / "include" / "samples"
    out = tmp_path / "out"
    cmd = [str(venv / "bin" / "matting"), "idphoto", str(samples / "astronaut.jpg"), "-o", str(out), "--spec"]
    made = subprocess.run(cmd + ["us-passport"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert made.returncode == 0, made.stderr[-3000:]
    report = json.loads((out / "astronaut.report.json").read_text())
    assert report["passed"] and report["verdict"] == "pass", report["reasons"]
    assert (out / "astronaut.jpg").stat().st_size > 10_000

    two = subprocess.run(
        [str(venv / "bin" / "matting"), "idphoto", str(ROOT / "tests" / "data" / "two_people.jpg"), "-o", str(out)]
        + ["--spec", "us-passport"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert two.returncode == 1, two.stderr[-3000:]
    refused = json.loads((out / "review" / "two_people.report.json").read_text())
    assert refused["rejected"] == "multiple_faces" and "2 prominent faces" in refused["reasons"][0], refused


def _json_table(stdout: str) -> list:
    """The JSON line of an `airflow ... -o json` command (log lines may come before it)."""
    return json.loads(next(line for line in reversed(stdout.splitlines()) if line.startswith("[")))


def test_airflow_lists_the_installed_provider_and_plugin(airflow_db):
    """The venv holds the package installed (editable, by `make venv`): Airflow's own CLI shows it."""
    airflow = str(Path(sys.executable).parent / "airflow")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    providers = subprocess.run(
        [airflow, "providers", "get", "airflow-matting", "-o", "json"], capture_output=True, text=True, env=env
    )
    assert providers.returncode == 0, providers.stdout[-2000:] + providers.stderr[-2000:]
    listed = _json_table(providers.stdout)
    import matting

    assert listed[0]["Version"] == matting.__version__
    plugins = subprocess.run([airflow, "plugins", "-o", "json"], capture_output=True, text=True, env=env)
    assert plugins.returncode == 0, plugins.stderr[-2000:]
    found = _json_table(plugins.stdout)
    mine = [p for p in found if p["name"] == "matting"]
    assert len(mine) == 1, found  # once: the entry point, not again from the plugins folder
    assert "matting.results.links.ResultsLink" in json.dumps(mine[0])


def test_the_drop_in_layout_registers_the_plugin_only_when_not_installed(monkeypatch):
    """plugins/matting_plugin.py is what Airflow's plugin loader finds in the image (package not
    pip-installed); installed, the entry point registers the plugin and the file stays empty."""
    import importlib.metadata
    import importlib.util

    def load():
        spec = importlib.util.spec_from_file_location("matting_plugin_probe", ROOT / "plugins" / "matting_plugin.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    assert not hasattr(load(), "MattingPlugin")  # this venv has the package installed
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **kw: [])
    assert load().MattingPlugin.name == "matting"
