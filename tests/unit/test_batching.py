"""Several photos per inference (``[matting] infer_batch``; by default 8 on a GPU, 1 on a CPU): the
graphs take a batch (``dynamic-batch``), each photo gets exactly the cut-out it gets alone, a bad photo
or a failed batch costs no other photo its result, and on a GPU the session is built for batches.

No GPU is lent to this project: the batched path itself runs here on the CPU (asked for explicitly),
and what a CUDA/TensorRT build would be handed is checked with the available providers patched, as in
test_session.py."""

from __future__ import annotations

import io

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from conftest import DATA, SAMPLES
from matting.engine import Engine, OutputOptions, RuntimeOptions
from matting.engine import session as sess
from matting.engine.graphs import rewrite
from PIL import Image


def _photos() -> list[tuple[str, bytes]]:
    """Mixed sizes and kinds, a transparent PNG, and a file that is not an image in the middle."""
    astronaut = Image.open(SAMPLES / "astronaut.jpg").convert("RGB")
    small = io.BytesIO()
    astronaut.resize((200, 150)).save(small, "JPEG", quality=90)
    cut = astronaut.convert("RGBA")
    cut.putalpha(Image.linear_gradient("L").resize(cut.size))
    transparent = io.BytesIO()
    cut.save(transparent, "PNG")
    return [
        ("coffee.jpg", (SAMPLES / "coffee.jpg").read_bytes()),
        ("astronaut.jpg", (SAMPLES / "astronaut.jpg").read_bytes()),
        ("broken.jpg", b"\xff\xd8\xff\xe0 this is not a photo"),
        ("small.jpg", small.getvalue()),
        ("transparent.png", transparent.getvalue()),
        ("rocket.jpg", (SAMPLES / "rocket.jpg").read_bytes()),
        ("tilted.jpg", (DATA / "portrait_tilted_8deg.jpg").read_bytes()),
    ]


def _run(engine: Engine, photos) -> tuple[list, dict[str, bytes]]:
    written: dict[str, bytes] = {}

    def sink(name, data, _out):
        written[name] = data
        return name

    sources = [(name, lambda d=data: d) for name, data in photos]
    return list(engine.run_batch(sources, OutputOptions.build("png"), sink=sink)), written


@pytest.mark.parametrize("model", ["u2netp", "isnet-medium"])
def test_the_batch_graph_computes_each_photo_as_alone(model, model_store):
    """The rewritten graph run on three different photos at once gives each photo the output the
    original graph gives it alone (u2netp: fixed 320 px export; ISNet: also resize-by-scale)."""
    spec = model_store.spec(model)
    data = (model_store.model_dir / spec.file).read_bytes()
    single = ort.InferenceSession(rewrite(spec.graph, data) if spec.graph else data, providers=["CPUExecutionProvider"])
    batched = rewrite(f"{spec.graph}+dynamic-batch" if spec.graph else "dynamic-batch", data)
    assert onnx.load_from_string(batched).graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    many = ort.InferenceSession(batched, providers=["CPUExecutionProvider"])
    engine = Engine(model=model, store=model_store, runtime=RuntimeOptions(providers=("CPUExecutionProvider",)))
    tensors = np.concatenate(
        [
            engine.preprocess(np.asarray(Image.open(SAMPLES / f).convert("RGB")))
            for f in ("coffee.jpg", "astronaut.jpg", "rocket.jpg")
        ]
    )
    name = single.get_inputs()[0].name
    alone = np.concatenate([single.run(None, {name: tensors[i : i + 1]})[0][:, :1] for i in range(3)])
    together = many.run(None, {name: tensors})[0][:, :1]
    assert together.shape[0] == 3
    assert np.abs(together - alone).max() < 1e-4


@pytest.mark.parametrize("scenario", ["fast", "auto"])
def test_a_batch_gives_every_photo_the_cut_out_it_gets_alone(scenario, model_store):
    """The whole run (decode, route, batch by network size, refine, encode) at 4 photos per inference
    against 1: the same bytes for every photo, in input order, the same model per photo; the file
    that is not an image fails alone, as content."""
    photos = _photos()
    one = Engine(scenario=scenario, store=model_store, runtime=RuntimeOptions(providers=("CPUExecutionProvider",)))
    four = Engine(
        scenario=scenario,
        store=model_store,
        runtime=RuntimeOptions(providers=("CPUExecutionProvider",), infer_batch=4),
    )
    assert (one.batch_capacity, four.batch_capacity) == (1, 4)
    results_one, out_one = _run(one, photos)
    results_four, out_four = _run(four, photos)
    assert [r.source for r in results_four] == [name for name, _ in photos]
    broken = next(r for r in results_four if r.source == "broken.jpg")
    assert not broken.ok and not broken.retryable and broken.error_type == "corrupt_image", broken
    assert [(r.source, r.ok, r.model) for r in results_four] == [(r.source, r.ok, r.model) for r in results_one]
    assert sorted(out_four) == sorted(out_one) and len(out_four) == 6
    for name in out_one:
        a = np.asarray(Image.open(io.BytesIO(out_one[name])))
        b = np.asarray(Image.open(io.BytesIO(out_four[name])))
        assert a.shape == b.shape and np.abs(a.astype(int) - b.astype(int)).max() <= 1, name
    if scenario == "auto":
        assert {r.model for r in results_four if r.ok} == {"modnet", "isnet-medium"}


def test_a_failed_batch_is_retried_photo_by_photo_and_only_the_failing_photo_fails(model_store, monkeypatch):
    """A batch that fails as a whole (what a GPU out of memory does) is run again one photo at a time;
    a photo whose own inference fails is an infrastructure error for that photo alone (retried by the
    pipeline, never quarantined), the others are written."""
    engine = Engine(
        model="u2netp", store=model_store, runtime=RuntimeOptions(providers=("CPUExecutionProvider",), infer_batch=8)
    )
    real = Engine.infer_many
    seen: list[int] = []

    def flaky(self, tensor):
        seen.append(tensor.shape[0])
        if tensor.shape[0] > 1:
            raise RuntimeError("CUDA failure 2: out of memory")
        if float(tensor.mean()) == poisoned[0]:
            raise RuntimeError("CUDA failure 700: an illegal memory access")
        return real(self, tensor)

    photos = [p for p in _photos() if p[0] != "broken.jpg"]
    poisoned = [float(engine.preprocess(np.asarray(Image.open(io.BytesIO(photos[2][1])).convert("RGB"))).mean())]
    monkeypatch.setattr(Engine, "infer_many", flaky)
    results, written = _run(engine, photos)
    assert seen[0] == len(photos) and seen[1:] == [1] * len(photos)
    failed = [r for r in results if not r.ok]
    assert [r.source for r in failed] == [photos[2][0]]
    assert failed[0].retryable and failed[0].error_type == "infrastructure_error"
    assert sorted(written) == sorted(name for name, _ in photos if name != photos[2][0])


def test_on_a_gpu_the_session_is_built_for_batches(model_store, monkeypatch):
    """Simulated CUDA + TensorRT build: unset ``infer_batch`` means 8; the session gets the graph with
    a batch dimension and TensorRT a profile from 1 to 8 photos at the network's size (one engine,
    not one per batch size); the run sends the photos through in one inference. The CPU build here
    really runs what the GPU session would have received."""
    monkeypatch.setattr(
        ort,
        "get_available_providers",
        lambda: ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
    )
    monkeypatch.setattr(sess, "preload_gpu_libraries", lambda providers: None)
    real = ort.InferenceSession
    built: list[dict] = []
    batches: list[int] = []

    class GpuSession:  # the real CPU session, reporting what a CUDA session would report
        def __init__(self, model, sess_options=None, providers=None):
            built.append({"model": model, "providers": providers})
            self._s = real(model, sess_options=sess_options, providers=["CPUExecutionProvider"])

        def get_providers(self):
            return ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]

        def get_inputs(self):
            return self._s.get_inputs()

        def run(self, names, feeds):
            batches.append(next(iter(feeds.values())).shape[0])
            return self._s.run(names, feeds)

    monkeypatch.setattr(ort, "InferenceSession", GpuSession)
    sess.clear_cache()
    try:
        engine = Engine(model="u2netp", store=model_store, runtime=RuntimeOptions.from_env())
        assert engine.runtime.batch_size() == 8 and engine.infer_batch == 8
        photos = [p for p in _photos() if p[0] != "broken.jpg"]
        results, _ = _run(engine, photos)
        assert all(r.ok for r in results)
        assert batches == [len(photos)]  # one inference for the six photos
        (made,) = built
        assert onnx.load_from_string(made["model"]).graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
        trt = dict([made["providers"][0]])["TensorrtExecutionProvider"]
        assert trt["trt_profile_min_shapes"] == "input.1:1x3x320x320"
        assert trt["trt_profile_max_shapes"] == trt["trt_profile_opt_shapes"] == "input.1:8x3x320x320"
    finally:
        sess.clear_cache()


def test_on_a_cpu_one_photo_per_inference_and_the_file_as_it_is(model_store, monkeypatch):
    """This machine (CPU build): unset means 1, and the session loads the file itself, unrewritten.
    A GPU that falls back to the CPU (its libraries missing) also runs one photo at a time."""
    assert RuntimeOptions.from_env(providers="cpu").batch_size() == 1
    assert RuntimeOptions.from_env(providers="cpu", infer_batch=3).batch_size() == 3
    monkeypatch.setenv("AIRFLOW__MATTING__INFER_BATCH", "5")
    assert RuntimeOptions.from_env(providers="cpu").batch_size() == 5
    monkeypatch.delenv("AIRFLOW__MATTING__INFER_BATCH")
    engine = Engine(model="u2netp", store=model_store, runtime=RuntimeOptions.from_env(providers="cpu"))
    assert engine.infer_batch == 1
    assert engine.session.get_inputs()[0].shape[0] == 1  # the export's own graph
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(sess, "preload_gpu_libraries", lambda providers: None)
    sess.clear_cache()
    try:
        fell_back = Engine(model="u2netp", store=model_store, runtime=RuntimeOptions.from_env(providers="cuda,cpu"))
        assert fell_back.runtime.batch_size() == 8  # asked of CUDA...
        assert fell_back.infer_batch == 1  # ...but the session runs on the CPU
    finally:
        sess.clear_cache()
