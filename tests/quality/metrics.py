"""Matte quality against ground truth: the metrics matting papers and benchmarks report.

Definitions follow alphamatting.com (Rhemann et al., CVPR 2009) as used by Composition-1k (Xu et al.,
"Deep Image Matting", CVPR 2017) and its public evaluation code, computed here over the **whole image**
(a cut-out's errors far from the edge count too: a missed region is the worst thing a user sees).
Alphas are float arrays in [0, 1] (uint8 inputs are divided by 255).

- ``sad``: sum of absolute differences / 1000
- ``mse``: mean squared error (reported x 1e3 by convention; the function returns the raw mean)
- ``gradient_error``: sum of squared differences of the gradient magnitudes (first derivatives of a
  Gaussian, sigma 1.4) / 1000 -- high for blurry or jagged edges
- ``connectivity_error``: the Rhemann et al. connectivity term (thresholds in steps of 0.1, largest
  connected component of the agreeing foreground, theta 0.15) / 1000 -- high for pieces of alpha that are
  cut off from the subject
- ``iou``: intersection over union of the two masks at 0.5
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np


def as_alpha(a: np.ndarray) -> np.ndarray:
    """uint8 0..255 or float 0..1 -> float64 0..1."""
    a = np.asarray(a)
    if a.dtype == np.uint8:
        return a.astype(np.float64) / 255.0
    return np.clip(a.astype(np.float64), 0.0, 1.0)


def sad(pred: np.ndarray, gt: np.ndarray) -> float:
    return float(np.abs(as_alpha(pred) - as_alpha(gt)).sum() / 1000.0)


def mse(pred: np.ndarray, gt: np.ndarray) -> float:
    return float(((as_alpha(pred) - as_alpha(gt)) ** 2).mean())


def _gaussian_kernels(sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """1-D Gaussian and its first derivative, truncated at 4 sigma (the derivative-of-Gaussian filter
    of the reference gradient error)."""
    radius = int(np.ceil(4.0 * sigma))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    g = np.exp(-(x**2) / (2.0 * sigma**2))
    g /= g.sum()
    dg = -x / sigma**2 * g
    return g.astype(np.float32), dg.astype(np.float32)


def _gradient_magnitude(a: np.ndarray, sigma: float) -> np.ndarray:
    g, dg = _gaussian_kernels(sigma)
    a32 = a.astype(np.float32)
    gx = cv2.sepFilter2D(a32, cv2.CV_32F, dg[::-1], g, borderType=cv2.BORDER_REPLICATE)
    gy = cv2.sepFilter2D(a32, cv2.CV_32F, g, dg[::-1], borderType=cv2.BORDER_REPLICATE)
    return cv2.magnitude(gx, gy)


def gradient_error(pred: np.ndarray, gt: np.ndarray, sigma: float = 1.4) -> float:
    p, g = as_alpha(pred), as_alpha(gt)
    diff = _gradient_magnitude(p, sigma) - _gradient_magnitude(g, sigma)
    return float(np.square(diff, dtype=np.float64).sum() / 1000.0)


def _largest_component(binary: np.ndarray) -> np.ndarray:
    count, labels, stats, _ = cv2.connectedComponentsWithStats(binary.astype(np.uint8), connectivity=4)
    if count <= 1:
        return np.zeros(binary.shape, bool)
    return labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))


def connectivity_error(pred: np.ndarray, gt: np.ndarray, step: float = 0.1, theta: float = 0.15) -> float:
    p, g = as_alpha(pred), as_alpha(gt)
    # where both are 0 the term is 0 (phi = 1 on both sides): work inside the box of either's alpha
    ys, xs = np.nonzero((p > 0) | (g > 0))
    if ys.size == 0:
        return 0.0
    box = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
    p, g = p[box].astype(np.float32), g[box].astype(np.float32)
    levels = np.arange(0.0, 1.0 + step / 2, step)
    level_map = np.full(p.shape, -1.0, np.float32)
    for i in range(1, len(levels)):
        omega = _largest_component((p >= levels[i]) & (g >= levels[i]))
        fresh = (level_map == -1.0) & ~omega
        level_map[fresh] = levels[i - 1]
    level_map[level_map == -1.0] = 1.0
    dp, dg = p - level_map, g - level_map
    phi_p = 1.0 - dp * (dp >= theta)
    phi_g = 1.0 - dg * (dg >= theta)
    return float(np.abs(phi_p - phi_g).sum(dtype=np.float64) / 1000.0)


def iou(pred: np.ndarray, gt: np.ndarray, level: float = 0.5) -> float:
    p, g = as_alpha(pred) >= level, as_alpha(gt) >= level
    union = int((p | g).sum())
    return float((p & g).sum() / union) if union else 1.0


@dataclass(frozen=True)
class MatteScores:
    sad: float
    mse: float
    grad: float
    conn: float
    iou: float

    def to_dict(self) -> dict:
        return asdict(self)


def score(pred: np.ndarray, gt: np.ndarray, connectivity: bool = True) -> MatteScores:
    """Every metric for one predicted alpha against its ground truth (same shape)."""
    if np.shape(pred) != np.shape(gt):
        raise ValueError(f"prediction {np.shape(pred)} and ground truth {np.shape(gt)} differ in shape")
    p, g = as_alpha(pred), as_alpha(gt)
    return MatteScores(
        sad=sad(p, g),
        mse=mse(p, g),
        grad=gradient_error(p, g),
        conn=connectivity_error(p, g) if connectivity else float("nan"),
        iou=iou(p, g),
    )
