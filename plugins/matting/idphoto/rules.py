"""The ID photo's rules and verdict: the face's bands and limits with the standard each comes from, the one way
every stage writes a rule row (``rule``), and how near a limit a passing value may lie (``judge``).

Apart from the measures (``measure.py`` on the final photo, ``source.py`` on the source face), so a limit is
read and cited in one place; the photograph's own bands stay in ``photo.py``, the head covering's in
``covering.py`` and the head's placement in each preset. Bands that are ours (no official figure) say so.
"""

from __future__ import annotations

ISO = "ISO/IEC 19794-5 full frontal / ICAO 9303 part 3"

# Glasses: the nose bridge between the eyes crossed by a frame shows one strong horizontal edge
# (vertical gradient of the luma row means, 0-4 Sobel scale): 0.09-0.19 on bare faces, 1.02 on the
# evaluation set's wire-and-acetate frame. Rimless glasses show no bridge and are not seen.
GLASSES_EDGE = 0.45
BANDS = {  # rule -> (band, source)
    "yaw_deg": (
        (-8.0, 8.0),
        f"{ISO}: frontal, yaw within +-5 deg (widened by the mesh's ~3 deg error; frontal faces of the "
        "evaluation set measure within 3, a head turned ~10 deg 9.4-10.6)",
    ),
    "pitch_deg": (  # PITCH_NEUTRAL_DEG: measure.py
        (-12.0, 12.0),
        f"{ISO}: pitch within +-5 deg (widened: the measure varies +-8 deg between people, see PITCH_NEUTRAL_DEG)",
    ),
    "roll_deg": ((-8.0, 8.0), f"{ISO}: roll within +-8 deg (measured after our roll correction)"),
    "eye_openness": ((0.15, 1.0), f"{ISO}: both eyes open (lid gap / eye width; open 0.2-0.4, a smile's squint ~0.2)"),
    "eyes_visible": (
        (0.10, 1.0),
        f"{ISO}: eyes clearly visible, no hair or glare over them (white of the eye minus iris, luma 0-1)",
    ),
    "hand_over_face": ((0.0, 0.15), f"{ISO}: nothing covering the face (share of a detected palm over the face)"),
    "glasses": (
        (0.0, GLASSES_EDGE),
        "US Department of State (since 2016-11-01): no glasses (nose-bridge edge strength; frames > 0.45)",
    ),
    "gaze_along": (
        (0.3, 0.7),
        f"{ISO}: looking at the camera (iris centre across the eye, 0.5 = centred; 0.54-0.67 on frontal portraits)",
    ),
    "gaze_across": ((-0.2, 0.2), f"{ISO}: looking at the camera (iris above/below the corner line)"),
    "sharpness": (
        (8.0, None),
        "ICAO 9303: in focus (the source face at 64 px wide: variance of its Laplacian over its mean luma "
        "squared, x1000; 13-133 on the evaluation set's faces, 3-4 out of focus; ours)",
    ),
    "upscale": ((0.0, 3.0), "no upscaled faces: output pixels per source pixel (ours: at most 3x)"),
    "face_exposure": (
        (0.5, 0.98),
        "ICAO 9303: correctly exposed face (luma of the face's brightest 5 %, 0-1: 0.57-0.86 on the evaluation "
        "set's portraits, 0.30-0.46 two stops under; the highlights, not the skin tone, set it; ours)",
    ),
    "lighting_balance": ((0.6, 1.0), "ICAO 9303: even lighting, no shadows (darker cheek / brighter cheek; ours)"),
    "stray_objects": ((0.0, 0.002), "plain background: nothing but the subject (matte pieces apart from it, share)"),
    "background_remnant": (
        (0.0, 0.001),
        "ISO/IEC 29794-5 background uniformity; ICAO 9303: a plain, uniform background (share of the final "
        "photo the matte kept where MediaPipe's person segmentation, run on the source, sees no person, "
        "thin outline slivers removed: 0-0.0002 on the evaluation set's photos, 0.0035 for a flag's stripe "
        "kept at the shoulder of a JPEG saved at quality 10; ours)",
    ),
    "shoulders": ((0.5, 1.0), "head and top of the shoulders shown (subject's share of the bottom rows; ours)"),
}

MOUTH = {
    "neutral": (
        0.10,
        f"{ISO}: neutral expression, mouth closed (inner-lip gap / mouth width on the source face; "
        "closed 0.01-0.03, teeth showing 0.16-0.25, talking 0.42)",
    ),
    "natural_smile": (0.45, "US Department of State: a natural smile is fine; an open-mouth laugh is not"),
}
# Teeth showing (share of mouth width squared, on the source face at one scale): 0.000-0.008 with
# the lips together or covered on the evaluation set, 0.035-0.075 for teeth showing in a smile or
# while talking; ours
TEETH_LIMIT = 0.015
TEETH_SOURCE = f"{ISO}: neutral expression, no teeth showing (bright pixels inside the inner lips; ours)"

# Borderline: a value this close to a limit (inside the band) is within what the measure moves when
# only what should not matter changes, so strict mode holds the photo for a person to check. Each
# margin covers the largest spread seen on the evaluation set over every allowed background, PNG vs
# JPEG and a 10 % smaller source (tests/idphoto/invariance.py prints the spreads; the outliers of a
# profile face excluded for roll and gaze). Rules counted exactly (faces, file size) have none.
BORDERLINE = {  # rule -> (margin, the limit(s) it guards: a band's other end may be a physical floor)
    "yaw_deg": (2.0, "both"),  # spread up to 1.84 deg
    "pitch_deg": (1.5, "both"),  # 1.36
    "roll_deg": (1.0, "both"),  # median 0.25
    "eye_openness": (0.02, "low"),  # 0.019
    "eyes_visible": (0.03, "low"),  # median 0.018
    "gaze_along": (0.035, "both"),  # 0.034
    "gaze_across": (0.03, "both"),  # median 0.015
    "mouth_opening": (0.025, "high"),  # 0.023 (the source face, rescaled)
    "teeth": (0.003, "high"),  # 0.002
    "face_exposure": (0.015, "both"),  # 0.012
    "lighting_balance": (0.02, "low"),  # 0.015
    "glasses": (0.05, "high"),  # median 0.015
    "hand_over_face": (0.05, "high"),  # 0 on every photo without a hand
    "sharpness": (2.0, "low"),  # a quarter of the limit
    "upscale": (0.1, "high"),
    "shoulders": (0.02, "low"),  # 0.012
    "stray_objects": (0.0005, "high"),  # 0.0001
    "background_remnant": (0.0003, "high"),  # 0.0002 on one photo of the set, 0 on the others
    "head_ratio": (0.005, "both"),  # 0.0063 (placement aims 15 % of each band inside it)
    "top_margin_ratio": (0.005, "both"),  # 0.005
    "eye_line_ratio": (0.004, "both"),  # 0.0037
}


def in_band(value, band) -> bool:
    """A number inside ``band`` (``None`` ends are open); a missing value is never inside."""
    lo, hi = band
    return value is not None and (lo is None or value >= lo - 1e-9) and (hi is None or value <= hi + 1e-9)


def rule(name: str, value, band, why: str, source: str, passed: bool | None = None) -> dict:
    """The row for rule ``name``: its value, band, verdict, the standard it comes from, and a message
    saying what is wrong (only when it is). ``passed`` None: a measured number checked against its
    band (and rounded for the report); a rule with a test of its own (a pixel size, a colour among
    the accepted ones, a file size to the byte) passes its verdict and keeps its value as it is."""
    if passed is None:
        passed = in_band(value, band)
        value = None if value is None else round(float(value), 4)
    return {
        "rule": name,
        "value": value,
        "band": list(band),
        "passed": bool(passed),
        "message": "" if passed else why,
        "source": source,
    }


def distance_to_limit(value, band, sides: str = "both") -> tuple[float, float] | None:
    """(distance, limit): how far inside its band a value is (negative: outside), to the nearer of
    the limits named by ``sides`` ("both", "low", "high")."""
    if not isinstance(value, int | float) or isinstance(value, bool) or not band or len(band) != 2:
        return None
    gaps = [(value - band[0], band[0])] if band[0] is not None and sides != "high" else []
    gaps += [(band[1] - value, band[1])] if band[1] is not None and sides != "low" else []
    return min(gaps) if gaps else None


def judge(rules: list[dict]) -> list[dict]:
    """Each rule with its distance to the nearer limit, and ``borderline`` (with a message) when it
    passes by less than its BORDERLINE margin."""
    out = []
    for row in rules:
        row = dict(row)
        margin, sides = BORDERLINE.get(row["rule"], (None, "both"))
        nearest = distance_to_limit(row.get("value"), row.get("band"), sides)
        if nearest is not None:
            row["distance"] = round(float(nearest[0]), 4)
        if row["passed"] and margin is not None and nearest is not None and nearest[0] < margin:
            distance, limit = nearest
            row["borderline"] = True
            row["message"] = (
                f"borderline {row['rule'].replace('_', ' ')}: {row['value']:g} is {distance:.3g} from the limit "
                f"{limit:g}, within the measure's noise ({margin:g}): a person should check"
            )
        out.append(row)
    return out
