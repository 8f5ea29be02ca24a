"""What only the source face shows, measured beside detection (stage 1: ``detect.py`` calls ``measure_source``):
the mouth, the teeth, a hand over the face, focus, and the photograph's colour, exposure and compression.

Taken on the source at one scale because at output size the lips are a few pixels and focus moves with the
upscale; ``measure.py`` puts them in the final photo's rule table and reuses the face mask and palms found here.
"""

from __future__ import annotations

import cv2
import numpy as np

from matting.idphoto import photo
from matting.idphoto.hands import PalmDetector, confirmed_palms
from matting.idphoto.mesh import INNER_LIP_LOOP, MOUTH_CORNERS, OUTER_LIP_LOOP, Mesh

# Teeth: inside the inner-lip contour, brighter than the lips by this much luma (0-1) and less
# saturated than this (HSV S, 0-1)
TEETH_BRIGHTER, TEETH_MAX_SATURATION = 0.12, 0.35
HAND_MIN_SCORE = 0.6  # palms confirmed by two views; hands over faces scored 0.70-0.88 in the evaluation set


def luminance(rgb: np.ndarray) -> np.ndarray:
    """Luma in 0..1 (float32), for the source's and the final photo's measures."""
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0


def polygon_mask(shape, points: np.ndarray) -> np.ndarray:
    """The convex hull of ``points`` as a boolean mask of an image of ``shape``."""
    mask = np.zeros(shape[:2], np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(points.astype(np.int32)), 1)
    return mask.astype(bool)


def measure_source(rgb: np.ndarray, mesh: Mesh, palm_model: PalmDetector) -> dict:
    """What is measured on the source photo, whatever the output: the mouth (``measure_mouth``) and
    how much of the face a hand covers there (the palm detector is a few hundredths of a score from
    its threshold on hands over faces, so it looks at both the source and the final photo)."""
    face_mask, palms = palms_on_face(rgb, mesh, palm_model)
    return {
        **measure_mouth(rgb, mesh),
        "hand_over_face": hand_cover(face_mask, palms),
        "sharpness": face_sharpness(rgb, mesh),
        **photo.colour(rgb, mesh),
        **photo.exposure(luminance(rgb) * 255.0, face_mask),
        **photo.compression(rgb, mesh),
        "inter_eye_distance": round(photo.inter_eye_distance(mesh), 1),
    }


def palms_on_face(rgb: np.ndarray, mesh: Mesh, palm_model: PalmDetector):
    """(the face's mask from the mesh, palms confirmed around it)."""
    xs, ys = mesh.points[:, 0], mesh.points[:, 1]
    palms = confirmed_palms(palm_model, rgb, (xs.min(), ys.min(), xs.max(), ys.max()), HAND_MIN_SCORE)
    return polygon_mask(rgb.shape, mesh.points[:, :2]), palms


def hand_cover(face_mask: np.ndarray, palms) -> float:
    """The largest share of one detected palm's box that lies on the face."""
    worst = 0.0
    for palm in palms:
        x0, y0, x1, y1 = (int(round(v)) for v in palm.box)
        area = max(1, (x1 - x0) * (y1 - y0))
        on_face = face_mask[max(0, y0) : max(0, y1), max(0, x0) : max(0, x1)].sum()
        worst = max(worst, float(on_face) / area)
    return worst


SHARPNESS_FACE_WIDTH = 64


def face_sharpness(rgb: np.ndarray, mesh: Mesh) -> float:
    """Focus of the source face, whatever the output's size: the face (the mesh's hull, eroded off
    its outline) resampled to SHARPNESS_FACE_WIDTH px wide, variance of its luma's Laplacian over the
    mean luma squared (so exposure cancels), x1000. Measured at the output's size instead, the same
    face lost half its value to a 10 % smaller source (the upscale's interpolation, not focus)."""
    pts = mesh.points[:, :2]
    h, w = rgb.shape[:2]
    x0, y0 = (max(0, int(v)) for v in np.floor(pts.min(axis=0)))
    x1, y1 = min(w, int(np.ceil(pts[:, 0].max()))), min(h, int(np.ceil(pts[:, 1].max())))
    if x1 - x0 < 4 or y1 - y0 < 4:
        return 0.0
    scale = SHARPNESS_FACE_WIDTH / (x1 - x0)
    crop = cv2.resize(
        rgb[y0:y1, x0:x1], None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    )
    mask = cv2.erode(polygon_mask(crop.shape, (pts - (x0, y0)) * scale).astype(np.uint8), np.ones((5, 5), np.uint8))
    luma = luminance(crop) * 255.0
    inside = mask.astype(bool)
    if inside.sum() < 16:
        return 0.0
    return 1000.0 * float(cv2.Laplacian(luma, cv2.CV_32F)[inside].var()) / max(float(luma[inside].mean()) ** 2, 1e-6)


MOUTH_CROP_WIDTH = 64  # the mouth is measured with its width scaled to this many pixels


def measure_mouth(rgb: np.ndarray, mesh: Mesh) -> dict:
    """Mouth evidence from the *source* photo, at one scale whatever its size or the output's:
    ``mouth_opening`` (inner-lip gap / mouth width, from the mesh) and ``teeth`` (pixels inside the
    inner-lip contour that are brighter than the lips and unsaturated, as a share of mouth width
    squared: 0 with the lips together, ~0.05-0.2 for teeth showing). Neither depends on the background
    colour, the output format or its size."""
    corners = mesh.points[list(MOUTH_CORNERS), :2]
    width = float(np.linalg.norm(corners[0] - corners[1]))
    outer = mesh.points[list(OUTER_LIP_LOOP), :2]
    inner = mesh.points[list(INNER_LIP_LOOP), :2]
    scale = MOUTH_CROP_WIDTH / max(width, 1e-6)
    x0, y0 = np.floor(outer.min(axis=0) - width * 0.1).astype(int)
    x1, y1 = np.ceil(outer.max(axis=0) + width * 0.1).astype(int)
    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    out = {"mouth_opening": mesh.mouth_opening, "teeth": 0.0}
    if x1 - x0 < 4 or y1 - y0 < 4:
        return out
    size = (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale)))
    crop = cv2.resize(rgb[y0:y1, x0:x1], size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    shift = np.array([x0, y0], np.float64)
    inner_mask = polygon_mask(crop.shape, (inner - shift) * scale)
    lips = polygon_mask(crop.shape, (outer - shift) * scale) & ~inner_mask
    if not inner_mask.any() or not lips.any():
        return out
    hsv = cv2.cvtColor(crop, cv2.COLOR_RGB2HSV).astype(np.float32)
    luma = luminance(crop)
    lip_luma = float(np.median(luma[lips]))
    teeth = inner_mask & (luma > lip_luma + TEETH_BRIGHTER) & (hsv[:, :, 1] / 255.0 < TEETH_MAX_SATURATION)
    out["teeth"] = float(teeth.sum()) / MOUTH_CROP_WIDTH**2
    return out
