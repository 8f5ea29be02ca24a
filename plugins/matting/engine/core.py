"""The matting engine: decode -> mask (ONNX Runtime) -> refine -> compose -> encode, one image or a
pipelined batch that yields a result per image and never stops on a bad file.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

import cv2
import numpy as np
from PIL import Image

from matting.engine import postprocess as pp
from matting.engine.colours import parse_colour
from matting.engine.models import ModelSpec, ModelStore
from matting.engine.scenarios import Scenario, get_scenario
from matting.engine.session import RuntimeOptions, get_session
from matting.errors import ConfigError, ImageError, SourceChanged, retry_in_task
from matting.images import FORMAT_EXTENSIONS, PNG_ENCODERS, DecodedImage, decode, encode

log = logging.getLogger("matting.engine")

OUTPUT_FORMATS = tuple(FORMAT_EXTENSIONS)


@dataclass(frozen=True)
class OutputOptions:
    """What to write: transparent PNG/WebP, JPEG/PNG over a colour, or the mask alone."""

    format: str = "png"  # png | webp | jpeg | mask
    background: tuple[int, int, int] | None = None
    png_compress_level: int = 1  # Pillow's level, when the Pillow PNG encoder is used
    png_encoder: str = "auto"  # auto (fpng when installed) | fpng | pillow
    quality: int = 92
    webp_lossless: bool = False

    @classmethod
    def build(cls, format: str = "png", background=None, **kw) -> OutputOptions:
        fmt = format.lower().replace("jpg", "jpeg")
        if fmt not in OUTPUT_FORMATS:
            raise ConfigError(f"unknown format {format!r}; choose one of {', '.join(OUTPUT_FORMATS)}")
        if kw.get("png_encoder", "auto") not in PNG_ENCODERS:
            raise ConfigError(f"unknown PNG encoder {kw['png_encoder']!r}; choose one of {', '.join(PNG_ENCODERS)}")
        colour = parse_colour(background)
        if fmt == "jpeg" and colour is None:
            colour = (255, 255, 255)  # JPEG has no alpha: white unless told otherwise
        return cls(format=fmt, background=colour, **kw)

    @property
    def extension(self) -> str:
        return FORMAT_EXTENSIONS[self.format]


@dataclass
class ImageResult:
    """One input's outcome; JSON-serialisable (``to_dict``) for logs, XComs and manifests."""

    source: str
    ok: bool
    output: str | None = None
    width: int | None = None
    height: int | None = None
    bytes_out: int | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    error_type: str | None = None
    error: str | None = None
    retryable: bool = False  # an infrastructure failure (storage, network, runtime): not the file's fault
    retry_in_task: bool = False  # retryable, and worth another in-task round (errors.retry_in_task)
    reused_from: str | None = None  # the cached output this one is a copy of (matting.pipeline.reuse)
    model: str | None = None  # the model that made this photo's matte

    @property
    def total_ms(self) -> float:
        return round(sum(self.timings_ms.values()), 1)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Matte:
    """The engine's product for one image, before encoding."""

    rgb: np.ndarray  # colours to show (foreground-estimated at edges if the scenario says so)
    alpha: np.ndarray
    dpi: tuple[float, float] | None = None
    model: str = ""  # the model that made the alpha (a content-aware scenario picks one per photo)


Source = tuple[str, Callable[[], bytes]]
"""(name, loader): the loader returns the file's bytes; called on a worker thread."""
Sink = Callable[[str, bytes, OutputOptions], str]
"""(source name, encoded bytes, options) -> where it was written; must write atomically."""


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000.0, 1)


class Engine:
    """One model + one scenario + runtime options. Cheap to create: the ONNX session is process-cached.

    A content-aware scenario (one with a ``route``, such as ``auto``) holds one engine per kind of
    content and sends each photo to one of them: a photo with a face (BlazeFace) at least
    ``route_min_face`` of its short side wide to ``people``, everything else to ``other``. Naming a
    ``model`` turns the routing off: that model with the ``other`` scenario's operations."""

    def __init__(
        self,
        model: str | None = None,
        scenario: str | Scenario | None = "default",
        runtime: RuntimeOptions | None = None,
        store: ModelStore | None = None,
        max_pixels: int | None = None,
    ) -> None:
        self.store = store or ModelStore()
        self.scenario = get_scenario(scenario)
        self.routes: dict[str, Engine] = {}
        if self.scenario.route is not None:
            from matting import settings

            model = model or settings.value("model") or None  # [matting] model: a choice made too
            if model:  # a model of one's own choice: no routing
                self.scenario = get_scenario(self.scenario.route["other"])
            else:
                self.routes = {
                    kind: Engine(scenario=name, runtime=runtime, store=self.store, max_pixels=max_pixels)
                    for kind, name in self.scenario.route.items()
                }
                self._faces = self._face_detector()  # fails now when the face models are missing
                model = self.routes["other"].spec.name  # what the engine's own model-level calls use
        self.spec: ModelSpec = self.store.spec(model or self.scenario.model)
        if self.spec.kind != "matting":
            raise ConfigError(f"{self.spec.name} is a {self.spec.kind} model, not a background-removal model")
        self.runtime = runtime or RuntimeOptions.from_env()
        self.max_pixels = max_pixels
        self.store.verified_path(self.spec.name)  # fail now, with the fetch command, not per image
        self._mean = np.asarray(self.spec.mean, dtype=np.float32)
        self._std = np.asarray(self.spec.std, dtype=np.float32)

    # --- model ------------------------------------------------------------------------------------

    def _face_detector(self):
        from matting.idphoto.face import face_detector

        try:
            return face_detector(self.store)
        except Exception as exc:
            raise ConfigError(
                f"scenario {self.scenario.name} finds people with the face detector, which is not ready ({exc}); "
                "fetch it with: matting models fetch idphoto"
            ) from exc

    def route_of(self, rgb: np.ndarray) -> str:
        """``people`` when a face scoring at least ``route_min_score``, at least ``route_min_face`` of the
        photo's short side wide, is found (on a copy at most 640 px long), else ``other``."""
        h, w = rgb.shape[:2]
        scale = min(1.0, 640.0 / max(h, w))
        small = (
            rgb if scale >= 1.0 else cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        )
        min_width = self.scenario.route_min_face * min(small.shape[:2])
        faces = self._faces.faces(small)
        people = any(f.score >= self.scenario.route_min_score and f.box[2] - f.box[0] >= min_width for f in faces)
        return "people" if people else "other"

    @property
    def model_label(self) -> str:
        """The model, or for a content-aware scenario each route's (``isnet-medium, people: modnet``)."""
        if not self.routes:
            return self.spec.name
        return f"{self.routes['other'].spec.name}, people: {self.routes['people'].spec.name}"

    @property
    def session(self):
        """The cached session; a model file replaced on disk is re-verified and reloaded here."""
        fixed = self.spec.input_size if self.spec.sizing is None else None
        return get_session(
            self.store.verified_path(self.spec.name),
            self.runtime,
            self.spec.graph,
            batch=self.runtime.batch_size(),
            fixed_hw=(fixed[1], fixed[0]) if fixed else None,
        )

    @property
    def batch_capacity(self) -> int:
        """The most photos one inference takes, over every route of a content-aware engine."""
        return max([self.infer_batch] + [e.infer_batch for e in self.routes.values()])

    @property
    def infer_batch(self) -> int:
        """Photos per inference (``[matting] infer_batch``; unset: 8 on a GPU, 1 on CPU). A batch asked
        of a GPU that fell back to the CPU (its libraries missing) runs one photo at a time."""
        n = self.runtime.batch_size()
        if n > 1 and not self.runtime.infer_batch and self.session.get_providers()[0] == "CPUExecutionProvider":
            return 1
        return n

    @property
    def model_sha256(self) -> str:
        """The weights' sha256; for a content-aware scenario, one digest of every route's model and
        scenario and the routing rule (what the result cache keys on)."""
        from matting.engine.models import sha256_of

        if self.routes:
            import hashlib
            import json

            parts = {k: [e.model_sha256, asdict(e.scenario)] for k, e in sorted(self.routes.items())}
            parts["rule"] = [self.scenario.route_min_face, self.scenario.route_min_score]
            return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()
        return self.spec.sha256 or sha256_of(self.store.verified_path(self.spec.name))

    @property
    def providers(self) -> list[str]:
        return list(self.session.get_providers())

    def preprocess(self, rgb: np.ndarray) -> np.ndarray:
        """RGB uint8 -> 1x3xHxW float32 as the model family expects: resized to the network's size
        (fixed, or from the manifest's sizing rule for dynamic-input models), scaled to 0..1 (by the
        brightest pixel like rembg's normalize(), or by 255), then (x - mean) / std.

        ``lanczos`` matches Pillow's Lanczos (what rembg uses; thin objects' masks depend on it), but a
        large image is first box-reduced by an integer factor with OpenCV, like Pillow's own
        ``reducing_gap``: 16 ms instead of 125 ms at 9 MP, mask IoU with rembg >= 0.99. ``area`` is
        OpenCV's area average when shrinking and bicubic when enlarging.
        """
        w, h = self.spec.network_size(rgb.shape[1], rgb.shape[0])
        if self.spec.resample == "area":
            shrink = w * h < rgb.shape[0] * rgb.shape[1]
            small = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
            small = small.astype(np.float32)
        else:
            factor = int(min(rgb.shape[1] / w, rgb.shape[0] / h) / 2.0)
            if factor > 1:
                rgb = cv2.resize(rgb, (rgb.shape[1] // factor, rgb.shape[0] // factor), interpolation=cv2.INTER_AREA)
            small = np.asarray(Image.fromarray(rgb).resize((w, h), Image.Resampling.LANCZOS), dtype=np.float32)
        small *= 1.0 / (255.0 if self.spec.input_scale == "255" else max(float(small.max()), 1e-6))
        small -= self._mean
        small /= self._std
        return np.ascontiguousarray(small.transpose(2, 0, 1)[None])

    def infer(self, tensor: np.ndarray) -> np.ndarray:
        """The network's raw output for a 1x3xHxW tensor, HxW."""
        return self.infer_many(tensor)[0]

    def infer_many(self, tensor: np.ndarray) -> np.ndarray:
        """The network's raw outputs for an Nx3xHxW tensor (N photos of one size), NxHxW."""
        session = self.session
        outputs = session.run(None, {session.get_inputs()[0].name: tensor})
        return outputs[self.spec.output_index][:, 0]

    def _predict(self, tensor: np.ndarray, flip: bool | None = None) -> np.ndarray:
        """Activated predictions (NxHxW) for an Nx3xHxW tensor; with ``flip`` (default: the
        scenario's) averaged with the mirrored photos' (two inferences)."""
        flip = self.scenario.flip if flip is None else flip
        pred = self._activated(self.infer_many(tensor))
        if flip:
            mirrored = self._activated(self.infer_many(np.ascontiguousarray(tensor[..., ::-1])))
            pred = (pred + mirrored[..., ::-1]) * 0.5
        return pred

    def _activated(self, pred: np.ndarray) -> np.ndarray:
        pred = pred.astype(np.float32)
        return 1.0 / (1.0 + np.exp(-pred)) if self.spec.activation == "sigmoid" else pred

    def postprocess_prediction(self, pred: np.ndarray, width: int, height: int, activated: bool = False) -> np.ndarray:
        """Raw network output -> uint8 mask at the image's size: the activation, then min-max
        normalised like rembg (``minmax``) or kept as the alpha it is (``clip`` to 0..1)."""
        pred = pred.astype(np.float32) if activated else self._activated(pred)
        if self.spec.output_normalize == "minmax":
            lo, hi = float(pred.min()), float(pred.max())
            mask = ((pred - lo) / max(hi - lo, 1e-6) * 255.0).astype(np.uint8)  # truncated, as rembg does
        else:
            mask = (np.clip(pred, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        # Lanczos up, like rembg's Pillow resize (sharper edges than linear: MSE -6 % on a cello at
        # 3000 px, `make quality`), area average down
        interp = cv2.INTER_LANCZOS4 if width * height >= mask.size else cv2.INTER_AREA
        return cv2.resize(mask, (width, height), interpolation=interp)

    def predict_mask(self, rgb: np.ndarray, flip: bool | None = None) -> np.ndarray:
        """The model's soft mask at full size (the one rembg's only_mask=True returns). With ``flip``
        (default: the scenario's), the prediction is averaged with the mirrored photo's (two inferences)."""
        pred = self._predict(self.preprocess(rgb), flip)[0]
        return self.postprocess_prediction(pred, rgb.shape[1], rgb.shape[0], activated=True)

    # --- one image --------------------------------------------------------------------------------

    def matte(self, image: DecodedImage, timings: dict[str, float] | None = None) -> Matte:
        """Mask + scenario refinement + foreground estimation, honouring any alpha the source had."""
        result = self.matte_many([image], [{} if timings is None else timings])[0]
        if isinstance(result, Exception):
            raise result
        return result

    def matte_many(self, images: list[DecodedImage], timings: list[dict[str, float]]) -> list[Matte | Exception]:
        """``matte`` for several photos, each photo's outcome in its place (a Matte, or the exception
        that photo raised: one bad photo never fails the others). A content-aware engine routes each
        photo, then each route's engine takes its share; photos whose network input has the same size
        go through the network together, ``infer_batch`` at a time. The masks are the ones ``matte``
        makes one by one (the graphs compute each photo independently)."""
        results: list[Matte | Exception | None] = [None] * len(images)
        if self.routes:
            shares: dict[str, list[int]] = {}
            for i, image in enumerate(images):
                t0 = time.perf_counter()
                try:
                    shares.setdefault(self.route_of(self._model_rgb(image)), []).append(i)
                except Exception as exc:
                    results[i] = exc
                timings[i]["route"] = _ms(t0)
            for route, idx in shares.items():
                done = self.routes[route].matte_many([images[i] for i in idx], [timings[i] for i in idx])
                for i, result in zip(idx, done, strict=True):
                    results[i] = result
            return results  # type: ignore[return-value]
        model_rgb: dict[int, np.ndarray] = {}
        tensors: dict[int, np.ndarray] = {}
        by_shape: dict[tuple, list[int]] = {}
        for i, image in enumerate(images):
            t0 = time.perf_counter()
            try:
                model_rgb[i] = self._model_rgb(image)
                tensors[i] = self.preprocess(model_rgb[i])
                by_shape.setdefault(tensors[i].shape, []).append(i)
            except Exception as exc:
                results[i] = exc
            timings[i]["infer"] = _ms(t0)
        n = self.infer_batch
        preds: dict[int, np.ndarray] = {}
        for idx in by_shape.values():
            for start in range(0, len(idx), n):
                chunk = idx[start : start + n]
                t0 = time.perf_counter()
                try:
                    batch = tensors[chunk[0]] if len(chunk) == 1 else np.concatenate([tensors[i] for i in chunk])
                    preds.update(zip(chunk, self._predict(batch), strict=True))
                except Exception as exc:
                    if len(chunk) == 1:
                        results[chunk[0]] = exc
                    else:  # e.g. out of GPU memory for the whole batch: one by one, each photo its own outcome
                        log.warning("a batch of %d photos failed (%s); running them one by one", len(chunk), exc)
                        for i in chunk:
                            try:
                                preds[i] = self._predict(tensors[i])[0]
                            except Exception as one:
                                results[i] = one
                share = _ms(t0) / len(chunk)
                for i in chunk:
                    timings[i]["infer"] = round(timings[i]["infer"] + share, 1)
        for i, pred in preds.items():
            t0 = time.perf_counter()
            try:
                image = images[i]
                alpha = self.postprocess_prediction(pred, image.width, image.height, activated=True)
                timings[i]["infer"] = round(timings[i]["infer"] + _ms(t0), 1)
                t0 = time.perf_counter()
                results[i] = self._refine(image, model_rgb[i], alpha)
            except Exception as exc:
                results[i] = exc
            timings[i]["refine"] = _ms(t0)
        return results  # type: ignore[return-value]

    @staticmethod
    def _model_rgb(image: DecodedImage) -> np.ndarray:
        """What the network sees: the photo, or a transparent source over white."""
        return image.rgb if image.alpha is None else pp.over_background(image.rgb, image.alpha, (255, 255, 255))

    def _refine(self, image: DecodedImage, model_rgb: np.ndarray, alpha: np.ndarray) -> Matte:
        """The scenario's mask operations and foreground estimation on the network's mask."""
        sc = self.scenario
        alpha = pp.refine_alpha(model_rgb, alpha, sc)
        if image.alpha is not None:  # already-transparent pixels stay transparent
            alpha = ((alpha.astype(np.uint16) * image.alpha + 127) // 255).astype(np.uint8)
        rgb = image.rgb
        if sc.foreground != "none":
            rgb = pp.estimate_foreground(rgb, alpha, sc.fg_max_pixels, sc.foreground)
        return Matte(rgb=rgb, alpha=alpha, dpi=image.dpi, model=self.spec.name)

    def compose(self, matte: Matte, out: OutputOptions) -> Image.Image:
        if out.format == "mask":
            return Image.fromarray(matte.alpha, mode="L")
        if out.background is not None:
            return Image.fromarray(pp.over_background(matte.rgb, matte.alpha, out.background), mode="RGB")
        return Image.fromarray(pp.cutout_rgba(matte.rgb, matte.alpha), mode="RGBA")

    def render(self, matte: Matte, out: OutputOptions, timings: dict[str, float] | None = None) -> bytes:
        timings = {} if timings is None else timings
        t0 = time.perf_counter()
        img = self.compose(matte, out)
        timings["compose"] = _ms(t0)
        t0 = time.perf_counter()
        data = encode(
            img,
            out.format,
            png_compress_level=out.png_compress_level,
            png_encoder=out.png_encoder,
            quality=out.quality,
            webp_lossless=out.webp_lossless,
            dpi=matte.dpi,
        )
        timings["encode"] = _ms(t0)
        return data

    def process_bytes(self, data: bytes, name: str, out: OutputOptions) -> tuple[ImageResult, bytes | None]:
        """Whole pipeline for one file's bytes; errors come back as a failed result, not an exception."""
        timings: dict[str, float] = {}
        try:
            image = self._decode(data, name, timings)
            matte = self.matte(image, timings)
            encoded = self.render(matte, out, timings)
        except Exception as exc:
            return self.failed_result(name, exc, timings), None
        result = ImageResult(
            source=name,
            ok=True,
            width=image.width,
            height=image.height,
            bytes_out=len(encoded),
            timings_ms=timings,
            model=matte.model,
        )
        return result, encoded

    @staticmethod
    def failed_result(
        name: str, exc: Exception, timings: dict, size: tuple[int, int] | None = None, *, writing: bool = False
    ) -> ImageResult:
        """A failed result, by the one classification of ``matting.errors``. Content errors (the typed
        ``ImageError``s) are the file's fault; a file that vanished or changed since detection is
        reported as such (a missing file while *writing* is the destination's trouble, not a vanished
        source); anything else (storage, network, disk, ONNX Runtime, out of memory, a bug) is
        *retryable*: the caller must not blame the file for it, and ``retry_in_task`` says whether an
        in-task round may help. A ``ConfigError`` (a bad option or preset, a missing dependency) is
        no photo's outcome: it is raised, and the task fails at once with its message."""
        if isinstance(exc, ConfigError):
            raise exc
        retryable, again = False, False
        if isinstance(exc, ImageError):
            code, message = exc.code, str(exc)
        elif isinstance(exc, SourceChanged):
            code, message = exc.code, str(exc)
        elif isinstance(exc, FileNotFoundError) and not writing:
            code, message = "vanished", f"{name}: cannot read: no such file (gone from the source)"
        else:
            log.warning("infrastructure error on %s: %s: %s", name, type(exc).__name__, exc, exc_info=exc)
            where = "writing the output: " if writing else ""
            code, message = "infrastructure_error", f"{name}: {where}{type(exc).__name__}: {exc}"
            retryable, again = True, retry_in_task(exc)
        width, height = size or (None, None)
        return ImageResult(
            source=name,
            ok=False,
            width=width,
            height=height,
            timings_ms=timings,
            error_type=code,
            error=message,
            retryable=retryable,
            retry_in_task=again,
        )

    # --- many images ------------------------------------------------------------------------------

    def run_batch(
        self,
        sources: Iterable[Source],
        out: OutputOptions,
        sink: Sink | None = None,
        prefetch: int = 1,
        overlap_cpu: bool = True,
        shortcut: Callable[[str, bytes], ImageResult | None] | None = None,
    ) -> Iterator[ImageResult]:
        """Yield one ImageResult per source, in input order.

        ``shortcut(name, data)``, called with each file's bytes as soon as they are read, may answer
        for the file (an output reused from the result cache): then it is neither decoded nor
        inferred, and its answer is the file's result.

        Reading the next file and writing the previous result always overlap inference (they wait
        on storage: local disk now, S3/SFTP in the pipelines). With ``overlap_cpu`` (default) decoding
        and composing+encoding run on those threads too; turn it off on a worker whose cores are all
        taken by inference. At most ``prefetch`` images wait at each stage, so memory stays flat
        whatever the batch size.
        """
        prefetch = max(1, prefetch)
        with (
            ThreadPoolExecutor(1, thread_name_prefix="matting-read") as read_pool,
            ThreadPoolExecutor(1, thread_name_prefix="matting-write") as write_pool,
        ):
            it = iter(sources)
            reading: deque[tuple[str, Future]] = deque()
            finishing: deque[Future] = deque()

            def feed() -> None:
                nxt = next(it, None)
                if nxt is not None:
                    name, loader = nxt
                    reading.append((name, read_pool.submit(self._read_stage, name, loader, overlap_cpu, shortcut)))

            n = self.batch_capacity
            try:
                for _ in range(max(prefetch, n)):
                    feed()
                while reading:
                    group = [reading.popleft() for _ in range(min(n, len(reading)))]
                    for _ in group:
                        feed()
                    finishing.extend(self._main_stage(group, out, sink, write_pool, overlap_cpu))
                    while len(finishing) > prefetch:
                        yield finishing.popleft().result()
                while finishing:
                    yield finishing.popleft().result()
            except GeneratorExit:  # the caller stopped (the storage is down): start no queued read
                read_pool.shutdown(wait=False, cancel_futures=True)
                raise

    def _decode(self, data: bytes, name: str, timings: dict) -> DecodedImage:
        t0 = time.perf_counter()
        image = decode(data, name=name, max_pixels=self.max_pixels)
        timings["decode"] = _ms(t0)
        return image

    def _read_stage(self, name: str, loader: Callable[[], bytes], decode_too: bool, shortcut=None):
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        data = loader()  # storage errors propagate: failed_result tells them from content errors
        timings["read"] = _ms(t0)
        if shortcut is not None:
            t0 = time.perf_counter()
            answer = shortcut(name, data)
            if answer is not None:
                answer.timings_ms = {**timings, "reuse": _ms(t0), **answer.timings_ms}
                return answer, timings
        return (self._decode(data, name, timings) if decode_too else data), timings

    def _main_stage(self, group: list[tuple[str, Future]], out: OutputOptions, sink: Sink | None, pool, overlap: bool):
        """Inference on this thread for a group of read photos (one, or ``infer_batch`` on a GPU);
        returns a future of each photo's final result (written on the pool), in the group's order."""
        done: list[Future | None] = [None] * len(group)
        ready: list[tuple[int, DecodedImage, dict]] = []

        def settled(result: ImageResult) -> Future:
            fut: Future = Future()
            fut.set_result(result)
            return fut

        for k, (name, fut) in enumerate(group):
            timings: dict[str, float] = {}
            try:
                payload, timings = fut.result()
                if isinstance(payload, ImageResult):  # answered by the shortcut: nothing to infer
                    done[k] = settled(payload)
                    continue
                image = payload if isinstance(payload, DecodedImage) else self._decode(payload, name, timings)
                ready.append((k, image, timings))
            except Exception as exc:
                done[k] = settled(self.failed_result(name, exc, timings))
        mattes = self.matte_many([image for _, image, _ in ready], [timings for _, _, timings in ready])
        for (k, image, timings), matte in zip(ready, mattes, strict=True):
            name, size = group[k][0], (image.width, image.height)
            try:
                if isinstance(matte, Exception):
                    raise matte
                data = None if overlap else self.render(matte, out, timings)
            except Exception as exc:
                done[k] = settled(self.failed_result(name, exc, timings, size))
                continue
            done[k] = pool.submit(self._finish_stage, name, size, matte, data, timings, out, sink)
        return done

    def _finish_stage(self, name, size, matte, data, timings, out, sink) -> ImageResult:
        try:
            if data is None:
                data = self.render(matte, out, timings)
        except Exception as exc:
            return self.failed_result(name, exc, timings, size)
        where = None
        if sink is not None:
            t0 = time.perf_counter()
            try:
                where = sink(name, data, out)
            except Exception as exc:
                return self.failed_result(name, exc, timings, size, writing=True)
            timings["write"] = _ms(t0)
        return ImageResult(
            source=name,
            ok=True,
            output=where,
            width=size[0],
            height=size[1],
            bytes_out=len(data),
            timings_ms=timings,
            model=matte.model,
        )


def file_sources(paths: Iterable[str | os.PathLike], names: Iterable[str] | None = None) -> Iterator[Source]:
    """Sources for local files (names default to the paths as given)."""
    names_it = iter(names) if names is not None else None
    for path in paths:
        name = next(names_it) if names_it is not None else str(path)

        def loader(p=path) -> bytes:
            with open(p, "rb") as fh:
                return fh.read()

        yield name, loader
