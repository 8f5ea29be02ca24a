"""Execution providers chosen at run time, GPU options, thread defaults, the session cache and hot swap."""

from __future__ import annotations

import os
import shutil

import onnxruntime as ort
import pytest
from matting.engine import session as sess
from matting.engine.session import RuntimeOptions, available_cores, get_session, parse_bytes
from matting.errors import ConfigError, ModelCorrupt


def test_cpu_only_machine_falls_back_to_cpu():
    opts = RuntimeOptions()  # default order: TensorRT, CUDA, CPU
    chosen = opts.provider_list()
    names = [p if isinstance(p, str) else p[0] for p in chosen]
    assert names[-1] == "CPUExecutionProvider"
    assert set(names) <= set(ort.get_available_providers())


def test_gpu_options_when_cuda_is_available(monkeypatch):
    """Simulated: this machine's onnxruntime has no CUDA or TensorRT provider (and no GPU has been
    lent to the project), so the list of available providers is patched. What is checked is the
    options we would hand to ONNX Runtime, not that a CUDA session accepts them; the next test checks
    they are what reaches ``InferenceSession``."""
    monkeypatch.setattr(
        ort,
        "get_available_providers",
        lambda: ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
    )
    opts = RuntimeOptions.from_env(providers="cuda,cpu", gpu_mem_limit="2GB")
    chosen = opts.provider_list()
    assert chosen[0] == (
        "CUDAExecutionProvider",
        {"device_id": 0, "arena_extend_strategy": "kSameAsRequested", "gpu_mem_limit": 2 << 30},
    )
    assert chosen[1] == "CPUExecutionProvider"
    trt = RuntimeOptions(trt_cache_dir="/cache").provider_list()[0]
    assert trt[0] == "TensorrtExecutionProvider" and trt[1]["trt_engine_cache_path"] == "/cache"


def test_the_gpu_options_are_what_reaches_the_onnx_runtime_session(monkeypatch, tmp_path, model_store):
    """The session is built with exactly the provider list and options above (simulated GPU, as
    above: a CUDA build would receive this list; the CPU build here really loads the model)."""
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(sess, "preload_gpu_libraries", lambda providers: None)
    seen = {}
    real = ort.InferenceSession

    def capture(path, sess_options=None, providers=None):
        seen.update(providers=providers, threads=sess_options.intra_op_num_threads)
        return real(path, sess_options=sess_options, providers=["CPUExecutionProvider"])

    monkeypatch.setattr(ort, "InferenceSession", capture)
    model = tmp_path / "u2netp.onnx"
    shutil.copy(model_store.model_dir / model_store.spec("u2netp").file, model)
    sess.clear_cache()
    opts = RuntimeOptions.from_env(providers="cuda,cpu", gpu_mem_limit="512MiB", intra_op_threads=1, device_id=1)
    get_session(model, opts)
    sess.clear_cache()
    assert seen["providers"] == [
        (
            "CUDAExecutionProvider",
            {"device_id": 1, "arena_extend_strategy": "kSameAsRequested", "gpu_mem_limit": 512 << 20},
        ),
        "CPUExecutionProvider",
    ]
    assert seen["threads"] == 1


def test_gpu_libraries_preloaded_once_and_only_for_gpu_providers(monkeypatch):
    from matting.engine import session

    calls = []
    monkeypatch.setattr(session, "_preloaded", [])
    monkeypatch.setattr(ort, "preload_dlls", lambda **kw: calls.append(kw), raising=False)
    session.preload_gpu_libraries(["CPUExecutionProvider"])
    assert calls == []  # a CPU worker never touches CUDA
    cuda = [("CUDAExecutionProvider", {"device_id": 0}), "CPUExecutionProvider"]
    session.preload_gpu_libraries(cuda)
    session.preload_gpu_libraries(cuda)
    assert calls == [{"directory": ""}]

    def broken(**kw):
        raise OSError("libcudnn.so.9: cannot open shared object file")

    monkeypatch.setattr(session, "_preloaded", [])
    monkeypatch.setattr(ort, "preload_dlls", broken, raising=False)
    session.preload_gpu_libraries(cuda)  # logged, not raised: a system CUDA may still serve


def test_env_configuration(monkeypatch):
    monkeypatch.setenv("AIRFLOW__MATTING__PROVIDERS", "CUDA, cpu")
    monkeypatch.setenv("AIRFLOW__MATTING__GPU_MEM_LIMIT", "512MiB")
    monkeypatch.setenv("AIRFLOW__MATTING__THREADS", "1")
    monkeypatch.setenv("AIRFLOW__MATTING__DEVICE_ID", "1")
    opts = RuntimeOptions.from_env()
    assert opts.providers == ("CUDAExecutionProvider", "CPUExecutionProvider")
    assert opts.gpu_mem_limit == 512 << 20 and opts.intra_op_threads == 1 and opts.device_id == 1
    assert RuntimeOptions.from_env(intra_op_threads=2).intra_op_threads == 2  # explicit beats env


def test_threads_default_to_all_cores():
    assert RuntimeOptions().intra_op_threads == available_cores() == len(os.sched_getaffinity(0))
    assert RuntimeOptions().session_options().intra_op_num_threads == available_cores()


def test_parse_bytes():
    assert parse_bytes("2GB") == 2 << 30 and parse_bytes("1.5 GiB") == int(1.5 * (1 << 30))
    assert parse_bytes("1024") == 1024 and parse_bytes(None) is None
    with pytest.raises(ConfigError):
        parse_bytes("lots")


def test_session_cached_and_reloaded_when_file_changes(tmp_path, model_store):
    sess.clear_cache()
    model = tmp_path / "u2netp.onnx"
    shutil.copyfile(model_store.verified_path("u2netp"), model)
    opts = RuntimeOptions(providers=("CPUExecutionProvider",))
    first = get_session(model, opts)
    assert get_session(model, opts) is first  # one session per (model, options) per process
    assert get_session(model, RuntimeOptions(providers=("CPUExecutionProvider",), intra_op_threads=1)) is not first
    # hot swap: a new file replaces the old one atomically; the next call loads it, no restart
    staged = tmp_path / ".u2netp.onnx.tmp"
    shutil.copyfile(model, staged)
    os.replace(staged, model)
    second = get_session(model, opts)
    assert second is not first
    assert get_session(model, opts) is second


def test_unloadable_model_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a protobuf")
    with pytest.raises(ModelCorrupt, match="cannot load"):
        get_session(bad, RuntimeOptions(providers=("CPUExecutionProvider",)))
