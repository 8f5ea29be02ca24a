"""Offline face detection with six landmarks: MediaPipe's BlazeFace on LiteRT.

Two detectors from the same mediapipe wheel the face mesh comes from (matting/data/models.json,
``python -m matting models fetch face_detection_short_range face_detection_full_range``; Apache-2.0),
run by the LiteRT runtime the mesh already needs, so a plain ``pip install`` gives working ID photos:

- short range (128 x 128, 896 anchors: strides 8 and 16, 2 and 6 per cell): faces that fill a good
  part of the photo, the usual portrait;
- full range, sparse (192 x 192, 2304 anchors: stride 4, one per cell): smaller, farther faces (a
  full-length shot, a face in a crowd).

Both see the whole photo letterboxed to a square, scaled to -1..1 (MediaPipe's face-detection graph);
boxes and landmarks are relative to their anchor (fixed anchor size). Detections of the two that
overlap are blended, weighted by score (MediaPipe's "weighted" suppression). No Airflow import.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from matting.idphoto.litert import runner

PROMINENT_AREA = 0.25  # a face smaller than this share of the largest face's area is background
# Between what the evaluation set shows: real faces score 0.69 (the smaller of two people side by
# side, letterboxed to half size) to 0.95; the dark half of a side-lit face scored 0.45-0.50 as a
# second face on the final photo, at MediaPipe's own default threshold (0.5)
MIN_SCORE = 0.6
OVERLAP = 0.3  # MediaPipe's min_suppression_threshold: detections overlapping more are one face
# (model name, input side, ((stride, anchors per cell), ...))
DETECTORS = (
    ("face_detection_short_range", 128, ((8, 2), (16, 6))),
    ("face_detection_full_range", 192, ((4, 1),)),
)


@dataclass(frozen=True)
class Face:
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in image pixels (brows to chin, square)
    score: float
    left_eye: tuple[float, float]  # the eye on the image's left
    right_eye: tuple[float, float]
    nose: tuple[float, float]
    mouth: tuple[float, float]  # the mouth's centre
    chin: float | None = None  # from the face mesh, when it has been run

    @property
    def area(self) -> float:
        return (self.box[2] - self.box[0]) * (self.box[3] - self.box[1])

    @property
    def eye_mid(self) -> tuple[float, float]:
        return ((self.left_eye[0] + self.right_eye[0]) / 2, (self.left_eye[1] + self.right_eye[1]) / 2)

    @property
    def roll_deg(self) -> float:
        """Head roll from the eye line; positive when the right-hand eye sits lower (clockwise tilt)."""
        dx = self.right_eye[0] - self.left_eye[0]
        dy = self.right_eye[1] - self.left_eye[1]
        return math.degrees(math.atan2(dy, dx))

    @property
    def chin_y(self) -> float:
        """Chin estimated from the landmarks (eye line to mouth is ~0.56 of eye line to chin in adult
        faces), never above the detector's box bottom; the mesh's own chin point when known."""
        if self.chin is not None:
            return self.chin
        eye_y, mouth_y = self.eye_mid[1], self.mouth[1]
        return max(eye_y + 1.79 * (mouth_y - eye_y), self.box[3])


@lru_cache(maxsize=8)
def anchors(size: int, layers: tuple[tuple[int, int], ...]) -> np.ndarray:
    """SSD anchor centres (x, y in 0..1), in the models' output order: per layer, row by row, each
    cell's anchors together."""
    centres: list[tuple[float, float]] = []
    for stride, per_cell in layers:
        cells = size // stride
        for y in range(cells):
            for x in range(cells):
                centres += [((x + 0.5) / cells, (y + 0.5) / cells)] * per_cell
    return np.asarray(centres, np.float32)


def decode(
    regressors: np.ndarray, logits: np.ndarray, size: int, layers, min_score: float
) -> tuple[np.ndarray, np.ndarray]:
    """(scores, rows of [x0, y0, x1, y1, 6 x (x, y)]) in 0..1 of the model's square input, for the
    anchors scoring at least ``min_score``."""
    scores = 1.0 / (1.0 + np.exp(-np.clip(logits.reshape(-1), -80, 80)))
    keep = scores >= min_score
    raw = regressors.reshape(-1, 16)[keep] / size
    centre = anchors(size, layers)[keep]
    cx, cy = raw[:, 0] + centre[:, 0], raw[:, 1] + centre[:, 1]
    half_w, half_h = raw[:, 2] / 2, raw[:, 3] / 2
    points = raw[:, 4:].reshape(-1, 6, 2) + centre[:, None, :]
    rows = np.column_stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h, points.reshape(-1, 12)])
    return scores[keep], rows


def box_iou(a, b) -> np.ndarray:
    """IoU of box ``a`` with each row of ``b`` (x0, y0, x1, y1)."""
    a, b = np.asarray(a, np.float64), np.atleast_2d(np.asarray(b, np.float64))
    ix = np.clip(np.minimum(a[2], b[:, 2]) - np.maximum(a[0], b[:, 0]), 0, None)
    iy = np.clip(np.minimum(a[3], b[:, 3]) - np.maximum(a[1], b[:, 1]), 0, None)
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def blend(scores: np.ndarray, rows: np.ndarray, overlap: float = OVERLAP) -> list[tuple[float, np.ndarray]]:
    """Weighted suppression: the best detection and all that overlap it by more than ``overlap``
    become one, their boxes and landmarks averaged by score; its score is the best one's."""
    order = np.argsort(-scores)
    scores, rows = scores[order], rows[order]
    out = []
    while scores.size:
        same = box_iou(rows[0], rows) > overlap
        same[0] = True
        weights = scores[same][:, None]
        out.append((float(scores[0]), (rows[same] * weights).sum(axis=0) / weights.sum()))
        scores, rows = scores[~same], rows[~same]
    return out


class FaceDetector:
    """BlazeFace short and full range. Needs both models fetched."""

    def __init__(self, store=None) -> None:
        from matting.engine.models import ModelStore

        store = store or ModelStore()
        self.models = [(runner(str(store.verified_path(name))), size, layers) for name, size, layers in DETECTORS]

    def faces(self, rgb: np.ndarray) -> list[Face]:
        """All faces found (score >= MIN_SCORE), largest first."""
        h, w = rgb.shape[:2]
        side = max(h, w)
        oy, ox = (side - h) // 2, (side - w) // 2
        square = np.zeros((side, side, 3), np.uint8)
        square[oy : oy + h, ox : ox + w] = rgb
        all_scores, all_rows = [], []
        for model, size, layers in self.models:
            tensor = cv2.resize(square, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
            regressors, logits = model(tensor / 127.5 - 1.0)
            scores, rows = decode(regressors, logits, size, layers, MIN_SCORE)
            all_scores.append(scores)
            all_rows.append(rows)
        faces = []
        for score, row in blend(np.concatenate(all_scores), np.concatenate(all_rows)):
            xy = row.reshape(-1, 2) * side - (ox, oy)  # box corners, then the six landmarks
            pts = [tuple(float(v) for v in p) for p in xy[2:]]
            left, right = sorted(pts[:2])  # the model's "right eye" is the subject's (image left)
            faces.append(
                Face(
                    box=(float(xy[0, 0]), float(xy[0, 1]), float(xy[1, 0]), float(xy[1, 1])),
                    score=score,
                    left_eye=left,
                    right_eye=right,
                    nose=pts[2],
                    mouth=pts[3],
                )
            )
        return sorted(faces, key=lambda f: -f.area)


@lru_cache(maxsize=2)
def face_detector(store=None) -> FaceDetector:
    """One detector per model store (its interpreters are reused by every photo of the process)."""
    return FaceDetector(store)


def detect_faces(rgb: np.ndarray, store=None) -> list[Face]:
    """All faces found, largest first (any size, any score above MIN_SCORE)."""
    return face_detector(store).faces(rgb)


def prominent_faces(faces: list[Face]) -> list[Face]:
    """Faces that matter for an ID photo: not tiny next to the largest one."""
    if not faces:
        return []
    largest = max(f.area for f in faces)
    return [f for f in faces if f.area >= PROMINENT_AREA * largest]
