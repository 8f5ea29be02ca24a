"""Every case of the ID-photo evaluation set gets the passport office's verdict, refused by the rule
that should refuse it; and the output-side checks on synthetic mattes."""

from __future__ import annotations

import numpy as np
import pytest
from idphoto.eval_set import CASES, run_case
from matting.idphoto.measure import shoulders, stray_share


@pytest.fixture(scope="module")
def id_engine(model_store):
    from matting.engine import Engine

    return Engine(scenario="id_photo", store=model_store)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_verdict_matches_the_passport_office(case, id_engine):
    result = run_case(case, id_engine)
    assert result["accept"] == case.accept, (case.why, result["reasons"])
    if not case.accept:
        assert set(case.caught_by) & set(result["failed"]), (case.caught_by, result["failed"])
        assert result["reasons"] and all(result["reasons"])  # a plain-language reason, always


def test_a_piece_of_someone_else_left_by_the_matte_is_counted():
    alpha = np.zeros((400, 300), np.uint8)
    alpha[120:400, 60:240] = 255  # the subject, head and shoulders
    assert stray_share(alpha) == (0.0, 0)
    alpha[300:360, 0:25] = 255  # another person's elbow at the edge, not joined to the subject
    share, pieces = stray_share(alpha)
    assert pieces == 1 and share == pytest.approx(60 * 25 / alpha.size)


def test_shoulders_present_and_their_line():
    alpha = np.zeros((400, 300), np.uint8)
    alpha[40:260, 90:210] = 255  # a head only
    share, _ = shoulders(alpha, chin_y=250)
    assert share == 0.0
    alpha[300:, 10:290] = 255  # shoulders across the bottom
    share, tilt = shoulders(alpha, chin_y=250)
    assert share > 0.9 and tilt == 0.0
