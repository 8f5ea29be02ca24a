"""DAG files parse light: Airflow's dag-processor re-parses every file every 30 s, so a shipped DAG
must not load ONNX Runtime, OpenCV, LiteRT, NumPy, Pillow, boto3 or paramiko when it is parsed (they
belong in the tasks). Each file runs in a fresh interpreter with Airflow already imported, as the
dag-processor has it (``tests/dag_parse.py``, which also prints the parse times for the docs)."""

from __future__ import annotations

import pytest
from dag_parse import DAG_FILES, HEAVY, environment, heavy, parse_once


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=[p.name for p in DAG_FILES])
def test_a_shipped_dag_parses_without_heavy_imports(dag_file, tmp_path):
    parsed = parse_once(dag_file, environment(str(tmp_path)))
    assert any(m.startswith("matting") for m in parsed["loaded"])  # the probe did load the DAG's own imports
    assert heavy(parsed["loaded"]) == [], f"{dag_file.name} imports {heavy(parsed['loaded'])} at parse"


def test_the_probe_sees_a_heavy_import(tmp_path):
    """The check itself: a DAG file that imports the engine's core is caught."""
    bad = tmp_path / "bad_dag.py"
    bad.write_text("from matting.engine import Engine\nEngine  # the engine's core: ONNX Runtime and OpenCV\n")
    parsed = parse_once(bad, environment(str(tmp_path / "home")))
    assert {"onnxruntime", "cv2", "numpy"} <= set(heavy(parsed["loaded"])) <= set(HEAVY)
