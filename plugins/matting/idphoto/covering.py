"""Head coverings (ISO/IEC 29794-5 "NoHeadCoverings"): is the top of the matte above the forehead a hat?

OFIQ measures the share of head pixels a face-parsing net classes as "hat"; we have no such net. What
we measure instead, on the subject above the forehead:

- ``novel_colour_share``: the share whose colour is not common in the hair beside the temples (a colour
  counts as found there only when ``FOUND_SHARE`` of the temple pixels are near it: a hat's brim edge
  reaching the temples is not the hair). Hair on top of the head is the hair at the temples; a hat, cap
  or headband is another material. Above ``COVERING_SHARE``: refused as a hat (or held for a person
  when its colour also wraps down beside both cheeks).
- ``unnatural_share``: the share of a colour no hair grows in (saturated blue, green, purple, pink:
  hair's pigments give black, browns, blonds, reds and greys). Above ``UNNATURAL_SHARE`` with no novel
  colour (the same colour at the temples: a brim pulled over them, or hair dyed that colour), or no
  temples to compare with, the photo is held for a person, never passed.

When a covering is found the crown is not the top of the matte but the anatomical crown, estimated
from the face (``CROWN_ABOVE_FOREHEAD``). No Airflow import.

Limits (measured in docs/id-photos.md): a hat of a hair colour (black, brown, white, grey) whose brim
also covers the temples is not seen (top hats on dark hair); hair dyed two colours, or grey temples
under dark hair, may read as a hat; a headscarf, hijab or turban that also covers the temples reads as
bare (and can pass) unless its colour is one no hair has ("wrap" needs the temples' hair showing and the
covering beside the cheeks below them); a bald head compares skin with skin and reads as bare.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from matting.idphoto.mesh import CHIN, FACE_SIDES, FOREHEAD, Mesh
from matting.idphoto.photo import lab as photo_lab
from matting.idphoto.rules import rule

# Bare heads: mesh point 10 (top of the forehead) lies this many face heights (point 10 to chin) below
# the top of the hair on the evaluation set's frontal portraits: Collins 0.51, Biden 0.43, Obama 0.30
# (the median person); used as the crown when the top of the matte is a covering.
CROWN_ABOVE_FOREHEAD = 0.43
# A colour is "found" in the temples' hair when FOUND_SHARE of the temple pixels lie within this CIELAB
# distance (dE76): a few stray pixels (a brim's edge, a shadow) are not the hair (a few: with the
# usual 900-1000 temple pixels, 5; at the MIN_PIXELS floor one pixel is enough). 0.5 %: at 2 % the same
# hats were found, and blocky and pixelated copies of bare heads read as hats more often
NEAR_DE = 12.0
FOUND_SHARE = 0.005
LIGHTNESS_WEIGHT = 0.5
# novel colour share above this is a head covering: bare heads of the evaluation set 0.00-0.09 (0.21 with
# the whole mesh 4 px off), Hopper's uniform cap 0.46-0.48, the baseball-cap composites 0.92-1.00 (set at the
# midpoint of 0.106 and 0.453, bare heads and Hopper under the first temple band; kept)
COVERING_SHARE = 0.28
WRAP_SHARE = 0.5  # the covering's colour beside both cheeks, this share of their matte: it wraps the head
NORM_FACE_HEIGHT = 100  # measured on the face scaled to this many pixels from forehead to chin
# the hair beside the temples: rows from TEMPLE_FROM to TEMPLE_TO of the way from point 10 down to the eye
# line (from below a hat's band, which sits at the forehead's top, to about the nose), TEMPLE_REACH of a
# face width out from the cheeks. Ending at the eye line, a 3 px error in the mesh (a face with its eyes
# painted over) took a bare head to 0.28-0.32, at the limit; ending at 1.6, bare heads stay below 0.10
# (0.21 with the whole mesh moved 4 px up or down) and every hat's score is unchanged (docs/id-photos.md)
TEMPLE_FROM, TEMPLE_TO, TEMPLE_REACH = 0.3, 1.6, 0.25
# Colours hair has: near-neutral (black, blue-black, grey, white: chroma <= NEUTRAL_CHROMA) or the
# melanins' red to yellow hues (CIELAB hue angle within HAIR_HUES, degrees from -180 to 180; chroma <=
# HAIR_CHROMA: browns, blonds, a vivid ginger about chroma 50). The hair of the evaluation set lies at hue
# 46-91 as shot; the window and the neutral chroma take what a mild (5 %) colour cast, which the
# photograph rules accept, does to hair (a green cast takes the astronaut's brown hair up to hue ~108:
# 29 % of it past 100, 7 % past 105, none past 110; flat blond to hue 96 and platinum to chroma 24 at hue
# 116; magenta takes white hair to chroma 11 at hue -28). Anything else (blue, green, purple, pink,
# olive at 115, rose) is a dye or a hat; a desaturated blue or pink (chroma under 25) reads as grey, and
# khaki as blond. UNNATURAL_SHARE of the top of the head in such colours: bare heads 0.00-0.01, the blue
# and green fedoras 0.68-1.00; a quarter as the limit
NEUTRAL_CHROMA, HAIR_HUES, HAIR_CHROMA = 25.0, (15.0, 110.0), 70.0
UNNATURAL_SHARE = 0.25
MIN_PIXELS = 30  # fewer pixels in a region: nothing to compare, no covering claimed

SOURCE = (
    "ICAO 9303 part 3 / ISO/IEC 19794-5: no head coverings, except those worn for religious reasons "
    "(the face from the bottom of the chin to the top of the forehead and both edges of the face shown); "
    "US Department of State: no hats or head coverings, except religious or medical ones with a signed "
    "statement; ISO/IEC 29794-5 NoHeadCoverings. Measure: share of the subject above the forehead whose "
    "colour is not common in the hair beside the temples, and share in colours no hair has (ours)"
)
HAT_MESSAGE = "a hat or cap (or headband) covers the head: remove the hat or cap and retake"
DYED_MESSAGE = (
    "the top of the head is a colour hair does not grow in (blue, green, purple, pink): a hat (remove it and "
    "retake) or dyed hair (accepted): a person decides"
)
WRAP_MESSAGE = (
    "a head covering that wraps the head (a headscarf, hijab, turban?): allowed only when worn for religious "
    "or medical reasons, with the face from chin to forehead and both edges of the face shown: the office decides"
)


@dataclass(frozen=True)
class Covering:
    """What the top of the head is. ``score``: novel colour share above the forehead (0-1); ``kind``:
    "none", "hat" (hat, cap, headband: refused), "wrap" (also wraps the sides: a person decides) or
    "unnatural" (a colour no hair has, also at the temples: a brim over them, or dyed hair: a person
    decides); ``crown_y``: the crown to place and measure by (the matte's top when bare or "unnatural",
    the estimate for a hat or a wrap); ``unnatural``: the share of the top of the head in colours no hair has."""

    score: float
    kind: str
    crown_y: float
    matte_top_y: float
    anatomical_crown_y: float
    wrap_share: float = 0.0
    unnatural: float = 0.0

    def as_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def matte_top(alpha: np.ndarray, x0: float, x1: float, below: float) -> float | None:
    """Top row of the matte (alpha >= 128 on 5 % of the columns) between ``x0`` and ``x1``, above ``below``."""
    a, b = max(0, int(x0)), min(alpha.shape[1], int(np.ceil(x1)))
    band = alpha[: max(1, int(below)), a:b] >= 128
    if band.size == 0:
        return None
    rows = np.nonzero(band.mean(axis=1) >= 0.05)[0]
    return float(rows[0]) if rows.size else None


def anatomical_crown(mesh: Mesh) -> float:
    """The top of the head estimated from the face: ``CROWN_ABOVE_FOREHEAD`` face heights above point 10."""
    top, chin = mesh.pt(FOREHEAD)[1], mesh.pt(CHIN)[1]
    return float(top - CROWN_ABOVE_FOREHEAD * (chin - top))


def _at_most(colours: np.ndarray, n: int = 1500) -> np.ndarray:
    """``colours``, or a fixed random ``n`` of them (the distance matrix stays n x n)."""
    return colours[np.random.default_rng(0).choice(len(colours), n, replace=False)] if len(colours) > n else colours


def _rare(colours: np.ndarray, reference: np.ndarray, common: float, near: float = NEAR_DE) -> np.ndarray:
    """Which of ``colours`` (N x 3 Lab, at most 1500) have fewer than ``common`` of the ``reference``
    colours within ``near`` (with ``common`` 0: none at all)."""
    reference = _at_most(reference)
    close = ((colours[:, None, :] - reference[None, :, :]) ** 2).sum(axis=2) <= near * near
    return close.mean(axis=1) < common if common > 0 else ~close.any(axis=1)


def _novel(colours: np.ndarray, reference: np.ndarray, common: float = 0.0) -> float:
    """Share of ``colours`` (N x 3 Lab) that are ``_rare`` among ``reference``."""
    return float(_rare(_at_most(colours), reference, common).mean())


def unnatural_share(lab: np.ndarray) -> float:
    """Share of ``lab`` (N x 3, true CIELAB) in colours hair does not have (see ``HAIR_HUES``)."""
    if not len(lab):
        return 0.0
    chroma = np.hypot(lab[:, 1], lab[:, 2])
    hue = np.degrees(np.arctan2(lab[:, 2], lab[:, 1]))  # -180..180
    hair = (chroma <= NEUTRAL_CHROMA) | ((hue >= HAIR_HUES[0]) & (hue <= HAIR_HUES[1]) & (chroma <= HAIR_CHROMA))
    return float(1.0 - hair.mean())


def find_covering(rgb: np.ndarray, mesh: Mesh, alpha: np.ndarray) -> Covering:
    """Decide whether the subject's top above the forehead is a head covering (see the module's note).

    ``rgb`` and ``alpha`` are the same picture the mesh was found on (the source or the final photo)."""
    top, chin = mesh.pt(FOREHEAD), mesh.pt(CHIN)
    left, right = mesh.pt(FACE_SIDES[0]), mesh.pt(FACE_SIDES[1])
    face_h = max(float(chin[1] - top[1]), 1.0)
    face_w = max(float(right[0] - left[0]), 1.0)
    estimate = anatomical_crown(mesh)
    found = matte_top(alpha, left[0], right[0], mesh.pt(FOREHEAD)[1])
    if found is None:
        return Covering(0.0, "none", estimate, estimate, estimate)
    # one scale whatever the photo: the face NORM_FACE_HEIGHT px high; the crop from above the matte's
    # top to the chin, a face width beyond each cheek
    s = NORM_FACE_HEIGHT / face_h
    x0, x1 = int(max(0, left[0] - face_w)), int(min(rgb.shape[1], right[0] + face_w + 1))
    y0, y1 = int(max(0, found - 2)), int(min(rgb.shape[0], chin[1] + 1))
    if x1 - x0 < 4 or y1 - y0 < 4:
        return Covering(0.0, "none", found, found, estimate)
    size = (max(1, round((x1 - x0) * s)), max(1, round((y1 - y0) * s)))
    area = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    true_lab = photo_lab(cv2.resize(rgb[y0:y1, x0:x1], size, interpolation=area))
    lab = true_lab.copy()
    lab[..., 0] *= LIGHTNESS_WEIGHT  # light falls unevenly on hair
    inside = cv2.resize(alpha[y0:y1, x0:x1], size, interpolation=area) >= 200
    inside = cv2.erode(inside.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)  # no edge pixels

    def y(v):
        return (v - y0) * s

    def x(v):
        return (v - x0) * s

    yy, xx = np.mgrid[: size[1], : size[0]]
    crown_n, top_n = y(found), y(top[1])
    # above the forehead: the matte's top two thirds down to point 10, over the face's width
    above = inside & (yy >= crown_n) & (yy < crown_n + (top_n - crown_n) * 0.67)
    above &= (xx >= x(left[0])) & (xx <= x(right[0]))
    # beside the temples (see TEMPLE_FROM)
    eye_n = y(float(np.mean([c[1] for c in mesh.eye_centres])))
    band_end = top_n + TEMPLE_TO * (eye_n - top_n)
    band = (yy >= top_n + TEMPLE_FROM * (eye_n - top_n)) & (yy < band_end)
    reach = face_w * TEMPLE_REACH
    sides = ((xx < x(left[0])) & (xx >= x(left[0] - reach))) | ((xx > x(right[0])) & (xx <= x(right[0] + reach)))
    temples = inside & band & sides
    if above.sum() < MIN_PIXELS:
        return Covering(0.0, "none", found, found, estimate)
    unnatural = unnatural_share(true_lab[above])
    colours = _at_most(lab[above])
    # no hair beside the face to compare with (fewer than MIN_PIXELS): no novel colour claimed
    rare = _rare(colours, lab[temples], FOUND_SHARE) if temples.sum() >= MIN_PIXELS else np.zeros(len(colours), bool)
    score = float(rare.mean())
    if score <= COVERING_SHARE:
        if unnatural > UNNATURAL_SHARE:  # an odd colour on top and nothing else standing out: a hat of that
            # colour over the temples too, or a dye; framed by the matte's top, held for a person either way
            return Covering(score, "unnatural", found, found, estimate, 0.0, unnatural)
        return Covering(score, "none", found, found, estimate, 0.0, unnatural)
    # does the covering (its colours not common at the temples) continue down beside both cheeks, below
    # the temple band (rows the band holds are the reference, never the covering) to the chin?
    novel = colours[rare]
    cheek_rows = (yy >= band_end) & (yy < y(chin[1]))
    shares = []
    for side in (
        (xx < x(left[0])) & (xx >= x(left[0] - reach)),
        (xx > x(right[0])) & (xx <= x(right[0] + reach)),
    ):
        region = inside & cheek_rows & side
        shares.append(1.0 - _novel(lab[region], novel) if region.sum() >= MIN_PIXELS and len(novel) else 0.0)
    wrap = min(shares)
    kind = "wrap" if wrap >= WRAP_SHARE else "hat"
    return Covering(score, kind, max(estimate, found), found, estimate, wrap, unnatural)


def covering_rule(covering: Covering) -> dict:
    """The ``head_covering`` row: refused for a hat; for a covering that wraps the head or a colour no hair
    has, passed but marked ``borderline`` with the review message (held for a person, never passed)."""
    why = {"wrap": WRAP_MESSAGE, "unnatural": DYED_MESSAGE}.get(covering.kind, HAT_MESSAGE)
    row = rule("head_covering", covering.score, (0.0, COVERING_SHARE), why, SOURCE, passed=covering.kind != "hat")
    row["value"] = round(covering.score, 4)
    row["kind"] = covering.kind
    row["unnatural_colour"] = round(covering.unnatural, 4)
    if covering.kind in ("wrap", "unnatural"):  # never passed, in either mode (report.py): strict sends it to
        # review/, lenient emits it with this reason as it does a failed rule
        row.update(borderline=True, review=True, message=why)
    return row


def covered_crown(covering: Covering) -> float | None:
    """The crown to measure by when the top of the matte is a covering (a hat, a wrap); None when it is
    the head (bare, or hair of a colour no hair has: framed as a bare head, held for a person)."""
    return covering.crown_y if covering.kind in ("hat", "wrap") else None
