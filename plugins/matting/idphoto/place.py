"""ID photo stage 3, place: level the eyes, find the crown on the matte, and choose the scale and
offset that put the head inside the preset's bands."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from matting.errors import FaceCut
from matting.idphoto.covering import covered_crown, find_covering
from matting.idphoto.face import Face
from matting.idphoto.mesh import FaceMesh, Mesh, on_mesh
from matting.idphoto.specs import IdPhotoSpec

ROLL_CORRECT_MIN_DEG = 0.5  # below this the eyes count as level; no resampling
# Placement aims this share of each band's width inside the band (top margin and eye line; the head
# ratio is aimed inside by its candidates): the final photo is re-measured after JPEG, KB-limit
# re-compression and re-detection, which move the eye line by ~0.003 of the height, so a photo we
# place can never land on a band's edge and fail our own rule.
PLACEMENT_MARGIN = 0.15


@dataclass
class Placement:
    """Where the head lands in the output, in output pixels."""

    scale: float
    crown_y: float
    chin_y: float
    eye_y: float
    face_box: tuple[float, float, float, float]
    matrix: np.ndarray  # 2x3 affine from (rotated) source to output


@dataclass
class Framing:
    """The matted subject, levelled, and where it goes in the output."""

    rgb: np.ndarray  # the matte's colour, rotated when the eyes were levelled
    alpha: np.ndarray
    face: Face  # on the levelled picture
    touches_top: bool  # the matte reaches the source's top edge: the crown is estimated
    rotated: bool
    placement: Placement


def _transform(points: np.ndarray, m: np.ndarray) -> np.ndarray:
    return points @ m[:, :2].T + m[:, 2]


def _rotated_face(face: Face, m: np.ndarray) -> Face:
    pts = np.array([face.left_eye, face.right_eye, face.nose, face.mouth])
    p = _transform(pts, m)
    cx, cy = _transform(np.array([[(face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2]]), m)[0]
    hw, hh = (face.box[2] - face.box[0]) / 2, (face.box[3] - face.box[1]) / 2
    return Face(
        box=(cx - hw, cy - hh, cx + hw, cy + hh),
        score=face.score,
        left_eye=tuple(p[0]),
        right_eye=tuple(p[1]),
        nose=tuple(p[2]),
        mouth=tuple(p[3]),
    )


def find_crown(
    alpha: np.ndarray, face: Face, rgb: np.ndarray | None = None, mesh: Mesh | None = None
) -> tuple[float, bool]:
    """Top of the head (hair included) from the matte, in the face's column band; with the picture
    and its mesh, the anatomical crown when the matte's top is a hat (``covering.find_covering``).

    Returns (crown_y, touches_top): when the matte reaches the top edge the real crown is outside
    the picture, so it is estimated from the face (eyes sit half-way between crown and chin)."""
    if rgb is not None and mesh is not None:
        crown = covered_crown(find_covering(rgb, mesh, alpha))
        if crown is not None:
            return crown, False
    x0, x1 = max(0, int(face.box[0])), min(alpha.shape[1], int(math.ceil(face.box[2])))
    eye_y = int(face.eye_mid[1])
    band = alpha[: max(1, eye_y), x0:x1] >= 128
    coverage = band.mean(axis=1) if band.size else np.zeros(1)
    rows = np.nonzero(coverage >= 0.05)[0]
    estimate = face.eye_mid[1] - (face.chin_y - face.eye_mid[1]) * 1.0
    if rows.size == 0:
        return estimate, False
    crown = float(rows[0])
    if crown <= 1.0:  # head touches the top edge: trust geometry, not the cut matte
        return min(crown, estimate), True
    return crown, False


def _inset(band: tuple[float, float], margin: float) -> tuple[float, float]:
    lo, hi = band
    d = (hi - lo) * margin
    return lo + d, hi - d


def plan_placement(spec: IdPhotoSpec, face: Face, crown: float) -> Placement:
    """Choose scale and vertical offset so head height, top margin and eye line fall in the bands,
    aimed ``PLACEMENT_MARGIN`` inside each band (without the margin only when no placement fits it)."""
    w, h = spec.width_px, spec.height_px
    chin = face.chin_y
    head_px = max(chin - crown, 1.0)
    eye_below_crown = face.eye_mid[1] - crown
    lo, hi = spec.head_ratio
    mid = (lo + hi) / 2
    candidates = sorted(np.linspace(lo + 0.1 * (hi - lo), hi - 0.1 * (hi - lo), 9), key=lambda r: abs(r - mid))
    want = sum(spec.top_margin_ratio) / 2 * h

    def fit(margin: float) -> tuple[float, float] | None:
        """The first head ratio (nearest the middle) whose bands, inset by ``margin``, leave room."""
        t_band = _inset(spec.top_margin_ratio, margin)
        e_band = _inset(spec.eye_line_ratio, margin) if spec.eye_line_ratio else None
        for ratio in candidates:
            s = ratio * h / head_px
            t_lo, t_hi = t_band[0] * h, t_band[1] * h
            if e_band:
                t_lo = max(t_lo, h * (1 - e_band[1]) - eye_below_crown * s)
                t_hi = min(t_hi, h * (1 - e_band[0]) - eye_below_crown * s)
            # keep the chin inside the frame with a little room
            t_hi = min(t_hi, h * 0.98 - head_px * s)
            if t_lo <= t_hi:  # inside the feasible range, prefer the middle of the top-margin band
                return s, min(max(want, t_lo), t_hi)
        return None

    chosen = fit(PLACEMENT_MARGIN) or fit(0.0)
    if chosen is None:  # no ratio satisfies every band: take the middle and let the report say why
        s = mid * h / head_px
        chosen = (s, want)
    s, crown_out = chosen
    cx = face.eye_mid[0]
    m = np.array([[s, 0.0, w / 2 - s * cx], [0.0, s, crown_out - s * crown]])
    fb = _transform(np.array([[face.box[0], face.box[1]], [face.box[2], face.box[3]]]), m)
    return Placement(
        scale=s,
        crown_y=crown_out,
        chin_y=crown_out + head_px * s,
        eye_y=crown_out + eye_below_crown * s,
        face_box=(fb[0, 0], fb[0, 1], fb[1, 0], fb[1, 1]),
        matrix=m,
    )


def frame(
    spec: IdPhotoSpec, face: Face, mesh: Mesh, rgb: np.ndarray, alpha: np.ndarray, mesh_model: FaceMesh
) -> Framing:
    """Level the eyes (a roll of ``ROLL_CORRECT_MIN_DEG`` or more; the mesh is found again on the
    levelled picture), then place the head. ``FaceCut`` when the face runs off the source, or the
    preset's proportions would cut it."""
    roll = face.roll_deg
    rotated = abs(roll) >= ROLL_CORRECT_MIN_DEG
    if rotated:
        rot = cv2.getRotationMatrix2D(face.eye_mid, roll, 1.0)
        size = (rgb.shape[1], rgb.shape[0])
        rgb = cv2.warpAffine(rgb, rot, size, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
        alpha = cv2.warpAffine(alpha, rot, size, flags=cv2.INTER_LINEAR, borderValue=0)
        face = _rotated_face(face, rot)
        mesh = mesh_model.landmarks(rgb, face)
        face = on_mesh(face, mesh)
    if face.box[1] < 0 or face.box[0] < 0 or face.box[2] > rgb.shape[1]:
        raise FaceCut("the face runs off the edge of the source photo")
    crown, touches_top = find_crown(alpha, face, rgb, mesh)
    placement = plan_placement(spec, face, crown)
    w, h = spec.width_px, spec.height_px
    fb = placement.face_box
    if placement.crown_y < -0.5 or placement.chin_y > h + 0.5 or fb[0] < 0 or fb[2] > w:
        raise FaceCut(
            f"framing the head at {spec.name}'s proportions would cut the face "
            f"(crown at {placement.crown_y:.0f} px, chin at {placement.chin_y:.0f} px of {h})"
        )
    return Framing(rgb=rgb, alpha=alpha, face=face, touches_top=touches_top, rotated=rotated, placement=placement)
