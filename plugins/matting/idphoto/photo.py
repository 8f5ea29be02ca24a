"""The photograph, not the face: colour, compression, real detail and exposure (ISO/IEC 29794-5).

A passport office looks at the photograph first: a black-and-white or sepia print, a colour cast, a
blocky JPEG or an enlarged (upscaled, pixelated) picture is refused on sight, however well the head
is placed. Each measure follows ISO/IEC 29794-5's definition as OFIQ (BSI's reference implementation)
computes it where that needs no learned model, with our own face regions from the mesh:

- measured on the **source**: colour and exposure (the final photo's face is the source's pixels,
  resampled and never re-toned: measured on the source they avoid our own JPEG's chroma subsampling
  on a small face, and are measured even when a burnt-out face is no longer found on the final
  photo), compression blocking (the 8x8 grid only exists at the upload's own pixels) and real detail
  (what the upload holds, compared at the resolution the output uses);
- measured on the **final photo**: our own encode's blocking (reported, with a warning: a KB limit
  forces it, and the office sets the limit). The face's brightness (``face_exposure``) stays a
  final-photo rule in measure.py.

Pure numpy/OpenCV; no Airflow import.
"""

from __future__ import annotations

import cv2
import numpy as np

from matting.idphoto.mesh import INNER_LIP_LOOP, OUTER_LIP_LOOP, Mesh
from matting.idphoto.rules import ISO

OFIQ = "ISO/IEC 29794-5 (OFIQ)"
# OFIQ NaturalColour: the mean CIELAB a* and b* of two cheek regions should lie in [5, 25] x [5, 35]
SKIN_A, SKIN_B = (5.0, 25.0), (5.0, 35.0)
JPEG_BLOCK = 8
DETAIL_STEP = 2.0  # the round trip that measures detail: down by this, back up (bicubic)

BANDS = {  # rule -> (band, source)
    "colour_saturation": (
        (7.0, None),
        f"ICAO 9303 part 3 / US Department of State: colour photographs only; {OFIQ} natural colour "
        "(the cheeks' CIELAB chroma; 7 is the corner of OFIQ's natural-skin box a* >= 5, b* >= 5; "
        "19-42 on the evaluation set's portraits, 0 in black and white)",
    ),
    "skin_hue": (
        (19.0, 90.0),
        f"{OFIQ} natural colour, no colour cast (the cheeks' CIELAB hue angle, degrees: 36-60 on the "
        "evaluation set's portraits, 28-85 with a mild 5 % cast; OFIQ's skin box spans 11-82; a blue, green "
        "or magenta filter moves it out; limits set on two people's degraded copies, tests/idphoto/degraded.py)",
    ),
    "hue_variety": (
        (6.0, None),
        f"{OFIQ} natural colour: not a toned (sepia) or monochrome print (degrees between the cheeks' hue "
        "and the lips' (8-19 on the evaluation set) or the colourful pixels around the face (37-140); "
        "2.7-4.3 when one tint colours everything; ours)",
    ),
    "jpeg_blocking": (
        (None, 2.0),
        f"{OFIQ} compression artefacts; ICAO 9303: no compression artefacts (edges on the 8x8 JPEG grid "
        "over edges elsewhere, on the source face: 1.1-1.3 as uploaded, 1.3-1.8 saved at quality 50, "
        "2.1-4.1 at 10; ours)",
    ),
    "pixelation": (
        (None, 3.0),
        f"{ISO}: no pixelation (edges on a 2-16 px grid over edges elsewhere, on the source face; "
        "an enlarged-by-repetition picture shows 8 and more; ours)",
    ),
    "detail": (
        (0.365, None),
        f"{OFIQ} sharpness / ICAO 9303 resolution: real detail, not pixel count (the face at the "
        "resolution the output uses: what a 2x down-and-up round trip removes, over what a 4x one "
        "removes; 0.53-0.69 on the evaluation set's portraits, 0.43-0.52 enlarged 1.15x, 0.25-0.35 "
        "enlarged 3-4x or blurred; ours)",
    ),
    "dynamic_range": (
        (5.0, None),
        f"{OFIQ} dynamic range (entropy of the face's luma histogram, bits: 6.9-7.4 on the evaluation "
        "set's portraits; ours)",
    ),
    "underexposed_share": (
        (None, 0.10),
        f"{OFIQ} under-exposure prevention (share of the face darker than 25/255; ours)",
    ),
    "overexposed_share": (
        (None, 0.05),
        f"{OFIQ} over-exposure prevention (share of the face brighter than 247/255; ours)",
    ),
}
MESSAGES = {
    "colour_saturation": "the photo is black and white or nearly colourless: retake or send it in colour",
    "skin_hue": "a colour cast (white balance or a filter): retake in neutral light, without filters",
    "hue_variety": "the photo is toned in one colour (sepia or monochrome): send a natural-colour photo",
    "jpeg_blocking": "the file was saved with heavy JPEG compression (visible blocks): send the original file",
    "pixelation": "the photo is pixelated (enlarged from a smaller one): send the original file",
    "detail": "the photo has less real detail than pixels (enlarged or smoothed): send the original file",
    "dynamic_range": "too little contrast on the face (flat or washed out): retake in even light",
    "underexposed_share": "parts of the face are black (underexposed): retake with more light",
    "overexposed_share": "parts of the face are burnt out white (overexposed): retake with less light",
}


def lab(rgb: np.ndarray) -> np.ndarray:
    """CIELAB (float: L* 0-100) of an RGB uint8 picture."""
    return cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)


def _poly(shape, points: np.ndarray) -> np.ndarray:
    mask = np.zeros(shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(points).astype(np.int32)], 1)
    return mask.astype(bool)


def cheek_mask(shape, mesh: Mesh) -> np.ndarray:
    """OFIQ's natural-colour regions: below each eye, 0.6 inter-eye distances wide, from 0.3 to 0.75
    of the way from the eye line to the mouth."""
    right, left = mesh.eye_centres
    ied = float(np.linalg.norm(left - right))
    eye_mouth = abs(float(mesh.pt(13)[1]) - float(right[1] + left[1]) / 2)
    mask = np.zeros(shape[:2], bool)
    for cx, cy in (right, left):
        x0, x1 = int(max(0, cx - 0.3 * ied)), int(max(0, cx + 0.3 * ied))
        y0, y1 = int(max(0, cy + 0.3 * eye_mouth)), int(max(0, cy + 0.75 * eye_mouth))
        mask[y0:y1, x0:x1] = True
    return mask


def _hue(lab: np.ndarray, mask: np.ndarray) -> float:
    return float(np.degrees(np.arctan2(lab[..., 2][mask].mean(), lab[..., 1][mask].mean())))


def _hue_gap(h1, h2):
    return np.abs((np.asarray(h1) - np.asarray(h2) + 180.0) % 360.0 - 180.0)


SURROUND_CHROMA = 15.0  # pixels at least this colourful count for the hue of the surroundings


def colour(rgb: np.ndarray, mesh: Mesh) -> dict:
    """The skin's colour on the source: chroma and hue of the cheeks (CIELAB means), and the variety
    of hues a colour photograph holds that a toned print (one tint over everything) has not: the
    larger of the lips' hue against the cheeks' and the 90th percentile of the hue gap between the
    cheeks and the colourful pixels outside the face (hair, clothes, backdrop). Either alone can
    fail an honest photo: a hand over the lips, or a grey wall and a black shirt."""
    cie = lab(rgb)
    cheeks = cheek_mask(rgb.shape, mesh)
    lips = _poly(rgb.shape, mesh.points[list(OUTER_LIP_LOOP), :2]) & ~_poly(
        rgb.shape, mesh.points[list(INNER_LIP_LOOP), :2]
    )
    if cheeks.sum() < 8 or lips.sum() < 4:
        return {}
    a, b = float(cie[..., 1][cheeks].mean()), float(cie[..., 2][cheeks].mean())
    chroma = float(np.hypot(a, b))
    skin = _hue(cie, cheeks)
    variety = 0.0  # a (near) neutral face has no hue to differ from
    if chroma >= 1.0:
        lip_gap = float(_hue_gap(skin, _hue(cie, lips)))
        hull = cv2.convexHull(mesh.points[:, :2].astype(np.float32))[:, 0]  # the 468 points are no ring
        face = cv2.dilate(_poly(rgb.shape, hull).astype(np.uint8), np.ones((9, 9), np.uint8))
        pixel_chroma = np.hypot(cie[..., 1], cie[..., 2])
        clipped = (rgb >= 250).any(axis=2)  # a clipped channel distorts a highlight's hue
        around = (pixel_chroma >= SURROUND_CHROMA) & ~face.astype(bool) & ~clipped
        surround_gap = 0.0
        if around.sum() >= 0.01 * around.size:
            hues = np.degrees(np.arctan2(cie[..., 2][around], cie[..., 1][around]))
            surround_gap = float(np.percentile(_hue_gap(hues, skin), 90))
        variety = max(lip_gap, surround_gap)
    return {
        "colour_saturation": chroma,
        "skin_hue": float(np.degrees(np.arctan2(b, a))),
        "hue_variety": variety,
        "skin_lab": [round(float(cie[..., 0][cheeks].mean()), 1), round(a, 1), round(b, 1)],
    }


def face_box(mesh: Mesh, shape) -> tuple[int, int, int, int]:
    xs, ys = mesh.points[:, 0], mesh.points[:, 1]
    return (
        int(max(0, xs.min())),
        int(max(0, ys.min())),
        int(min(shape[1], np.ceil(xs.max()))),
        int(min(shape[0], np.ceil(ys.max()))),
    )


def grid_edges(gray: np.ndarray, box, period: int) -> float:
    """Edges on a grid of ``period`` px over edges elsewhere, inside ``box`` (both directions, the
    grid's phase found, not assumed: an EXIF-rotated or cropped JPEG keeps its blocks, not their
    origin). ~1 without a grid; a JPEG saved at low quality, or a picture enlarged by repeating
    pixels, puts its edges on the grid."""
    x0, y0, x1, y1 = box
    if x1 - x0 < 4 * period or y1 - y0 < 4 * period:
        return 1.0
    ratios = []
    for diffs, start in (
        (np.abs(np.diff(gray[y0:y1, x0:x1], axis=1)).mean(axis=0), x0),
        (np.abs(np.diff(gray[y0:y1, x0:x1], axis=0)).mean(axis=1), y0),
    ):
        phase = (np.arange(diffs.size) + start) % period
        per_phase = np.array([diffs[phase == p].mean() for p in range(period)])
        ratios.append(float(per_phase.max()) / max(float(np.median(per_phase)), 0.05))
    return float(np.mean(ratios))


def compression(rgb: np.ndarray, mesh: Mesh) -> dict:
    """Blocking on the source face: the JPEG grid (8 px), and the strongest other grid (2-15 px:
    pixelation). A JPEG's 8 px grid also shows, weaker, at 2 and 4 px (every other boundary); those
    count as pixelation only when as strong as the 8 px one (a picture enlarged 2x or 4x by repeating
    pixels has every boundary sharp). Measured where the blocks are: the upload's own pixels."""
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    box = face_box(mesh, rgb.shape)
    ratios = {p: grid_edges(gray, box, p) for p in range(2, 16)}
    jpeg = ratios[JPEG_BLOCK]
    others = {p: r for p, r in ratios.items() if p != JPEG_BLOCK and (JPEG_BLOCK % p or r >= 0.75 * jpeg)}
    period = max(others, key=others.get)
    return {"jpeg_blocking": jpeg, "pixelation": others[period], "pixel_period": period}


def detail(rgb: np.ndarray, mesh: Mesh, scale: float) -> float:
    """Real detail of the source face at the resolution the output uses (``scale``: output pixels
    per source pixel; a larger source is first brought to 1.5x the output's size, so a big photo
    that was once enlarged but still has more than enough is not refused): the error a
    ``DETAIL_STEP`` down-and-up round trip leaves, over the error a 2x larger one leaves. A picture
    with detail down to its pixels loses about half as much at 2x as at 4x (0.5-0.7); an enlarged
    or smoothed one loses little at 2x (0.25-0.35)."""
    x0, y0, x1, y1 = face_box(mesh, rgb.shape)
    crop = cv2.cvtColor(rgb[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY).astype(np.float32)
    work = min(1.0, 1.5 * scale)
    if work < 1.0:
        crop = cv2.resize(crop, None, fx=work, fy=work, interpolation=cv2.INTER_AREA)
    h, w = crop.shape
    if min(h, w) < 24:
        return 0.0

    def loss(k: float) -> float:
        small = cv2.resize(crop, (max(1, round(w / k)), max(1, round(h / k))), interpolation=cv2.INTER_AREA)
        back = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
        return float(np.sqrt(np.mean((crop - back) ** 2)))

    return loss(DETAIL_STEP) / max(loss(2 * DETAIL_STEP), 1e-6)


def exposure(gray255: np.ndarray, face_mask: np.ndarray) -> dict:
    """On the source face (luma 0-255): the entropy of its histogram (OFIQ dynamic range)
    and the shares of black and burnt-out pixels (OFIQ under/over-exposure: < 25, > 247)."""
    values = gray255[face_mask]
    if values.size == 0:
        return {}
    hist = np.bincount(np.clip(values, 0, 255).astype(np.int64), minlength=256) / values.size
    nz = hist[hist > 0]
    return {
        "dynamic_range": float(-(nz * np.log2(nz)).sum()),
        "underexposed_share": float((values < 25).mean()),
        "overexposed_share": float((values > 247).mean()),
    }


def final_blocking(rgb: np.ndarray, mesh: Mesh) -> float:
    """Our own encode's JPEG grid on the final photo's face (reported: a KB limit can force it)."""
    return grid_edges(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32), face_box(mesh, rgb.shape), JPEG_BLOCK)


def inter_eye_distance(mesh: Mesh) -> float:
    right, left = mesh.eye_centres
    return float(np.linalg.norm(left - right))
