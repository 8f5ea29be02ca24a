"""ID photo stage 4, render: the placed subject over the background colour (``render_over``), then
the file, encoded within the preset's (or the options') size limits (``encode_photo``)."""

from __future__ import annotations

import io
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from matting.engine import postprocess as pp
from matting.errors import ConfigError


@dataclass
class Rendered:
    composed: np.ndarray  # the output's pixels before encoding (RGB, uint8)
    alpha: np.ndarray  # the subject's alpha placed in the output frame (uint8)
    image: Image.Image
    data: bytes  # the file as written
    encoding: dict  # {"quality", "downscaled_to"} from encode_within_limits

    @property
    def size(self) -> list[int]:
        """The written file's pixel size (smaller than the preset's when downscaled to fit kb_max)."""
        return list(self.encoding["downscaled_to"] or self.image.size)


def _warp(arr: np.ndarray, m: np.ndarray, size: tuple[int, int], border) -> np.ndarray:
    """Affine warp; a large reduction is box-filtered first so no detail aliases."""
    s = m[0, 0]
    if s < 0.5:
        small = cv2.resize(arr, None, fx=s * 2, fy=s * 2, interpolation=cv2.INTER_AREA)
        m = m.copy()
        m[:, :2] /= s * 2
        arr = small
    interp = cv2.INTER_CUBIC if m[0, 0] > 1.0 else cv2.INTER_LINEAR
    out = cv2.warpAffine(arr, m, size, flags=interp, borderMode=cv2.BORDER_CONSTANT, borderValue=border)
    return out


def render_over(
    rgb: np.ndarray, alpha: np.ndarray, m: np.ndarray, size: tuple[int, int], colour: tuple[int, int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """The subject over ``colour``, placed by ``m``, and the placed alpha. Composited *before* it is
    resampled: compositing is linear in (alpha x colour, alpha), so this equals resampling
    premultiplied colour and alpha, and no colour of the old background (which transparent pixels
    still hold) can leak into the edge pixels of a downscaled photo."""
    composed = pp.over_background(rgb, alpha, colour)
    return _warp(composed, m, size, tuple(int(c) for c in colour)), _warp(alpha, m, size, 0)


def encode_photo(composed: np.ndarray, alpha: np.ndarray, spec, options) -> Rendered:
    """The rendered pixels as the file to write, at the preset's DPI, within the KB limits."""
    image = Image.fromarray(composed, "RGB")
    kb_min, kb_max = options.limits_kb
    data, encoding = encode_within_limits(image, options.format, spec.dpi, kb_min, kb_max)
    return Rendered(composed=composed, alpha=alpha, image=image, data=data, encoding=encoding)


def encode_within_limits(
    img: Image.Image, fmt: str, dpi: int, kb_min: float | None, kb_max: float | None
) -> tuple[bytes, dict]:
    """JPEG: the highest quality (binary search, 40-95) whose file fits kb_max; if even quality 40
    does not fit, downscale in 10 % steps. Under kb_min: quality up to 100 with no chroma
    subsampling. Never pads the file with junk bytes; a limit that cannot be met is reported."""
    info: dict = {"quality": None, "downscaled_to": None}

    def jpeg(image: Image.Image, q: int, subsampling: int = 2) -> bytes:
        buf = io.BytesIO()
        image.save(buf, "JPEG", quality=q, dpi=(dpi, dpi), subsampling=subsampling, optimize=True)
        return buf.getvalue()

    if fmt == "png":
        buf = io.BytesIO()
        img.save(buf, "PNG", dpi=(dpi, dpi), optimize=True)
        return buf.getvalue(), info
    if fmt != "jpeg":
        raise ConfigError(f"ID photos are written as jpeg or png, not {fmt!r}")
    limit = kb_max * 1024 if kb_max else None
    data = jpeg(img, 95)
    info["quality"] = 95
    if limit and len(data) > limit:
        lo, hi, best = 40, 94, None
        while lo <= hi:
            q = (lo + hi) // 2
            candidate = jpeg(img, q)
            if len(candidate) <= limit:
                best, lo = (q, candidate), q + 1
            else:
                hi = q - 1
        if best:
            info["quality"], data = best
        else:
            image = img
            while len(data) > limit and image.width > 64:
                image = image.resize((round(image.width * 0.9), round(image.height * 0.9)), Image.Resampling.LANCZOS)
                data = jpeg(image, 40)
            info["quality"], info["downscaled_to"] = 40, list(image.size)
    if kb_min and len(data) < kb_min * 1024:
        for q, sub in ((97, 2), (100, 2), (100, 0)):
            candidate = jpeg(img, q, sub)
            if not limit or len(candidate) <= limit:
                data, info["quality"] = candidate, q
            if len(data) >= kb_min * 1024:
                break
    return data, info
