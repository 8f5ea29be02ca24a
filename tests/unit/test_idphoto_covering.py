"""Head coverings (ISO/IEC 29794-5 NoHeadCoverings): a hat or cap is refused with its reason, the
crown is the head's (not the hat's), a brim over the temples in a colour no hair has and a covering that
wraps the head are held for a person, hats never seen while the limits were set are caught, and every
bare head of the evaluation set keeps its verdict (test_idphoto_eval.py runs those)."""

from __future__ import annotations

import numpy as np
import pytest
from idphoto.degrade_hats import BRIM_CASES, HAT_CASES, HELD_OUT, KNOWN_MISSES, MissingStamp, covering_outcome, stamp
from idphoto.degraded import CAST_DIRECTIONS
from idphoto.eval_set import CASES, run_case
from matting.idphoto.covering import COVERING_SHARE, UNNATURAL_SHARE, Covering, covering_rule, unnatural_share
from matting.idphoto.photo import lab
from matting.idphoto.rules import judge
from matting.idphoto.specs import get_spec

BARE = [c for c in CASES if c.person != "Hopper" and c.derive is None and "two people" not in c.name]


@pytest.mark.parametrize("case", HAT_CASES, ids=[c.name for c in HAT_CASES])
def test_a_hat_or_cap_is_refused_for_it_and_the_head_placed_by_its_crown(case, id_engine):
    result = run_case(case, id_engine)
    assert result["verdict"] == "refuse" and "head_covering" in result["failed"], result["reasons"]
    assert any("remove the hat or cap" in r for r in result["reasons"])
    # placed and measured from the anatomical crown: the head ratio is inside the preset's band
    band = get_spec(case.spec).head_ratio
    if band is not None:
        assert band[0] <= result["values"]["head_ratio"] <= band[1], result["values"]


@pytest.mark.parametrize("case", BRIM_CASES, ids=[c.name for c in BRIM_CASES])
def test_a_brim_over_the_temples_is_never_certified(case, id_engine):
    """The hair beside the temples is under the brim too; the hat's colour is one no hair has: refused
    for the hat, or held for a person who tells a hat from dyed hair."""
    result = run_case(case, id_engine)
    assert covering_outcome(result) in ("refused", "held"), (result["failed"], result["borderline"])
    assert result["verdict"] != "accept"


@pytest.mark.parametrize("case", BARE, ids=[c.name for c in BARE])
def test_no_bare_head_is_taken_for_a_hat(case, id_engine):
    result = run_case(case, id_engine)
    assert "head_covering" not in result["failed"] + result["borderline"]
    assert result["values"]["head_covering"] <= COVERING_SHARE


def _covering_input(case, engine, monkeypatch):
    """The (rgb, mesh, alpha) the covering measure sees on the source of ``case``."""
    from matting.idphoto import place
    from matting.idphoto.covering import find_covering

    seen = []

    def keep(rgb, mesh, alpha):
        seen.append((rgb.copy(), mesh, alpha.copy()))
        return find_covering(rgb, mesh, alpha)

    monkeypatch.setattr(place, "find_covering", keep)
    run_case(case, engine)
    assert len(seen) == 1, len(seen)  # placed once, from the source
    return seen[0]


MOVES = (-0.04, -0.02, 0.02, 0.04)  # face heights (forehead to chin): 3-4 px on the sample's 100 px face


def _scores_with_the_mesh_moved(case, engine, monkeypatch):
    """head_covering's score on the source with the eye line alone, then the whole mesh, moved up and
    down by ``MOVES`` (what a mesh that lands a little off does to the temple band: on a face with its
    eyes painted over the eye line moved 3 px and a bare head had reached the limit)."""
    import dataclasses

    from matting.idphoto.covering import find_covering
    from matting.idphoto.mesh import CHIN, FOREHEAD

    rgb, mesh, alpha = _covering_input(case, engine, monkeypatch)
    height = float(mesh.pt(CHIN)[1] - mesh.pt(FOREHEAD)[1])
    scores = []
    for move in MOVES:
        dy = move * height
        iris = {side: (x, y + dy, r) for side, (x, y, r) in mesh.iris.items()}
        points = mesh.points.copy()
        points[:, 1] += dy
        for changed in (dataclasses.replace(mesh, iris=iris), dataclasses.replace(mesh, points=points)):
            scores.append(find_covering(rgb, changed, alpha).score)
    return scores


@pytest.mark.parametrize("name", ["astronaut", "hand over the mouth", "eyes closed", "Obama, official portrait"])
def test_a_mesh_a_little_off_does_not_make_a_bare_head_a_hat(name, id_engine, monkeypatch):
    case = next(c for c in CASES if c.name == name)
    scores = _scores_with_the_mesh_moved(case, id_engine, monkeypatch)
    assert max(scores) <= COVERING_SHARE, scores


def test_a_mesh_a_little_off_still_sees_the_cap(id_engine, monkeypatch):
    scores = _scores_with_the_mesh_moved(HAT_CASES[0], id_engine, monkeypatch)  # Hopper's uniform cap
    assert min(scores) > COVERING_SHARE, scores


@pytest.mark.parametrize("sides", [("left", "right"), ("left",)])
def test_a_covering_down_both_sides_of_the_face_is_a_wrap(sides, id_engine, monkeypatch):
    """A cap (the baseball cap on Obama: refused as a hat) whose colour is painted beside the cheeks, from
    below the temples to the chin (a scarf's fall, the hair at the temples still showing): on both sides
    a "wrap", held for a person, never refused as a hat; on one side only, still a hat. (A scarf that
    also covers the temples is their colour: it reads as bare, or as a colour no hair has; docs.)"""
    from matting.idphoto.covering import TEMPLE_REACH, TEMPLE_TO, find_covering
    from matting.idphoto.mesh import CHIN, FACE_SIDES, FOREHEAD

    case = next(c for c in HAT_CASES if c.name.startswith("Obama, baseball cap (1.05"))
    rgb, mesh, alpha = _covering_input(case, id_engine, monkeypatch)
    assert find_covering(rgb, mesh, alpha).kind == "hat"
    top, chin = mesh.pt(FOREHEAD), mesh.pt(CHIN)
    left, right = mesh.pt(FACE_SIDES[0])[0], mesh.pt(FACE_SIDES[1])[0]
    eye = float(np.mean([c[1] for c in mesh.eye_centres]))
    reach = (right - left) * TEMPLE_REACH
    cap = np.median(rgb[int(top[1] - 0.25 * (chin[1] - top[1])), int(left) : int(right)], axis=0)
    # from a little below the temple band (its colour resized into the band would make it the hair's)
    y0, y1 = int(top[1] + TEMPLE_TO * (eye - top[1]) + 0.03 * (chin[1] - top[1])), int(chin[1])
    columns = {"left": (int(left - reach), int(left)), "right": (int(right) + 1, int(right + reach) + 1)}
    for side in sides:
        x0, x1 = columns[side]
        rgb[y0:y1, x0:x1] = cap.astype(np.uint8)
        alpha[y0:y1, x0:x1] = 255  # the scarf is the subject
    covering = find_covering(rgb, mesh, alpha)
    if len(sides) == 2:
        assert covering.kind == "wrap" and covering.wrap_share >= 0.5, covering
        row = judge([covering_rule(covering)])[0]
        assert row["passed"] and row["review"] and "office decides" in row["message"]
    else:
        assert covering.kind == "hat", covering


def test_hats_never_seen_while_tuning_are_caught(id_engine):
    """Held out (Biden, and three other stamps on three people): of the composites whose face was found,
    at least two thirds refused or held by head_covering; none certified. Measured: docs/id-photos.md."""
    outcomes = [(case.name, run_case(case, id_engine)) for case in HELD_OUT]
    seen = [(name, covering_outcome(r)) for name, r in outcomes if covering_outcome(r) != "no face"]
    caught = [name for name, how in seen if how in ("refused", "held")]
    assert len(seen) >= len(HELD_OUT) * 2 // 3, seen  # the hats mostly leave the face to be found
    assert len(caught) >= 2 * len(seen) / 3, [s for s in seen if s[0] not in caught]
    assert not [name for name, r in outcomes if r["verdict"] == "accept"]


HAIR = (
    (20, 18, 16),  # black
    (30, 32, 48),  # blue-black
    (60, 40, 25),  # dark brown
    (110, 75, 40),  # brown
    (200, 170, 110),  # blond
    (240, 230, 200),  # platinum blond
    (150, 60, 30),  # ginger
    (170, 170, 165),  # grey
    (235, 235, 230),  # white
)


def _share(rgb):
    return unnatural_share(lab(np.full((4, 4, 3), np.clip(rgb, 0, 255), np.uint8)).reshape(-1, 3))


def test_colours_hair_does_not_have():
    """Black, browns, blonds, red, grey and white hair are hair colours; blue, green, purple and pink are not."""
    for hair in HAIR:
        assert _share(hair) == 0.0, hair
    for dye in (
        (30, 40, 120),  # blue
        (40, 120, 40),  # green
        (120, 40, 160),  # purple
        (230, 80, 170),  # pink
        (100, 110, 60),  # olive (hue 115; brown hair under a 5 % green cast reaches ~108)
        (200, 90, 130),  # rose (hue -1: below red hair's 42-45)
        (220, 130, 150),  # old rose (hue 7, chroma 37)
    ):
        assert _share(dye) == 1.0, dye
    assert 0 < UNNATURAL_SHARE < 0.5


@pytest.mark.parametrize("direction", sorted(CAST_DIRECTIONS))
def test_hair_under_a_mild_colour_cast_is_still_hair(direction):
    """A 5 % cast (white balance, a filter) is what the photograph's rules accept (degraded.py labels it
    acceptable): under it every hair colour stays one hair has. Stronger casts move some (a 10 % green
    cast: blond and platinum; 15 % green or magenta: grey, white, platinum) into a colour hair does not
    have, which the head-covering rule only ever holds for a person (docs/id-photos.md)."""
    gains = 1.0 + 0.05 * np.array(CAST_DIRECTIONS[direction])
    assert [hair for hair in HAIR if _share(np.array(hair) * gains) > 0] == []


def test_hopper_is_measured_from_her_head_not_her_cap(id_engine):
    """Under the cap the crown is estimated: the cap's top is well above it in the final photo."""
    result = run_case(HAT_CASES[0], id_engine)
    assert result["values"]["head_covering"] > COVERING_SHARE
    # the cap's top (the matte's first row) is above the measured crown by a good share of the photo
    assert result["values"]["top_margin_ratio"] > 0.05


def test_a_covering_that_wraps_the_head_goes_to_a_person_never_passes():
    wrap = Covering(0.6, "wrap", 10.0, 0.0, 10.0, 0.8)
    row = judge([covering_rule(wrap)])[0]
    assert row["passed"] and row["borderline"] and row["review"] and "office decides" in row["message"]
    dyed = judge([covering_rule(Covering(0.1, "unnatural", 10.0, 0.0, 10.0, 0.0, 0.9))])[0]
    assert dyed["passed"] and dyed["borderline"] and dyed["review"] and "a person decides" in dyed["message"]
    hat = judge([covering_rule(Covering(0.6, "hat", 10.0, 0.0, 10.0))])[0]
    assert not hat["passed"] and "remove the hat or cap" in hat["message"]
    bare = judge([covering_rule(Covering(0.05, "none", 0.0, 0.0, 10.0))])[0]
    assert bare["passed"] and not bare.get("borderline") and not bare["message"]


def test_a_missing_stamp_fails_loudly(monkeypatch):
    from idphoto import degrade_hats

    monkeypatch.setattr(degrade_hats, "STAMPS", degrade_hats.STAMPS / "nowhere")
    with pytest.raises(MissingStamp, match="tuxpaint-stamps-default"):
        stamp("top hat")
    assert np.asarray(degrade_hats.HATS["top hat"][1]) > 0


@pytest.mark.parametrize("case", KNOWN_MISSES, ids=[c.name for c in KNOWN_MISSES])
@pytest.mark.xfail(strict=True, reason="a black brim over the temples on dark hair: one material to a colour measure")
def test_known_misses_black_top_hats_on_dark_hair(case, id_engine):
    """Refused by any office; not seen by our measure. Strict: a better measure must move them up."""
    assert covering_outcome(run_case(case, id_engine)) in ("refused", "held")
