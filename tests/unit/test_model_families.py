"""Every pre/post-processing family of the manifest runs end to end before anyone fetches its weights.

For each family (u2net 320, isnet 1024 (rembg's, and IMG.LY's: x/255, alpha kept), birefnet 1024 + sigmoid,
bria 1024, MODNet dynamic) a tiny ONNX graph with the family's input/output signature is built here: its
output is the normalised red channel of its input (so what comes out shows what went in). The shipped
manifest entry, with only the file and checksum swapped, drives the engine through decode -> size ->
normalise -> infer -> activation -> normalise -> resize back -> encode. Expected values are computed here
from the photo, not read back from the engine."""

from __future__ import annotations

import dataclasses
import io
import json

import numpy as np
import onnx
import pytest
from matting.engine import Engine, OutputOptions
from matting.engine.models import DEFAULT_MANIFEST, ModelSpec, ModelStore, Sizing, sha256_of
from matting.errors import ConfigError
from onnx import TensorProto, helper
from PIL import Image

# photo: red rises left to right from 40 to 200, green and blue constant
W0, H0 = 1000, 600
R_LO, R_HI, G, B = 40.0, 200.0, 90.0, 30.0


def _photo() -> np.ndarray:
    red = np.linspace(R_LO, R_HI, W0)
    rgb = np.empty((H0, W0, 3), np.uint8)
    rgb[..., 0] = np.round(red)[None, :]
    rgb[..., 1], rgb[..., 2] = G, B
    return rgb


def _graph(input_dims: list, affine: tuple[float, float] | None) -> bytes:
    """input (N,3,H,W) -> output (N,1,H,W) = channel 0 [* a + b]."""
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, input_dims)
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, [input_dims[0], 1, input_dims[2], input_dims[3]])
    inits = [
        helper.make_tensor("starts", TensorProto.INT64, [1], [0]),
        helper.make_tensor("ends", TensorProto.INT64, [1], [1]),
        helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
    ]
    nodes = [helper.make_node("Slice", ["input", "starts", "ends", "axes"], ["red" if affine else "output"])]
    if affine:
        inits += [
            helper.make_tensor("a", TensorProto.FLOAT, [], [affine[0]]),
            helper.make_tensor("b", TensorProto.FLOAT, [], [affine[1]]),
        ]
        nodes += [
            helper.make_node("Mul", ["red", "a"], ["scaled"]),
            helper.make_node("Add", ["scaled", "b"], ["output"]),
        ]
    model = helper.make_model(
        helper.make_graph(nodes, "family", [x], [y], inits), opset_imports=[helper.make_opsetid("", 17)]
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _store_with(tmp_path, name: str, graph: bytes) -> ModelStore:
    """The shipped manifest entry of ``name``, pointing at the tiny graph (checksum verified as usual)."""
    entry = next(m for m in json.loads(DEFAULT_MANIFEST.read_text())["models"] if m["name"] == name)
    (tmp_path / entry["file"]).write_bytes(graph)
    entry = {**entry, "sha256": sha256_of(tmp_path / entry["file"]), "md5": None}
    extra = tmp_path / "extra.json"
    extra.write_text(json.dumps({"models": [entry]}))
    return ModelStore(model_dir=tmp_path, extra_manifests=[extra])


def _mask_end_to_end(engine: Engine, rgb: np.ndarray) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    result, data = engine.process_bytes(buf.getvalue(), "gradient.png", OutputOptions.build("mask"))
    assert result.ok, result.error
    return np.asarray(Image.open(io.BytesIO(data)))


FIXED = [
    # name, network size, sigmoid on the output
    ("u2netp", (320, 320), False),
    ("isnet-general-use", (1024, 1024), False),
    ("birefnet-general", (1024, 1024), True),
    ("bria-rmbg", (1024, 1024), False),
]


@pytest.mark.parametrize(("name", "size", "sigmoid"), FIXED, ids=[f[0] for f in FIXED])
def test_fixed_size_families(tmp_path, name, size, sigmoid):
    store = _store_with(tmp_path, name, _graph([1, 3, size[1], size[0]], None))
    engine = Engine(model=name, store=store)
    spec = engine.spec
    rgb = _photo()

    tensor = engine.preprocess(rgb)
    assert tensor.shape == (1, 3, size[1], size[0]) and tensor.dtype == np.float32
    # rembg's normalize(): / the brightest value (200 here), then (x - mean) / std
    peak = R_HI
    red = np.linspace(R_LO, R_HI, W0)
    centres = (np.arange(size[0]) + 0.5) * W0 / size[0] - 0.5
    want_red = (np.interp(centres, np.arange(W0), red) / peak - spec.mean[0]) / spec.std[0]
    np.testing.assert_allclose(tensor[0, 0, size[1] // 2], want_red, atol=0.03)
    np.testing.assert_allclose(tensor[0, 1], (G / peak - spec.mean[1]) / spec.std[1], atol=1e-5)
    np.testing.assert_allclose(tensor[0, 2], (B / peak - spec.mean[2]) / spec.std[2], atol=1e-5)

    mask = _mask_end_to_end(engine, rgb).astype(np.float64)
    assert mask.shape == (H0, W0)
    z = (red / peak - spec.mean[0]) / spec.std[0]
    act = 1.0 / (1.0 + np.exp(-z)) if sigmoid else z
    want = (act - act.min()) / (act.max() - act.min()) * 255.0  # rembg's min-max stretch
    np.testing.assert_allclose(mask[H0 // 2, 4:-4], want[4:-4], atol=4.0)
    if sigmoid:  # a sigmoid bends the ramp: the middle sits away from a straight line
        linear = (z - z.min()) / (z.max() - z.min()) * 255.0
        assert np.abs(mask[H0 // 2] - linear).max() > 10


def test_modnet_family_dynamic_input(tmp_path):
    """MODNet: dynamic H/W sized by the manifest's rule, (x - 127.5) / 127.5, alpha out as is (no
    min-max stretch), resized back to the photo."""
    store = _store_with(tmp_path, "modnet", _graph(["batch", 3, "height", "width"], (0.5, 0.5)))
    engine = Engine(model="modnet", store=store)
    rgb = _photo()

    tensor = engine.preprocess(rgb)
    assert tensor.shape == (1, 3, 512, 832)  # short side 600 -> 512, long 853 -> floored to 832
    np.testing.assert_allclose(tensor[0, 1], (G - 127.5) / 127.5, atol=1e-5)
    np.testing.assert_allclose(tensor[0, 0, :, 0], (R_LO - 127.5) / 127.5, atol=0.02)

    mask = _mask_end_to_end(engine, rgb).astype(np.float64)
    assert mask.shape == (H0, W0)
    # output = red / 255: the mask is the red channel itself, 40..200, not stretched to 0..255
    np.testing.assert_allclose(mask[H0 // 2, 4:-4], np.linspace(R_LO, R_HI, W0)[4:-4], atol=2.0)

    # another aspect ratio goes through the same session (no fixed shape anywhere)
    tall = np.ascontiguousarray(np.transpose(rgb, (1, 0, 2)))
    assert engine.preprocess(tall).shape == (1, 3, 832, 512)
    assert _mask_end_to_end(engine, tall).shape == (W0, H0)


@pytest.mark.parametrize("name", ["isnet-medium-1024", "isnet-small"])
def test_imgly_isnet_family(tmp_path, name):
    """IMG.LY's ISNet (npm package): fixed 1024x1024, x / 255 - 0.5 (not rembg's division by the brightest
    value), and the output is a probability (sigmoid inside) kept as the alpha: no min-max stretch, so a
    photo with nothing to cut out stays empty instead of having its faintest guess stretched to opaque.
    (``isnet-medium``, the same file fed 768 px through a graph rewrite, is tested on the real weights in
    test_graphs.py: a stand-in graph has no Resize to rewrite.)"""
    store = _store_with(tmp_path, name, _graph([1, 3, 1024, 1024], (1.0, 0.5)))
    engine = Engine(model=name, store=store)
    rgb = _photo()

    tensor = engine.preprocess(rgb)
    assert tensor.shape == (1, 3, 1024, 1024)
    np.testing.assert_allclose(tensor[0, 1], G / 255.0 - 0.5, atol=1e-5)
    np.testing.assert_allclose(tensor[0, 2], B / 255.0 - 0.5, atol=1e-5)
    np.testing.assert_allclose(tensor[0, 0, :, 0], R_LO / 255.0 - 0.5, atol=0.01)

    mask = _mask_end_to_end(engine, rgb).astype(np.float64)
    assert mask.shape == (H0, W0)
    # output = red / 255: the mask is the red channel itself, 40..200, not stretched to 0..255
    np.testing.assert_allclose(mask[H0 // 2, 4:-4], np.linspace(R_LO, R_HI, W0)[4:-4], atol=2.0)


@pytest.mark.parametrize(
    ("photo", "network"),
    [
        ((1000, 600), (832, 512)),  # short side over 512: scaled down to 512
        ((400, 300), (672, 512)),  # long side under 512: scaled up, short side 512
        ((600, 400), (576, 384)),  # in between: native size, floored to multiples of 32
        ((3000, 500), (1024, 160)),  # a banner: long side bounded to 1024
        ((4000, 3000), (672, 512)),  # a 12 MP photo
        ((20, 20), (512, 512)),
    ],
)
def test_sizing_rule(photo, network):
    assert Sizing(short_side=512, multiple=32, max_long_side=1024).size_for(*photo) == network


def test_manifest_rejects_what_the_engine_cannot_run():
    base = {"name": "x", "file": "x.onnx", "mean": [0, 0, 0], "std": [1, 1, 1]}
    with pytest.raises(ConfigError, match="sizing"):
        ModelSpec.from_dict({**base, "input_size": "dynamic"})
    with pytest.raises(ConfigError, match="input_scale"):
        ModelSpec.from_dict({**base, "input_size": [8, 8], "input_scale": "1023"})
    with pytest.raises(ConfigError, match="normalize"):
        ModelSpec.from_dict({**base, "input_size": [8, 8], "output": {"normalize": "softmax"}})
    spec = ModelSpec.from_dict({**base, "input_size": [320, 320]})
    assert dataclasses.replace(spec).network_size(3000, 2000) == (320, 320)


def test_flip_averages_with_the_mirrored_prediction_put_back_in_place(tmp_path):
    """``flip: true`` runs the mirrored photo too and mirrors its prediction back before averaging. The
    tiny network is pointwise, so a correct flip changes nothing; a prediction left mirrored would
    flatten the ramp to its middle value (120)."""
    from matting.engine.scenarios import Scenario

    store = _store_with(tmp_path, "modnet", _graph(["batch", 3, "height", "width"], (0.5, 0.5)))
    rgb = _photo()
    plain = Engine(model="modnet", store=store).predict_mask(rgb).astype(np.float64)
    flipped = Engine(model="modnet", store=store, scenario=Scenario(name="t", flip=True)).predict_mask(rgb)
    np.testing.assert_allclose(flipped.astype(np.float64), plain, atol=1.0)
    assert plain[H0 // 2, 10] < 60 and plain[H0 // 2, -10] > 180
