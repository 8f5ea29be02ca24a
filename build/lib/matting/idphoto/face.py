"""Offline face detection with five landmarks (eyes, nose, mouth corners).

MTCNN's three small ONNX nets ship inside the ``mtcnn-runtime`` wheel (Apache-2.0), so detection
needs no download. (OpenCV 5 dropped the Haar cascades, and they give no landmarks; the eyes are what
make roll correction and the eye line measurable.)
"""

from __future__ import annotations

import functools
import math
import threading
from dataclasses import dataclass

import cv2
import numpy as np

from matting.errors import ConfigError

DETECT_MAX_SIDE = 1024  # detection runs on a copy at most this large; coordinates map back
PROMINENT_AREA = 0.25  # a face smaller than this share of the largest face's area is background
MIN_SCORE = 0.90


@dataclass(frozen=True)
class Face:
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in image pixels
    score: float
    left_eye: tuple[float, float]  # the eye on the image's left
    right_eye: tuple[float, float]
    nose: tuple[float, float]
    mouth_left: tuple[float, float]
    mouth_right: tuple[float, float]
    chin: float | None = None  # from the face mesh, when it has been run

    @property
    def area(self) -> float:
        return (self.box[2] - self.box[0]) * (self.box[3] - self.box[1])

    @property
    def eye_mid(self) -> tuple[float, float]:
        return ((self.left_eye[0] + self.right_eye[0]) / 2, (self.left_eye[1] + self.right_eye[1]) / 2)

    @property
    def mouth_mid(self) -> tuple[float, float]:
        return ((self.mouth_left[0] + self.mouth_right[0]) / 2, (self.mouth_left[1] + self.mouth_right[1]) / 2)

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
        eye_y, mouth_y = self.eye_mid[1], self.mouth_mid[1]
        return max(eye_y + 1.79 * (mouth_y - eye_y), self.box[3])


@functools.cache
def _detector():
    try:
        from mtcnnruntime import MTCNN
    except ImportError as exc:  # pragma: no cover - installed by the Makefile
        raise ConfigError(
            "face detection needs mtcnn-runtime: pip install --no-deps -r requirements-nodeps.txt"
        ) from exc
    return MTCNN(), threading.Lock()


def detect_faces(rgb: np.ndarray) -> list[Face]:
    """All faces found, largest first (any size, any score above the detector's own floor)."""
    h, w = rgb.shape[:2]
    scale = min(1.0, DETECT_MAX_SIDE / max(h, w))
    small = cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA) if scale < 1 else rgb
    min_face = max(20.0, 0.06 * min(small.shape[:2]))
    detector, lock = _detector()
    with lock:  # the wrapper keeps no state, but serialising keeps its ONNX sessions' threads bounded
        try:
            boxes, marks = detector.detect(np.ascontiguousarray(small[:, :, ::-1]), min_face_size=min_face)
        except ValueError:  # the wrapper raises on an image where the first stage finds nothing
            return []
    faces = []
    for box, lm in zip(boxes, marks, strict=True):
        pts = [(float(lm[i]) / scale, float(lm[i + 5]) / scale) for i in range(5)]
        left, right = sorted(pts[:2])
        faces.append(
            Face(
                box=tuple(float(v) / scale for v in box[:4]),
                score=float(box[4]),
                left_eye=left,
                right_eye=right,
                nose=pts[2],
                mouth_left=min(pts[3], pts[4]),
                mouth_right=max(pts[3], pts[4]),
            )
        )
    return sorted(faces, key=lambda f: -f.area)


def prominent_faces(faces: list[Face]) -> list[Face]:
    """Faces that matter for an ID photo: confident, and not tiny next to the largest one."""
    confident = [f for f in faces if f.score >= MIN_SCORE]
    if not confident:
        return []
    largest = max(f.area for f in confident)
    return [f for f in confident if f.area >= PROMINENT_AREA * largest]
