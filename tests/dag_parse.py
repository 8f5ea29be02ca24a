"""What parsing a shipped DAG file costs, the way Airflow's dag-processor pays it: each file run in a fresh
interpreter with Airflow already imported (the processor has it), timing the file alone and listing the
modules it loaded on top.

    python tests/dag_parse.py [--runs 7]       # per DAG file: median and range of the parse time, heavy modules

``HEAVY`` are the imports a parse must not pay for (they belong in ``execute``): the ONNX Runtime, OpenCV,
LiteRT, NumPy-heavy and boto3 stacks. ``tests/integration/test_dag_imports.py`` fails when one is loaded.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DAG_FILES = sorted((ROOT / "dags").glob("*.py"))
HEAVY = ("onnxruntime", "cv2", "ai_edge_litert", "numpy", "PIL", "scipy", "skimage", "boto3", "botocore", "paramiko")

# Airflow and the SDK's DAG machinery first (the dag-processor has them), then the file alone.
_PROBE = r"""
import json, runpy, sys, time
import airflow.sdk, airflow.sdk.definitions.dag  # noqa: F401
before = set(sys.modules)
t0 = time.perf_counter()
runpy.run_path(sys.argv[1], run_name="dag_parse_probe")
ms = (time.perf_counter() - t0) * 1000
loaded = sorted(m for m in set(sys.modules) - before)
print(json.dumps({"ms": ms, "loaded": loaded}))
"""


def environment(home: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        AIRFLOW_HOME=home,
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "dags"),
        AIRFLOW__CORE__PLUGINS_FOLDER=str(ROOT / "plugins"),
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT / "plugins"), env.get("PYTHONPATH", "")) if p),
    )
    return env


def parse_once(dag_file: Path, env: dict[str, str]) -> dict:
    """One parse of ``dag_file`` in a fresh interpreter: {"ms": float, "loaded": [module names]}."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(dag_file)], env=env, capture_output=True, text=True, timeout=300
    )
    if done.returncode != 0:
        raise RuntimeError(f"parsing {dag_file.name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def heavy(loaded: list[str]) -> list[str]:
    """The heavy top-level packages among ``loaded`` module names."""
    return sorted({m.split(".")[0] for m in loaded if m.split(".")[0] in HEAVY})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        env = environment(home)
        parse_once(DAG_FILES[0], env)  # the first run writes airflow.cfg and the bytecode caches
        print(f"{'DAG file':24} {'median ms':>10} {'range ms':>16} {'modules':>8}  heavy imports")
        for dag_file in DAG_FILES:
            runs = [parse_once(dag_file, env) for _ in range(args.runs)]
            times = [r["ms"] for r in runs]
            found = heavy(runs[-1]["loaded"])
            print(
                f"{dag_file.name:24} {statistics.median(times):10.0f} {min(times):7.0f} - {max(times):6.0f} "
                f"{len(runs[-1]['loaded']):8d}  {', '.join(found) or 'none'}"
            )


if __name__ == "__main__":
    main()
