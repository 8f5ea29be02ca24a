"""Background-removal engine (pure core: no Airflow import).

``from matting.engine import Engine`` works as always, but a name is imported from its module on first
use (PEP 562): importing ``matting.engine.colours`` or ``matting.engine.models`` alone (a DAG file's
parse, the ID-photo presets) does not load ONNX Runtime or OpenCV."""

from __future__ import annotations

from typing import TYPE_CHECKING

from matting import lazy

_EXPORTS = {
    "Engine": "core",
    "ImageResult": "core",
    "Matte": "core",
    "OutputOptions": "core",
    "file_sources": "core",
    "ModelSpec": "models",
    "ModelStore": "models",
    "Scenario": "scenarios",
    "get_scenario": "scenarios",
    "load_scenarios": "scenarios",
    "RuntimeOptions": "session",
}
__all__ = [
    "Engine",
    "ImageResult",
    "Matte",
    "ModelSpec",
    "ModelStore",
    "OutputOptions",
    "RuntimeOptions",
    "Scenario",
    "file_sources",
    "get_scenario",
    "load_scenarios",
]

if TYPE_CHECKING:
    from matting.engine.core import Engine, ImageResult, Matte, OutputOptions, file_sources
    from matting.engine.models import ModelSpec, ModelStore
    from matting.engine.scenarios import Scenario, get_scenario, load_scenarios
    from matting.engine.session import RuntimeOptions


__getattr__, __dir__ = lazy.exports(__name__, _EXPORTS, globals())
