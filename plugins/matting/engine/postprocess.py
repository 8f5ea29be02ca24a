"""Mask refinement and composition stages. Each takes and returns uint8 arrays, full resolution,
and keeps memory flat on large images: heavy float work runs on a bounded-size copy or in row blocks.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from matting.engine.scenarios import Scenario

ROW_BLOCK = 512  # rows per block for full-resolution float arithmetic


def _fit_size(width: int, height: int, max_pixels: int) -> tuple[int, int]:
    scale = min(1.0, math.sqrt(max_pixels / float(width * height)))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _ellipse(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def keep_largest_region(alpha: np.ndarray, level: int = 128) -> np.ndarray:
    """Zero every connected foreground region except the largest one."""
    binary = (alpha >= level).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    if count <= 2:
        return alpha
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    keep = (labels == largest).astype(np.uint8)
    # keep the soft fringe around the kept region, not around the dropped ones
    keep = cv2.dilate(keep, _ellipse(3))
    return cv2.bitwise_and(alpha, alpha, mask=keep)


def alpha_matting_refine(rgb: np.ndarray, alpha: np.ndarray, sc: Scenario) -> np.ndarray:
    """pymatting closed-form matting on a trimap from the mask; computed at bounded size."""
    from pymatting import estimate_alpha_cf

    h, w = alpha.shape
    sw, sh = _fit_size(w, h, sc.am_max_pixels)
    small_rgb = cv2.resize(rgb, (sw, sh), interpolation=cv2.INTER_AREA) if (sw, sh) != (w, h) else rgb
    small_a = cv2.resize(alpha, (sw, sh), interpolation=cv2.INTER_AREA) if (sw, sh) != (w, h) else alpha
    fg = small_a > sc.am_fg_threshold
    bg = small_a < sc.am_bg_threshold
    if sc.am_erode > 0:
        kernel = _ellipse(max(1, round(sc.am_erode * sw / w)))
        fg = cv2.erode(fg.astype(np.uint8), kernel).astype(bool)
        bg = cv2.erode(bg.astype(np.uint8), kernel).astype(bool)
    if not fg.any() or not bg.any():
        return alpha  # nothing sure on one side: refinement has no anchor
    trimap = np.full(small_a.shape, 0.5, dtype=np.float64)
    trimap[fg] = 1.0
    trimap[bg] = 0.0
    refined = estimate_alpha_cf(small_rgb.astype(np.float64) / 255.0, trimap)
    refined = np.clip(refined * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if (sw, sh) != (w, h):
        refined = cv2.resize(refined, (w, h), interpolation=cv2.INTER_LINEAR)
        # keep the full-resolution mask where it was sure; use the refinement only in the unsure band
        sure = (alpha > sc.am_fg_threshold) | (alpha < sc.am_bg_threshold)
        refined = np.where(sure, alpha, refined)
    return refined


def refine_alpha(rgb: np.ndarray, alpha: np.ndarray, sc: Scenario) -> np.ndarray:
    """Apply the scenario's mask operations in their documented order."""
    if sc.alpha_matting:
        alpha = alpha_matting_refine(rgb, alpha, sc)
    if sc.threshold is not None:
        alpha = np.where(alpha >= round(sc.threshold * 255), 255, 0).astype(np.uint8)
    elif sc.levels is not None:
        lo, hi = (round(v * 255) for v in sc.levels)
        lut = np.clip((np.arange(256, dtype=np.float32) - lo) * (255.0 / max(1, hi - lo)), 0, 255)
        alpha = cv2.LUT(alpha, lut.round().astype(np.uint8))
    if sc.keep_largest:
        alpha = keep_largest_region(alpha)
    if sc.erode > 0:
        alpha = cv2.erode(alpha, _ellipse(sc.erode))
    if sc.feather > 0:
        alpha = cv2.GaussianBlur(alpha, (0, 0), sigmaX=sc.feather)
    return alpha


def blur_fusion_foreground(image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Foreground colours by blur fusion (Forte & Pitie, "Approximate Fast Foreground Colour
    Estimation", ICIP 2021): a large then a small local-mean pass. float32 HxWx3 and HxW in [0, 1]."""
    a = alpha[..., None]

    def one_pass(fg: np.ndarray, bg: np.ndarray, r: int) -> tuple[np.ndarray, np.ndarray]:
        blur_a = cv2.blur(alpha, (r, r))[..., None]
        blur_f = cv2.blur(fg * a, (r, r)) / (blur_a + 1e-5)
        blur_b = cv2.blur(bg * (1.0 - a), (r, r)) / ((1.0 - blur_a) + 1e-5)
        out = blur_f + a * (image - a * blur_f - (1.0 - a) * blur_b)
        return np.clip(out, 0.0, 1.0), blur_b

    fg, blur_b = one_pass(image, image, 90)
    return one_pass(fg, blur_b, 6)[0]


def _ml_foreground(image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    from pymatting import estimate_foreground_ml

    return estimate_foreground_ml(image.astype(np.float64), alpha.astype(np.float64))


FOREGROUND_ESTIMATORS = {"blur_fusion": blur_fusion_foreground, "ml": _ml_foreground}


def estimate_foreground(rgb: np.ndarray, alpha: np.ndarray, max_pixels: int, method: str = "ml") -> np.ndarray:
    """Return rgb with edge pixels (0 < alpha < 255) replaced by their estimated true foreground colour.

    Runs the estimator (``blur_fusion`` or pymatting's multilevel ``ml``) on the bounding box of the
    unsure band, at most at ``max_pixels``; opaque pixels keep their exact colours, so detail away
    from edges is untouched.
    """
    estimator = FOREGROUND_ESTIMATORS[method]
    unsure = (alpha > 0) & (alpha < 255)
    if not unsure.any():
        return rgb
    ys, xs = np.nonzero(unsure.any(axis=1))[0], np.nonzero(unsure.any(axis=0))[0]
    pad = 16
    y0, y1 = max(0, ys[0] - pad), min(alpha.shape[0], ys[-1] + pad + 1)
    x0, x1 = max(0, xs[0] - pad), min(alpha.shape[1], xs[-1] + pad + 1)
    crop_rgb, crop_a = rgb[y0:y1, x0:x1], alpha[y0:y1, x0:x1]
    h, w = crop_a.shape
    sw, sh = _fit_size(w, h, max_pixels)
    if (sw, sh) != (w, h):
        small_rgb = cv2.resize(crop_rgb, (sw, sh), interpolation=cv2.INTER_AREA)
        small_a = cv2.resize(crop_a, (sw, sh), interpolation=cv2.INTER_AREA)
    else:
        small_rgb, small_a = crop_rgb, crop_a
    fg = estimator(small_rgb.astype(np.float32) / 255.0, small_a.astype(np.float32) / 255.0)
    fg8 = np.clip(fg * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if (sw, sh) != (w, h):
        fg8 = cv2.resize(fg8, (w, h), interpolation=cv2.INTER_LINEAR)
    out = rgb.copy()
    band = unsure[y0:y1, x0:x1]
    out[y0:y1, x0:x1][band] = fg8[band]
    return out


def cutout_rgba(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """H x W x 4 RGBA; colour under fully transparent pixels is zeroed (smaller files, no hidden content)."""
    visible = cv2.threshold(alpha, 0, 255, cv2.THRESH_BINARY)[1]
    return cv2.merge([*cv2.split(cv2.bitwise_and(rgb, rgb, mask=visible)), alpha])


def over_background(rgb: np.ndarray, alpha: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    """Alpha-composite over a solid colour, in row blocks so float temporaries stay small."""
    out = np.empty_like(rgb)
    for y in range(0, alpha.shape[0], ROW_BLOCK):
        fg = rgb[y : y + ROW_BLOCK]
        w = alpha[y : y + ROW_BLOCK].astype(np.float32)
        w *= 1.0 / 255.0
        bg = np.empty_like(fg)
        bg[:] = colour
        out[y : y + ROW_BLOCK] = cv2.blendLinear(fg, bg, w, 1.0 - w)
    return out
