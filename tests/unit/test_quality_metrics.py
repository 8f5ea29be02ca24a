"""The matting metrics (tests/quality/metrics.py) on cases whose values are known by hand."""

from __future__ import annotations

import numpy as np
import pytest
from quality import metrics as q


def _disc(size=64, r=20, cx=32, cy=32) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    return (((xx - cx) ** 2 + (yy - cy) ** 2) <= r * r).astype(np.float64)


def test_identical_alphas_score_zero_and_iou_one():
    gt = _disc()
    s = q.score(gt, gt)
    assert (s.sad, s.mse, s.conn, s.iou) == (0.0, 0.0, 0.0, 1.0)
    assert s.grad == pytest.approx(0.0, abs=1e-12)  # float32 filtering


def test_sad_and_mse_by_hand():
    gt = np.zeros((10, 10))
    pred = np.zeros((10, 10))
    pred[:2, :5] = 1.0  # 10 pixels wrong by 1
    pred[5, 5] = 0.5  # one pixel wrong by 0.5
    assert q.sad(pred, gt) == pytest.approx(10.5 / 1000)
    assert q.mse(pred, gt) == pytest.approx((10 * 1.0 + 0.25) / 100)


def test_uint8_and_float_agree():
    gt = _disc()
    pred = np.roll(gt, 3, axis=1)
    as_uint8 = q.score((pred * 255).astype(np.uint8), (gt * 255).astype(np.uint8)).to_dict()
    as_float = q.score(pred, gt).to_dict()
    assert as_uint8 == pytest.approx(as_float, rel=1e-6)  # float32 filtering: not bit-identical


def test_gradient_error_equals_the_gaussian_derivative_definition():
    """The fast OpenCV filter gives the reference (scipy's Gaussian first derivative, sigma 1.4)."""
    from scipy.ndimage import gaussian_filter

    gt = _disc(size=80, r=25, cx=40, cy=40)
    pred = np.roll(gt, 4, axis=0) * 0.9

    def magnitude(a):
        gx = gaussian_filter(a, 1.4, order=(0, 1), mode="nearest")
        gy = gaussian_filter(a, 1.4, order=(1, 0), mode="nearest")
        return np.hypot(gx, gy)

    want = ((magnitude(pred) - magnitude(gt)) ** 2).sum() / 1000.0
    assert q.gradient_error(pred, gt) == pytest.approx(want, rel=1e-4)


def test_gradient_error_sees_blur_not_a_constant_offset():
    import cv2

    gt = _disc()
    soft, softer = (cv2.GaussianBlur(gt, (0, 0), s) for s in (1.0, 3.0))
    assert q.gradient_error(softer, gt) > q.gradient_error(soft, gt) > 0.0005
    # a constant offset has the same gradients: no gradient error, but SAD and MSE see it
    offset = np.clip(gt * 0.8 + 0.1, 0, 1)
    flat = np.full_like(gt, 0.3)
    assert q.gradient_error(flat + 0.2, flat) == pytest.approx(0.0, abs=1e-12)
    assert q.mse(offset, gt) > 0


def test_connectivity_punishes_a_detached_piece_more_than_an_attached_one():
    gt = _disc(size=96, r=20, cx=40, cy=48)
    attached = gt.copy()
    attached[44:52, 60:70] = 1.0  # a bump grown out of the disc
    detached = gt.copy()
    detached[44:52, 80:90] = 1.0  # the same area, floating apart
    assert q.sad(attached, gt) == pytest.approx(q.sad(detached, gt), rel=0.3)
    assert q.connectivity_error(detached, gt) > q.connectivity_error(attached, gt)


def test_iou_at_half():
    gt = np.zeros((4, 4))
    gt[:2] = 1.0
    pred = np.zeros((4, 4))
    pred[:1] = 0.9
    pred[1] = 0.4  # below the 0.5 level
    assert q.iou(pred, gt) == pytest.approx(0.5)


def test_shapes_must_match():
    with pytest.raises(ValueError, match="shape"):
        q.score(np.zeros((4, 4)), np.zeros((4, 5)))


def test_connectivity_equals_the_reference_definition():
    """The cropped float32 implementation gives the whole-image reference (Rhemann et al.'s connectivity
    as in the Composition-1k evaluation code, written out plainly here)."""
    import cv2
    from skimage.measure import label

    rng = np.random.default_rng(1)
    gt = cv2.GaussianBlur(_disc(size=96, r=24, cx=40, cy=50), (0, 0), 2.0)
    pred = np.clip(gt + rng.normal(0, 0.05, gt.shape), 0, 1)
    pred[10:20, 70:85] = 0.8  # a detached blob

    def reference(p, g, step=0.1):
        levels = np.arange(0, 1 + step, step)
        lmap = np.ones_like(p) * -1
        for i in range(1, len(levels)):
            both = (p >= levels[i]) & (g >= levels[i])
            lab = label(both, connectivity=1)
            largest = (lab == np.argmax(np.bincount(lab.flat)[1:]) + 1) if lab.max() else np.zeros_like(both)
            lmap[(lmap == -1) & ~largest] = levels[i - 1]
        lmap[lmap == -1] = 1
        dp, dg = p - lmap, g - lmap
        return np.abs((1 - dp * (dp >= 0.15)) - (1 - dg * (dg >= 0.15))).sum() / 1000

    assert q.connectivity_error(pred, gt) == pytest.approx(reference(pred, gt), rel=1e-4)
