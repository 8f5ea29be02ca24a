"""ONNX Runtime sessions: execution providers chosen at run time, one cached session per
(model file, providers, options) per process, reloaded when the model file changes on disk.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import onnxruntime as ort

from matting import settings
from matting.errors import ConfigError, ModelCorrupt

log = logging.getLogger("matting.session")

DEFAULT_PROVIDER_ORDER = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
_GPU_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider")
# photos per inference on a GPU when ``infer_batch`` is unset; on a CPU one photo at a time (a batch
# of 3 took 1.8-3x as long as three single runs on 2 cores: the cores are already busy inside one)
GPU_BATCH = 8
_SHORT_NAMES = {
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
    "rocm": "ROCMExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
}


def available_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS
        return max(1, os.cpu_count() or 1)


def parse_bytes(value: str | int | None) -> int | None:
    """'2GB', '512MiB', '1073741824' -> bytes; None/'' -> None."""
    if value is None or value == "":
        return None
    if isinstance(value, int):
        return value
    text = value.strip().upper().replace("IB", "B")
    units = {"KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40, "B": 1}
    for unit, mult in units.items():
        if text.endswith(unit):
            try:
                return int(float(text[: -len(unit)]) * mult)
            except ValueError:
                break
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"cannot read a byte size from {value!r} (try '2GB')") from None


def _provider_names(raw: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    return tuple(_SHORT_NAMES.get(p.strip().lower(), p.strip()) for p in items if p.strip())


@dataclass(frozen=True)
class RuntimeOptions:
    """How to run a model. ``from_env`` reads the ``[matting]`` settings (see matting.settings), so
    Airflow workers are configured without code."""

    providers: tuple[str, ...] = DEFAULT_PROVIDER_ORDER
    gpu_mem_limit: int | None = None
    device_id: int = 0
    intra_op_threads: int = field(default_factory=available_cores)
    trt_cache_dir: str | None = None
    spin: bool = False
    infer_batch: int | None = None  # photos per inference; None: GPU_BATCH on CUDA/TensorRT, 1 on CPU

    @classmethod
    def from_env(cls, **overrides) -> RuntimeOptions:
        """Options from the ``[matting]`` settings (``providers``, ``gpu_mem_limit``, ``device_id``,
        ``threads``, ``spin``, ``trt_cache``); keyword arguments that are not None win."""
        kw: dict = {}
        if settings.value("providers"):
            kw["providers"] = _provider_names(settings.value("providers"))
        if settings.value("gpu_mem_limit"):
            kw["gpu_mem_limit"] = parse_bytes(settings.value("gpu_mem_limit"))
        kw["device_id"] = settings.value("device_id")
        if settings.value("threads") is not None:
            kw["intra_op_threads"] = settings.value("threads")
        kw["spin"] = settings.value("spin")
        if settings.value("trt_cache"):
            kw["trt_cache_dir"] = settings.value("trt_cache")
        if settings.value("infer_batch"):
            kw["infer_batch"] = settings.value("infer_batch")
        for key, value in overrides.items():
            if value is None:
                continue
            if key == "providers":
                value = _provider_names(value)
            elif key == "gpu_mem_limit":
                value = parse_bytes(value)
            kw[key] = value
        return cls(**kw)

    def batch_size(self) -> int:
        """Photos per inference: ``infer_batch`` when set, else GPU_BATCH when the first provider this
        build has is CUDA or TensorRT, else 1."""
        if self.infer_batch:
            return max(1, int(self.infer_batch))
        first = self.provider_list()[0]
        return GPU_BATCH if (first if isinstance(first, str) else first[0]) in _GPU_PROVIDERS else 1

    def provider_list(self, trt_profile: tuple[str, int, int, int] | None = None) -> list:
        """The wanted providers that this onnxruntime build has, in order, with their options.
        ``trt_profile`` (input name, batch, height, width): TensorRT builds one engine for batches of 1
        up to that size at that resolution, instead of rebuilding an engine for each new batch size."""
        available = set(ort.get_available_providers())
        chosen: list = []
        for name in self.providers:
            if name not in available:
                continue
            if name == "CUDAExecutionProvider":
                opts = {"device_id": self.device_id, "arena_extend_strategy": "kSameAsRequested"}
                if self.gpu_mem_limit:
                    opts["gpu_mem_limit"] = self.gpu_mem_limit
                chosen.append((name, opts))
            elif name == "TensorrtExecutionProvider":
                opts = {"device_id": self.device_id, "trt_fp16_enable": False}
                if self.trt_cache_dir:
                    opts.update(trt_engine_cache_enable=True, trt_engine_cache_path=self.trt_cache_dir)
                if self.gpu_mem_limit:
                    opts["trt_max_workspace_size"] = self.gpu_mem_limit
                if trt_profile is not None:
                    inp, n, h, w = trt_profile
                    opts["trt_profile_min_shapes"] = f"{inp}:1x3x{h}x{w}"
                    opts["trt_profile_opt_shapes"] = opts["trt_profile_max_shapes"] = f"{inp}:{n}x3x{h}x{w}"
                chosen.append((name, opts))
            else:
                chosen.append(name)
        if not any((p if isinstance(p, str) else p[0]) == "CPUExecutionProvider" for p in chosen):
            chosen.append("CPUExecutionProvider")  # always a fallback, so a GPU-less worker still runs
        return chosen

    def session_options(self) -> ort.SessionOptions:
        so = ort.SessionOptions()
        so.intra_op_num_threads = self.intra_op_threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        if not self.spin:
            # idle intra-op threads sleep instead of spinning, leaving the cores to the decode and
            # encode threads that overlap inference in a batch
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return so


_preloaded: list[bool] = []


def preload_gpu_libraries(providers: list) -> None:
    """Load CUDA/cuDNN from NVIDIA's pip wheels (onnxruntime-gpu[cuda,cudnn], as the GPU image
    installs them) before the first GPU session, once per process. Without it ONNX Runtime finds no
    libcudart/libcudnn on a machine without a system CUDA and silently runs on CPU."""
    names = [p if isinstance(p, str) else p[0] for p in providers]
    if _preloaded or not any(n in _GPU_PROVIDERS for n in names) or not hasattr(ort, "preload_dlls"):
        return
    _preloaded.append(True)
    try:
        ort.preload_dlls(directory="")  # "": NVIDIA site-packages first, then the system's paths
    except Exception as exc:  # a system CUDA install may still satisfy the provider
        log.warning("could not preload CUDA/cuDNN libraries from NVIDIA's wheels: %s", exc)


@dataclass
class _Cached:
    session: ort.InferenceSession
    stamp: tuple


_cache: dict[tuple, _Cached] = {}
_lock = threading.Lock()


def _stamp(path: Path) -> tuple:
    st = path.stat()
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def get_session(
    model_path: str | os.PathLike,
    options: RuntimeOptions,
    graph: str | None = None,
    batch: int = 1,
    fixed_hw: tuple[int, int] | None = None,
) -> ort.InferenceSession:
    """Return the process-wide session for this model file and options, reloading a changed file.
    ``graph`` names a rewrite (``matting.engine.graphs``) applied to the file's bytes in memory. With
    ``batch`` > 1 the graph also takes several photos per run (``dynamic-batch``); ``fixed_hw``, the
    network's fixed input size, lets TensorRT build one engine for every batch size up to ``batch``."""
    path = Path(model_path).resolve()
    if batch > 1:
        graph = f"{graph}+dynamic-batch" if graph else "dynamic-batch"
    key = (str(path), options, graph, batch, fixed_hw)
    stamp = _stamp(path)
    with _lock:
        cached = _cache.get(key)
        if cached is not None and cached.stamp == stamp:
            return cached.session
        if cached is not None:
            log.info("model file %s changed on disk; reloading the session", path.name)
        try:
            model: str | bytes = str(path)
            if graph:
                from matting.engine.graphs import rewrite

                model = rewrite(graph, path.read_bytes())
            profile = None
            if batch > 1 and fixed_hw is not None and "TensorrtExecutionProvider" in ort.get_available_providers():
                import onnx

                profile = (onnx.load_from_string(model).graph.input[0].name, batch, *fixed_hw)
            providers = options.provider_list(trt_profile=profile)
            preload_gpu_libraries(providers)
            session = ort.InferenceSession(model, sess_options=options.session_options(), providers=providers)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf types
            raise ModelCorrupt(f"onnxruntime cannot load {path}: {exc}") from exc
        wanted = [p if isinstance(p, str) else p[0] for p in providers]
        active = session.get_providers()
        if wanted[0] != "CPUExecutionProvider" and active[0] == "CPUExecutionProvider":
            log.warning("%s was available but the session runs on CPU (GPU runtime libraries missing?)", wanted[0])
        log.info(
            "loaded %s%s with providers %s, %d intra-op threads%s",
            path.name,
            f" ({graph})" if graph else "",
            active,
            options.intra_op_threads,
            f", up to {batch} photos per inference" if batch > 1 else "",
        )
        _cache[key] = _Cached(session, stamp)
        return session


def clear_cache() -> None:
    with _lock:
        _cache.clear()
