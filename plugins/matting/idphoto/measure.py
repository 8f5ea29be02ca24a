"""What a passport office checks, measured on the *final* photo (not copied from the plan).

Face, mesh and iris are found again on the output image and joined by what ``source.py`` measured on the
source face; every rule carries its value, band and the standard it comes from (the bands and the verdict:
``rules.py``). No Airflow import.
"""

from __future__ import annotations

import cv2
import numpy as np

from matting.idphoto import photo
from matting.idphoto.covering import covered_crown, covering_rule, find_covering
from matting.idphoto.face import detect_faces, prominent_faces
from matting.idphoto.hands import PalmDetector
from matting.idphoto.mesh import CHIN, LEFT_EYE, MOUTH_CORNERS, RIGHT_EYE, FaceMesh, Mesh
from matting.idphoto.person import remnant_share
from matting.idphoto.rules import BANDS, ISO, MOUTH, TEETH_LIMIT, TEETH_SOURCE, rule
from matting.idphoto.source import hand_cover, luminance, palms_on_face, polygon_mask
from matting.images import decode

# The mesh's forehead-to-chin depth angle on the final photos of four people's frontal portraits (the
# evaluation set's astronaut -11.5, Hopper -7.2, Obama 0.0, Biden +5.0 deg): anatomy moves it as much as
# a 8 deg nod. Zero is their median; the pitch band is as wide as that spread allows (a nod of ~15 deg is caught,
# ICAO's 5 deg is not measurable this way).
PITCH_NEUTRAL_DEG = -4.0


def _banded(name: str, value: float | None, why: str) -> dict:
    band, source = BANDS[name]
    return rule(name, value, band, why, source)


def measure_geometry(mesh: Mesh, alpha: np.ndarray, spec, crown: float | None = None) -> dict:
    """Crown (top of the hair, from the matte above the face; ``crown`` when given: the anatomical one
    under a head covering), chin (mesh) and eye line (irises)."""
    h = alpha.shape[0]
    xs = mesh.points[:, 0]
    x0, x1 = int(max(0, xs.min())), int(min(alpha.shape[1], xs.max() + 1))
    column = alpha[:, x0:x1] > 127
    rows = np.nonzero(column.any(axis=1))[0]
    crown = crown if crown is not None else float(rows[0]) if rows.size else 0.0
    chin = float(mesh.pt(CHIN)[1])
    eye_y = float(np.mean([c[1] for c in mesh.eye_centres]))
    return {
        "head_ratio": (chin - crown) / h,
        "top_margin_ratio": crown / h,
        "eye_line_ratio": 1.0 - eye_y / h,
        "crown_y": crown,
        "chin_y": chin,
    }


def iris_contrast(gray: np.ndarray, mesh: Mesh, side: str) -> float | None:
    """How much brighter the white of the eye is than the iris, within the iris model's eyelid contour
    (90th percentile of the eye opening minus the iris disc's mean). An open eye shows 0.15-0.65;
    a closed or covered one (skin, lashes, hair, glare over the iris) ~0.0-0.05. None if too small."""
    x, y, radius = mesh.iris[side]
    opening = np.zeros(gray.shape, np.uint8)
    cv2.fillPoly(opening, [np.round(mesh.eyelids[side]).astype(np.int32)], 1)
    disc = np.zeros(gray.shape, np.uint8)
    cv2.circle(disc, (round(x), round(y)), max(1, round(radius * 0.7)), 1, -1)
    inside, iris = gray[opening.astype(bool)], gray[(opening & disc).astype(bool)]
    if inside.size < 5 or iris.size < 3:
        return None
    return float(np.percentile(inside, 90) - iris.mean())


def bridge_edge(gray: np.ndarray, mesh: Mesh) -> float:
    """Strongest horizontal edge on the nose bridge between the eyes (from between the brows, mesh
    point 9, down to point 195 on the nose; a third of the inner-corner distance wide)."""
    inner = mesh.pt(RIGHT_EYE["inner"]), mesh.pt(LEFT_EYE["inner"])
    half = float(np.linalg.norm(inner[0] - inner[1])) * 0.15
    cx = float(inner[0][0] + inner[1][0]) / 2
    y0, y1 = int(mesh.pt(9)[1]), int(mesh.pt(195)[1])
    strip = gray[max(0, y0) : max(0, y1), max(0, int(cx - half)) : max(0, int(cx + half))]
    if strip.shape[0] < 3 or strip.shape[1] < 1:
        return 0.0
    return float(np.abs(cv2.Sobel(strip, cv2.CV_32F, 0, 1, ksize=3)).mean(axis=1).max())


def stray_share(alpha: np.ndarray) -> tuple[float, int]:
    """Share of the photo covered by matte pieces not joined to the subject (the largest piece)."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats((alpha > 127).astype(np.uint8), connectivity=8)
    if n <= 2:
        return 0.0, 0
    areas = stats[1:, cv2.CC_STAT_AREA]
    stray = int(areas.sum() - areas.max())
    return stray / alpha.size, n - 2


def shoulders(alpha: np.ndarray, chin_y: float) -> tuple[float, float]:
    """(subject's share of the bottom rows, height difference of the two shoulder lines / height)."""
    h, w = alpha.shape
    bottom = alpha[int(h * 0.97) :] > 127
    share = float(bottom.any(axis=0).mean())
    tops = []
    for frac in (0.12, 0.88):
        col = alpha[int(chin_y) :, int(w * frac)] > 127
        hits = np.nonzero(col)[0]
        tops.append(float(hits[0] + int(chin_y)) if hits.size else float(h))
    return share, abs(tops[0] - tops[1]) / h


def measure_photo(
    data: bytes,
    alpha: np.ndarray,
    person: np.ndarray,
    spec,
    upscale: float,
    mesh_model: FaceMesh,
    palm_model: PalmDetector,
    from_source: dict,
):
    """(rules, values, warnings) for the final photo, measured as it will be seen: the file ``data``
    decoded (after JPEG and any KB-limit downscale). ``alpha`` is the subject's matte placed on it,
    ``from_source`` what ``measure_source`` found on the source face: the expression rules use it (at
    output size the lips are a few pixels and their gap moves with the background colour and the
    encoder), and a hand seen there counts as much as one seen on the final photo."""
    final_rgb = decode(data).rgb
    if final_rgb.shape[:2] != alpha.shape:
        alpha = cv2.resize(alpha, (final_rgb.shape[1], final_rgb.shape[0]), interpolation=cv2.INTER_AREA)
    if final_rgb.shape[:2] != person.shape:
        person = cv2.resize(person, (final_rgb.shape[1], final_rgb.shape[0]), interpolation=cv2.INTER_AREA)
    rules: list[dict] = []
    values: dict = {}
    rules += photograph_rules(from_source)
    faces = mesh_model.confirmed(final_rgb, prominent_faces(detect_faces(final_rgb, mesh_model.store)))
    rules.append(
        rule(
            "face_count_final",
            len(faces),
            (1, 1),
            f"{len(faces)} faces found on the final photo" if faces else "no face found on the final photo",
            f"{ISO}: exactly one face",
        )
    )
    if len(faces) != 1:
        return rules, values, []
    mesh = faces[0][1]
    gray = luminance(final_rgb)
    face_mask, palms = palms_on_face(final_rgb, mesh, palm_model)
    # the face's exposure first: a face too dark to see also hides its eyes (name the cause)
    exposure = float(np.percentile(gray[face_mask], 95)) if face_mask.any() else 0.0
    too = "too dark (underexposed)" if exposure < BANDS["face_exposure"][0][0] else "too bright"
    rules.append(_banded("face_exposure", exposure, f"the face is {too}"))
    covering = find_covering(final_rgb, mesh, alpha)  # the crown under a hat is the head's, not the hat's
    geo = measure_geometry(mesh, alpha, spec, covered_crown(covering))
    rules.append(covering_rule(covering))
    values.update({k: round(v, 4) for k, v in geo.items()})
    for name, band in (
        ("head_ratio", spec.head_ratio),
        ("top_margin_ratio", spec.top_margin_ratio),
        ("eye_line_ratio", spec.eye_line_ratio),
    ):
        if band is not None:
            rules.append(
                rule(
                    name,
                    geo[name],
                    band,
                    f"{name.replace('_', ' ')} {geo[name]:.3f} is outside {band[0]:.3f}-{band[1]:.3f} "
                    "(measured on the final photo)",
                    spec.source,
                )
            )
    yaw, pitch, roll = mesh.yaw_deg, mesh.pitch_deg - PITCH_NEUTRAL_DEG, mesh.roll_deg
    rules.append(_banded("yaw_deg", yaw, f"head turned {abs(yaw):.0f} degrees to one side: face the camera"))
    rules.append(_banded("pitch_deg", pitch, f"head tilted {'up' if pitch > 0 else 'down'} {abs(pitch):.0f} degrees"))
    rules.append(_banded("roll_deg", roll, f"head tilted sideways {abs(roll):.0f} degrees"))
    openness = min(mesh.lids.values())
    rules.append(_banded("eye_openness", openness, "eyes closed or nearly closed: both eyes must be open"))
    contrasts = [iris_contrast(gray, mesh, side) for side in ("right", "left")]
    visible = None if None in contrasts else min(contrasts)
    rules.append(_banded("eyes_visible", visible, "the eyes cannot be seen clearly (closed, covered or glare)"))
    along = [mesh.gaze(s)[0] for s in ("right", "left")]
    across = [mesh.gaze(s)[1] for s in ("right", "left")]
    worst_along = max(along, key=lambda v: abs(v - 0.5))
    worst_across = max(across, key=abs)
    rules.append(_banded("gaze_along", worst_along, "eyes looking to the side: look straight at the camera"))
    rules.append(_banded("gaze_across", worst_across, "eyes looking up or down: look straight at the camera"))
    expression = getattr(spec, "expression", "neutral")
    limit, source = MOUTH[expression]
    opening = from_source["mouth_opening"]
    rules.append(
        rule(
            "mouth_opening",
            opening,
            (0.0, limit),
            "mouth open: close it (neutral expression)" if expression == "neutral" else "mouth wide open (laughing)",
            source,
        )
    )
    if expression == "neutral":
        rules.append(
            rule(
                "teeth",
                from_source["teeth"],
                (0.0, TEETH_LIMIT),
                "teeth showing: neutral expression, lips together",
                TEETH_SOURCE,
            )
        )
    cover = max(hand_cover(face_mask, palms), from_source["hand_over_face"])
    rules.append(_banded("hand_over_face", cover, "a hand covers part of the face"))
    final_sharp = float(cv2.Laplacian(gray * 255.0, cv2.CV_32F)[face_mask].var()) if face_mask.any() else 0.0
    rules.append(_banded("sharpness", from_source["sharpness"], "the face is blurred: the photo must be in focus"))
    rules.append(
        _banded("upscale", upscale, f"the face in the source is too small: it would be enlarged {upscale:.1f}x")
    )
    edge = bridge_edge(gray, mesh)
    if getattr(spec, "glasses", "allowed") == "forbidden":
        rules.append(_banded("glasses", edge, "glasses: this standard asks for a photo without glasses"))
    cheeks = []
    for side in (
        mesh.points[[234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152, 1]],
        mesh.points[[454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152, 1]],
    ):
        region = polygon_mask(final_rgb.shape, side[:, :2])
        cheeks.append(float(gray[region].mean()) if region.any() else 0.0)
    balance = min(cheeks) / max(max(cheeks), 1e-6)
    rules.append(_banded("lighting_balance", balance, "uneven light: one side of the face is in shadow"))
    remnant, remnant_pieces = remnant_share(alpha, person)
    rules.append(
        _banded(
            "background_remnant",
            remnant,
            f"{remnant_pieces} piece(s) of the old background kept beside the subject ({remnant:.2%} of the "
            "photo): retake against a plain background",
        )
    )
    stray, pieces = stray_share(alpha)
    rules.append(
        _banded("stray_objects", stray, f"{pieces} object(s) besides the subject left in the picture ({stray:.1%})")
    )
    share, tilt = shoulders(alpha, geo["chin_y"])
    rules.append(_banded("shoulders", share, "the shoulders are not in the picture"))
    ours = photo.final_blocking(final_rgb, mesh)
    smile = float(
        (np.mean([mesh.pt(i)[1] for i in MOUTH_CORNERS]) - mesh.pt(13)[1])
        / max(np.linalg.norm(mesh.pt(MOUTH_CORNERS[0]) - mesh.pt(MOUTH_CORNERS[1])), 1e-6)
    )
    values.update(
        {
            "yaw_deg": round(yaw, 2),
            "pitch_deg": round(pitch, 2),
            "face_presence": round(mesh.presence, 3),
            "eye_openness": {side: round(v, 3) for side, v in mesh.lids.items()},
            "eye_aspect_mesh": [round(mesh.eye_openness(RIGHT_EYE), 3), round(mesh.eye_openness(LEFT_EYE), 3)],
            "face_mean_luma": round(float(gray[face_mask].mean()) if face_mask.any() else 0.0, 3),
            "bridge_edge": round(edge, 3),
            "iris_contrast": [None if c is None else round(c, 3) for c in contrasts],
            "palms": [[round(v) for v in p.box] + [round(p.score, 2)] for p in palms],
            "hand_over_face_source": round(from_source["hand_over_face"], 4),
            "laplacian_variance_final": round(final_sharp, 1),  # reported: it moves with any resampling
            "smile": round(smile, 3),
            "mouth_opening_final": round(mesh.mouth_opening, 4),  # reported, not gated: see ``mouth``
            "shoulder_tilt": round(tilt, 4),  # reported, not gated: objects held at the shoulder fool it
            "inter_eye_distance_px": round(photo.inter_eye_distance(mesh), 1),
            "inter_eye_distance_source_px": from_source.get("inter_eye_distance"),
            "skin_lab": from_source.get("skin_lab"),
            "pixel_period": from_source.get("pixel_period"),
            "jpeg_blocking_final": round(ours, 3),
        }
    )
    warnings = []
    if ours > photo.BANDS["jpeg_blocking"][0][1]:
        warnings.append(
            f"our JPEG encode shows 8x8 blocks ({ours:.2f}): the KB limit forces a low quality; "
            "a larger kb_max (if the office allows it) or PNG avoids it"
        )
    if getattr(spec, "expression", "neutral") == "neutral" and smile < -0.02:
        warnings.append("a smile may be refused: this standard asks for a neutral expression")
    return rules, values, warnings


# the photograph's rules measured on the source, in the order a person names them: the file (blocks,
# pixels, detail) first (a JPEG saved at quality 4 also loses its colour), then exposure (a burnt-out
# face loses its colour too), then colour. The face's pixels are the source's: measured there, they
# are measured even when a burnt-out face is no longer found on the final photo.
SOURCE_PHOTO_RULES = (
    "jpeg_blocking",
    "pixelation",
    "detail",
    "underexposed_share",
    "overexposed_share",
    "colour_saturation",
    "skin_hue",
    "hue_variety",
    "dynamic_range",
)


def _photo_rule(name: str, value) -> dict:
    band, source = photo.BANDS[name]
    why = photo.MESSAGES[name] if value is not None else f"{name.replace('_', ' ')} could not be measured"
    return rule(name, value, band, why, source)


def photograph_rules(from_source: dict) -> list[dict]:
    """The photograph's own rules (``photo.py``), from what was measured on the source. A measure
    that could not be taken (a face too small for its regions) fails: it is never a silent pass."""
    return [_photo_rule(name, from_source.get(name)) for name in SOURCE_PHOTO_RULES]
