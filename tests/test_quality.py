"""`make quality` end to end on two real composites: the Debian ground truth fetches and verifies, the
harness scores our engine and rembg in one run, and with the same weights they agree (parity), while a
deliberately wrong matte scores worse on every metric."""

from __future__ import annotations

import numpy as np
import pytest
from quality.data import CUTOUTS, compose
from quality.run import measure, summarise, tables


@pytest.fixture(scope="module")
def rows(model_store):
    return measure(["u2netp"], ["default"], ["native"], ["cello", "fireman200b"], rembg=["u2netp"])


def test_engine_and_rembg_agree_on_ground_truth(rows):
    by = {(r["image"], r["model"]): r for r in rows}
    assert set(by) == {(i, m) for i in ("cello", "fireman200b") for m in ("u2netp", "rembg u2netp")}
    for image in ("cello", "fireman200b"):
        ours, theirs = by[(image, "u2netp")], by[(image, "rembg u2netp")]
        assert ours["iou"] > 0.9 and theirs["iou"] > 0.9, (ours, theirs)
        assert ours["mse"] == pytest.approx(theirs["mse"], rel=0.2)
        assert ours["content"] == CUTOUTS[next(k for k in CUTOUTS if k.endswith(f"/{image}.png"))]
    text = tables(summarise(rows))
    assert "**people, native** (1 images)" in text and "| u2netp | default |" in text


def test_ground_truth_is_exact_and_a_wrong_matte_scores_worse():
    from quality.metrics import score

    comp = compose("hobbies/music/string/cello.png", 6, None)
    assert comp.rgb.shape[:2] == comp.alpha.shape and 0.0 < comp.alpha.mean() < 0.5
    assert score(comp.alpha, comp.alpha).mse == 0.0
    shifted = np.roll(comp.alpha, 6, axis=1)
    s = score(shifted, comp.alpha)
    assert s.mse > 0.005 and s.sad > 0 and s.grad > 0 and s.conn > 0 and s.iou < 0.95
    big = compose("hobbies/music/string/cello.png", 6, 3000)
    assert max(big.rgb.shape[:2]) == 3000 and big.alpha.shape == big.rgb.shape[:2]


def test_auto_is_scored_as_the_variant_it_routes_each_image_to(model_store):
    """The content-aware default in the harness: each image's auto row is the row of the model and
    scenario its route picked (a cello and a full-length fireman, whose small face is not sure: general)."""
    rows = measure(
        ["isnet-medium", "modnet"], ["auto", "general", "portrait"], ["native"], ["cello", "fireman200b"], []
    )
    by = {(r["image"], r["scenario"]): r for r in rows}
    for image in ("cello", "fireman200b"):
        auto = by[(image, "auto")]
        assert auto["model"] == "auto: isnet-medium"
        assert auto["mse"] == by[(image, "general")]["mse"] and auto["iou"] > 0.9
