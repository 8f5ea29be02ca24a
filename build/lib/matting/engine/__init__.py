"""Background-removal engine (pure core: no Airflow import)."""

from matting.engine.core import Engine, ImageResult, Matte, OutputOptions, file_sources
from matting.engine.models import ModelSpec, ModelStore
from matting.engine.scenarios import Scenario, get_scenario, load_scenarios
from matting.engine.session import RuntimeOptions

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
