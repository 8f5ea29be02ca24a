"""The [matting] section as Airflow itself sees it: the provider's declared config, the ``airflow
config`` CLI, and a value from ``airflow.cfg`` reaching the code through Airflow's ``conf``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
from matting import settings
from matting.get_provider_info import get_provider_info

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW = Path(sys.executable).parent / "airflow"


def _env(home: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW") and "MATTING" not in k}
    return {**env, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False", **extra}


def test_provider_info_validates_against_airflows_schema():
    import airflow

    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    info = get_provider_info()
    jsonschema.validate(info, schema)
    assert info["config"] == settings.provider_config()


def test_airflow_config_list_shows_every_option(tmp_path):
    proc = subprocess.run(
        [
            str(AIRFLOW),
            "config",
            "list",
            "--section",
            "matting",
            "--include-descriptions",
            "--include-sources",
            "--show-values",
        ],
        env=_env(tmp_path, AIRFLOW__MATTING__IO_TIMEOUT_S="7"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    for option in settings.OPTIONS:
        assert f"{option.key} = " in out, option.key
        assert option.description[:60] in out, option.key
    block = out.split("io_timeout_s = 7", 1)[0].rsplit("\n\n", 1)[-1]
    assert "Source: env var" in block


def test_a_value_in_airflow_cfg_reaches_the_code_and_beats_the_old_name(tmp_path):
    (tmp_path / "airflow.cfg").write_text("[matting]\nio_timeout_s = 9\nqueue = gpu\n")
    code = (
        "import warnings; warnings.simplefilter('error')\n"
        "import matting.airflow_conf\n"
        "from matting import settings\n"
        "from matting.flows.defaults import matting_task_args\n"
        "print(settings.value('io_timeout_s'), matting_task_args()['queue'], settings.value('io_attempts'))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env=_env(tmp_path, PYTHONPATH=str(ROOT / "plugins"), MATTING_IO_TIMEOUT_S="3"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["9.0", "gpu", "3"]
    get = subprocess.run(
        [str(AIRFLOW), "config", "get-value", "matting", "io_timeout_s"],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert get.stdout.strip() == "9", get.stderr[-2000:]
