"""The ISNet graph rewrite (``resize-by-scale``): at the exported 1024 px the rewritten network gives the
original's output; at 768 px (what the manifest feeds it) it runs and finds the same subject."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from conftest import SAMPLES
from matting.engine import Engine, RuntimeOptions
from matting.engine.graphs import rewrite
from matting.engine.models import ModelSpec
from matting.errors import ConfigError
from PIL import Image


@pytest.fixture(scope="module")
def isnet_file(model_store):
    if model_store.status("isnet-medium") != "ready":
        model_store.fetch("isnet-medium")
    return model_store.verified_path("isnet-medium")


def _run(model, size: int, rgb: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    x = np.asarray(Image.fromarray(rgb).resize((size, size)), np.float32) / 255.0 - 0.5
    return session.run(None, {session.get_inputs()[0].name: x.transpose(2, 0, 1)[None]})[0][0, 0]


def test_the_rewritten_graph_equals_the_original_at_1024_and_runs_at_768(isnet_file):
    rgb = np.asarray(Image.open(SAMPLES / "coffee.jpg").convert("RGB"))
    original = _run(str(isnet_file), 1024, rgb)
    rewritten = rewrite("resize-by-scale", isnet_file.read_bytes())
    assert np.abs(_run(rewritten, 1024, rgb) - original).max() < 2e-3  # fp16 weights: same network
    with pytest.raises(Exception):  # noqa: B017 - what the rewrite is for: the original refuses 768
        _run(str(isnet_file), 768, rgb)
    small = _run(rewritten, 768, rgb)
    assert small.shape == (768, 768)
    up = np.asarray(Image.fromarray((small * 255).astype(np.uint8)).resize((1024, 1024))) >= 128
    iou = (up & (original >= 0.5)).sum() / (up | (original >= 0.5)).sum()
    assert iou > 0.9, iou


def test_the_engine_feeds_isnet_at_768(model_store, isnet_file):
    engine = Engine(model="isnet-medium", store=model_store, runtime=RuntimeOptions.from_env(providers="cpu"))
    assert engine.spec.input_size == (768, 768) and engine.spec.graph == "resize-by-scale"
    rgb = np.asarray(Image.open(SAMPLES / "coffee.jpg").convert("RGB"))
    mask = engine.predict_mask(rgb)
    assert mask.shape == rgb.shape[:2] and mask[rgb.shape[0] // 2, rgb.shape[1] // 2] > 200  # the cup
    assert mask[5, 5] < 30  # the corner: background


@pytest.mark.parametrize(
    ("change", "error"),
    [({"graph": "no-such-rewrite"}, "graph must be one of"), ({"input_size": [700, 700]}, "multiples of 64")],
)
def test_a_rewrite_needs_a_known_name_and_sizes_it_can_take(change, error):
    entry = {
        "name": "x",
        "file": "x.onnx",
        "input_size": [768, 768],
        "mean": [0.5] * 3,
        "std": [1.0] * 3,
        "graph": "resize-by-scale",
    }
    with pytest.raises(ConfigError, match=error):
        ModelSpec.from_dict({**entry, **change})
