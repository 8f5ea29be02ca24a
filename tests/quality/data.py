"""Ground truth for `make quality`: real photographic cut-outs with exact alpha, composited over real photos.

Fetched from Debian like any package (``apt-get download``, pinned versions), sha256-checked, extracted
to ``.cache/quality/``; never committed. A missing download or a checksum mismatch fails loudly.

- Cut-outs: Tux Paint's stamps (``tuxpaint-stamps-default`` 2022.06.04-1, GPL-2; photographs of
  objects, food, plants, animals and people cut out by hand with an alpha channel). Only the
  photographic stamps are used (drawn clip art would flatter any model); they are listed below by hand.
- Backgrounds: the photographs among KDE Plasma's wallpapers (``plasma-workspace-wallpapers``
  4:5.27.5-2, GPL-2+): lake, pier, cups, boats, leaves, fog, sky, moss, forest, beach, dusk.

Limits (said in docs/quality.md): hand-cut alphas are harder-edged than real hair mattes; a cut-out pasted
on a photo it was not shot in can be easier than a real photo (lighting and focus differ); at 3000 px
the cut-out is enlarged 6-12x, so its edges are softer than a real 3000 px product shot's. Two people
only (both full length, in protective suits): portraits are judged on the ID-photo evaluation too.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "quality"

# package -> (version, sha256 of the .deb, folder inside it)
PACKAGES = {
    "tuxpaint-stamps-default": (
        "2022.06.04-1",
        "6db6c1bfc870a47f1499d6203b083522eacb57c5f9c87d468f2e92eb6d9d5f34",
        "usr/share/tuxpaint/stamps",
    ),
    "plasma-workspace-wallpapers": (
        "4:5.27.5-2",
        "32cd18b71c8c938a18b3b351f217c02ac590e323caa3cf322fbb875ce8892f8b",
        "usr/share/wallpapers",
    ),
}

# stamp -> content type (objects: things, food, plants; animals: fur, feathers, legs; people)
CUTOUTS = {
    "vehicles/emergency/firetruck.png": "objects",
    "vehicles/flight/balloon360.png": "objects",
    "household/tools/cementmixer.png": "objects",
    "vehicles/wheel_tractor.png": "objects",
    "vehicles/race/indycar.png": "objects",
    "household/Lightbulb.png": "objects",
    "hobbies/music/string/cello.png": "objects",
    "hobbies/binoculars.png": "objects",
    "hobbies/camera_35mm.png": "objects",
    "seasonal/christmas/German_Christmas_toy.png": "objects",
    "food/fruit/Strawberry2.png": "objects",
    "food/fruit/Cherry_Stella.png": "objects",
    "food/fruit/cherimoya.png": "objects",
    "food/fruit/Apricot_whole.png": "objects",
    "food/fruit/orange_seville.png": "objects",
    "food/spices/ginger.png": "objects",
    "food/vegetables/broccoli.png": "objects",
    "seasonal/christmas/Roast_turkey.png": "objects",
    "seasonal/christmas/Mince_Pie.png": "objects",
    "plants/flowers/anemone_red.png": "objects",
    "plants/flowers/daffodil.png": "objects",
    "plants/mushrooms/cep.png": "objects",
    "plants/trees/holm_oak.png": "objects",
    "plants/thyme.png": "objects",
    "animals/mammals/cats/tiger_sumatran.png": "animals",
    "animals/birds/crowned_crane.png": "animals",
    "animals/mammals/bears/european-bear.png": "animals",
    "animals/mammals/bovines/gnu-baby.png": "animals",
    "animals/mammals/rodents/squirrel.png": "animals",
    "animals/fish/seahorse.png": "animals",
    "animals/birds/helmeted_guineafowl.png": "animals",
    "animals/mammals/camel/camel.png": "animals",
    "animals/mammals/giraffe.png": "animals",
    "animals/fish/lobster.png": "animals",
    "animals/amphibians/frog.png": "animals",
    "animals/marsupials/koala.png": "animals",
    "animals/insects/mantis.png": "animals",
    "animals/mammals/aquatic/otter.png": "animals",
    "animals/mammals/apes/chimp.png": "animals",
    "animals/mammals/bovines/goat.png": "animals",
    "animals/mammals/equines/horse.png": "animals",
    "animals/mammals/cats/lion-2.png": "animals",
    "people/fireman200b.png": "people",
    "people/fireman240a.png": "people",
}

BACKGROUNDS = [
    f"{name}/contents/images/{size}.jpg"
    for name, size in [
        ("BytheWater", "2560x1600"),
        ("ColdRipple", "2560x1600"),
        ("ColorfulCups", "2560x1600"),
        ("EveningGlow", "2560x1600"),
        ("FallenLeaf", "2560x1600"),
        ("Grey", "2560x1600"),
        ("Kite", "2560x1600"),
        ("OneStandsOut", "2560x1600"),
        ("Path", "2560x1600"),
        ("Volna", "5120x2880"),
        ("summer_1am", "2560x1600"),
    ]
]


class FetchError(RuntimeError):
    pass


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def package_dir(package: str) -> Path:
    """The package's data folder, fetched and verified on first use."""
    version, sha256, inner = PACKAGES[package]
    target = CACHE / package
    if (target / ".verified").exists():
        return target / inner
    with tempfile.TemporaryDirectory(prefix="quality-") as tmp:
        cmd = ["apt-get", "download", f"{package}={version}"]
        proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=900)
        if proc.returncode != 0 and os.geteuid() == 0:  # package lists missing or stale: refresh once
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True, timeout=900)
            proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=900)
        debs = list(Path(tmp).glob("*.deb"))
        if proc.returncode != 0 or not debs:
            raise FetchError(
                f"apt-get download {package}={version} failed ({proc.stderr.strip()[-300:]}); "
                "run `apt-get update` once, then again"
            )
        got = _sha256(debs[0])
        if got != sha256:
            raise FetchError(f"{debs[0].name}: sha256 {got} != expected {sha256}")
        staging = Path(tmp) / "x"
        subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(staging)], check=True, timeout=900)
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        shutil.move(str(staging / inner), str(target / inner))
        (target / ".verified").write_text(f"{debs[0].name} {sha256}\n")
    return target / inner


@dataclass(frozen=True)
class Composite:
    """One test image: ``rgb`` (H x W x 3 uint8) and its exact ``alpha`` (H x W float 0..1)."""

    name: str
    content: str
    resolution: str  # "native" or the long side in px
    rgb: np.ndarray
    alpha: np.ndarray


def _load_rgba(path: Path) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    rgba = np.asarray(Image.open(path).convert("RGBA"))
    return rgba[..., :3].astype(np.float32), rgba[..., 3].astype(np.float32) / 255.0


@functools.lru_cache(maxsize=16)
def _background(path: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)


def compose(stamp: str, index: int, long_side: int | None) -> Composite:
    """The stamp (padded by 20 % of its size on each side) over a crop of a background photo picked
    by ``index``; ``long_side`` enlarges the whole scene (premultiplied cubic resize of the cut-out)."""
    fg, alpha = _load_rgba(package_dir("tuxpaint-stamps-default") / stamp)
    ys, xs = np.nonzero(alpha > 0)
    fg, alpha = (
        fg[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1],
        alpha[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1],
    )
    h, w = alpha.shape
    pad_y, pad_x = round(0.2 * h) + 8, round(0.2 * w) + 8
    canvas_h, canvas_w = h + 2 * pad_y, w + 2 * pad_x
    premult = np.zeros((canvas_h, canvas_w, 3), np.float32)
    full_alpha = np.zeros((canvas_h, canvas_w), np.float32)
    premult[pad_y : pad_y + h, pad_x : pad_x + w] = fg * alpha[..., None]
    full_alpha[pad_y : pad_y + h, pad_x : pad_x + w] = alpha
    if long_side:
        scale = long_side / max(canvas_h, canvas_w)
        size = (round(canvas_w * scale), round(canvas_h * scale))
        full_alpha = np.clip(cv2.resize(full_alpha, size, interpolation=cv2.INTER_CUBIC), 0.0, 1.0)
        premult = np.clip(cv2.resize(premult, size, interpolation=cv2.INTER_CUBIC), 0.0, 255.0)
        premult = np.minimum(premult, full_alpha[..., None] * 255.0)  # no colour where there is no alpha
    out_h, out_w = full_alpha.shape
    bg_path = package_dir("plasma-workspace-wallpapers") / BACKGROUNDS[index % len(BACKGROUNDS)]
    bg = _background(bg_path)
    # the largest crop of the background with the scene's aspect, at a position set by the index
    crop_scale = min(bg.shape[1] / out_w, bg.shape[0] / out_h) * 0.85
    cw, ch = int(out_w * crop_scale), int(out_h * crop_scale)
    rng = np.random.default_rng(index)
    x0 = int(rng.integers(0, bg.shape[1] - cw + 1))
    y0 = int(rng.integers(0, bg.shape[0] - ch + 1))
    crop = bg[y0 : y0 + ch, x0 : x0 + cw]
    interp = cv2.INTER_AREA if cw > out_w else cv2.INTER_CUBIC
    crop = cv2.resize(crop, (out_w, out_h), interpolation=interp)
    rgb = premult + (1.0 - full_alpha[..., None]) * crop
    name = Path(stamp).stem
    return Composite(
        name=name,
        content=CUTOUTS[stamp],
        resolution=f"{long_side}px" if long_side else "native",
        rgb=np.clip(rgb + 0.5, 0, 255).astype(np.uint8),
        alpha=full_alpha.astype(np.float64),
    )


def composites(long_side: int | None, only: list[str] | None = None):
    """Every composite at one resolution (``only``: stamp names to keep, for a quick run)."""
    for i, stamp in enumerate(CUTOUTS):
        if only and Path(stamp).stem not in only:
            continue
        yield compose(stamp, i, long_side)
