"""Dense face landmarks, offline: MediaPipe's face mesh (468 points) and iris models on LiteRT.

The .tflite files come from the mediapipe wheel (matting/data/models.json, sha256-verified, fetched with
``python -m matting models fetch face_landmark iris_landmark``); mediapipe itself is never installed.
The mesh looks at a square crop around the detector's face box (x1.5, turned upright by the eye
line, as MediaPipe crops it); each eye's iris model at a crop around that eye's corners.
No Airflow import.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import cv2
import numpy as np

from matting.idphoto.face import Face
from matting.idphoto.litert import runner

# MediaPipe canonical mesh indices ("right"/"left" are the subject's; the subject's right eye is on
# the image's left)
RIGHT_EYE = {"outer": 33, "inner": 133, "upper": (160, 158), "lower": (144, 153)}
LEFT_EYE = {"outer": 263, "inner": 362, "upper": (385, 387), "lower": (380, 373)}
LIPS_INNER = (13, 14)  # upper, lower lip (inner edge), on the mid line
# the lips' inner and outer contours, each a closed loop from the image-left mouth corner
INNER_LIP_LOOP = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95)
OUTER_LIP_LOOP = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146)
MOUTH_CORNERS = (61, 291)
NOSE_TIP, CHIN, FOREHEAD = 1, 152, 10
FACE_SIDES = (234, 454)  # image-left and image-right cheek contour
MESH_SIZE, IRIS_SIZE = 192, 64
FACE_CROP_SCALE, EYE_CROP_SCALE = 1.5, 2.3
PRESENCE_MIN = 0.5  # the mesh model's face-presence score (0-1) that confirms a detection as a face


@dataclass(frozen=True)
class Mesh:
    """468 landmarks (x, y in image pixels; z in the same scale, larger = farther), the model's
    face-presence score, and each eye's iris centre and radius in image pixels."""

    points: np.ndarray  # 468 x 3
    presence: float
    iris: dict[str, tuple[float, float, float]]  # "right"/"left" -> (x, y, radius)
    lids: dict[str, float]  # "right"/"left" -> lid gap / eye width from the iris model's eye contour
    eyelids: dict[str, np.ndarray]  # "right"/"left" -> the iris model's 16 eyelid points, image pixels

    def pt(self, i: int) -> np.ndarray:
        return self.points[i, :2]

    def eye_openness(self, eye: dict) -> float:
        """Eye aspect ratio from the face mesh: lid gap over eye width (open ~0.3). The mesh leans on
        its prior of an open eye; ``lids`` (the iris model's own eye contour) tells closed eyes better."""
        width = np.linalg.norm(self.pt(eye["outer"]) - self.pt(eye["inner"]))
        gaps = [np.linalg.norm(self.pt(u) - self.pt(d)) for u, d in zip(eye["upper"], eye["lower"], strict=True)]
        return float(np.mean(gaps) / max(width, 1e-6))

    @property
    def mouth_opening(self) -> float:
        """Inner-lip gap over mouth width (closed < 0.05; a laugh > 0.3)."""
        gap = np.linalg.norm(self.pt(LIPS_INNER[0]) - self.pt(LIPS_INNER[1]))
        width = np.linalg.norm(self.pt(MOUTH_CORNERS[0]) - self.pt(MOUTH_CORNERS[1]))
        return float(gap / max(width, 1e-6))

    @property
    def roll_deg(self) -> float:
        """Positive when the image-right eye sits lower (as ``Face.roll_deg``)."""
        a, b = self.pt(RIGHT_EYE["outer"]), self.pt(LEFT_EYE["outer"])
        return math.degrees(math.atan2(b[1] - a[1], b[0] - a[0]))

    @property
    def yaw_deg(self) -> float:
        """Left-right head turn from the depth of the two cheek contours (0 = facing the camera)."""
        a, b = self.points[FACE_SIDES[0]], self.points[FACE_SIDES[1]]
        return math.degrees(math.atan2(b[2] - a[2], b[0] - a[0]))

    @property
    def pitch_deg(self) -> float:
        """Nod from the depth of forehead and chin (positive: chin up, head tilted back)."""
        top, chin = self.points[FOREHEAD], self.points[CHIN]
        return math.degrees(math.atan2(top[2] - chin[2], chin[1] - top[1]))

    def gaze(self, side: str) -> tuple[float, float]:
        """Iris centre within the eye: (along the corner line from outer to inner, 0.5 = centred;
        vertical offset from the corner line in eye widths, 0 = level)."""
        eye = RIGHT_EYE if side == "right" else LEFT_EYE
        outer, inner = self.pt(eye["outer"]), self.pt(eye["inner"])
        axis = inner - outer
        width2 = float(axis @ axis) or 1e-6
        rel = np.asarray(self.iris[side][:2]) - outer
        along = float(rel @ axis) / width2
        across = float(axis[0] * rel[1] - axis[1] * rel[0]) / width2
        return along, across

    @property
    def eye_centres(self) -> tuple[np.ndarray, np.ndarray]:
        """Iris centres (image-left eye first)."""
        return np.asarray(self.iris["right"][:2]), np.asarray(self.iris["left"][:2])


def _crop(rgb: np.ndarray, centre, side: float, angle_deg: float, size: int, flip: bool = False):
    """A size x size crop of ``side`` image pixels around ``centre``, turned by ``angle_deg``; returns
    the crop and the matrix from crop to image coordinates."""
    m = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), angle_deg, size / side)
    m[0, 2] += size / 2 - centre[0]
    m[1, 2] += size / 2 - centre[1]
    if flip:
        m = np.array([[-1, 0, size], [0, 1, 0]], np.float64) @ np.vstack([m, [0, 0, 1]])
    crop = cv2.warpAffine(rgb, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return crop, cv2.invertAffineTransform(m)


def _roll(points: np.ndarray) -> float:
    """Roll from the outer eye corners (positive when the image-right eye sits lower)."""
    dx, dy = points[LEFT_EYE["outer"], :2] - points[RIGHT_EYE["outer"], :2]
    return math.degrees(math.atan2(dy, dx))


def on_mesh(face: Face, mesh: Mesh) -> Face:
    """The detector's face with the mesh's precision: eyes at the iris centres, chin at the mesh's
    chin (BlazeFace's six points are a few pixels coarse; the eye line and roll need better)."""
    left, right = mesh.eye_centres
    return dataclasses.replace(
        face, left_eye=tuple(map(float, left)), right_eye=tuple(map(float, right)), chin=float(mesh.pt(CHIN)[1])
    )


def _to_image(points: np.ndarray, inv: np.ndarray) -> np.ndarray:
    return points[:, :2] @ inv[:, :2].T + inv[:, 2]


class FaceMesh:
    """Face mesh + iris landmarks for a detected face. Needs the two models fetched."""

    def __init__(self, store=None) -> None:
        from matting.engine.models import ModelStore

        self.store = store = store or ModelStore()
        self.face_model = runner(str(store.verified_path("face_landmark")))
        self.iris_model = runner(str(store.verified_path("iris_landmark")))

    def _points(self, rgb: np.ndarray, centre, side: float, angle: float) -> tuple[np.ndarray, np.ndarray]:
        crop, inv = _crop(rgb, centre, side, angle, MESH_SIZE)
        raw, presence = self.face_model(crop.astype(np.float32) / 255.0)
        pts = raw.reshape(468, 3).astype(np.float64)
        return np.column_stack([_to_image(pts, inv), pts[:, 2] * side / MESH_SIZE]), presence

    def landmarks(self, rgb: np.ndarray, face: Face) -> Mesh:
        """Two passes, as MediaPipe tracks a face: the first on the detector's box (x1.5, turned by
        its eyes), the second on the box of the first pass's landmarks (x1.5, turned by the mesh's
        eye corners), so the result depends on the face, not on where the detector put its box."""
        x0, y0, x1, y1 = face.box
        centre = ((x0 + x1) / 2, (y0 + y1) / 2)
        points, presence = self._points(rgb, centre, max(x1 - x0, y1 - y0) * FACE_CROP_SCALE, face.roll_deg)
        lo, hi = points[:, :2].min(axis=0), points[:, :2].max(axis=0)
        points, presence = self._points(rgb, (lo + hi) / 2, float(max(hi - lo)) * FACE_CROP_SCALE, _roll(points))
        mesh_roll = _roll(points)
        iris, lids, eyelids = {}, {}, {}
        for name, eye in (("right", RIGHT_EYE), ("left", LEFT_EYE)):
            a, b = points[eye["outer"], :2], points[eye["inner"], :2]
            eye_side = float(np.linalg.norm(a - b)) * EYE_CROP_SCALE
            crop, inv = _crop(rgb, (a + b) / 2, eye_side, mesh_roll, IRIS_SIZE, flip=(name == "left"))
            contours, iris_raw = self.iris_model(crop.astype(np.float32) / 255.0)
            ipts = _to_image(iris_raw.reshape(5, 3).astype(np.float64), inv)
            radius = float(np.mean(np.linalg.norm(ipts[1:] - ipts[0], axis=1)))
            iris[name] = (float(ipts[0, 0]), float(ipts[0, 1]), radius)
            lid = contours.reshape(71, 3)[:16, :2]  # the 16 eyelid contour points, in the upright crop
            lids[name] = float(np.ptp(lid[:, 1]) / max(np.ptp(lid[:, 0]), 1e-6))
            eyelids[name] = _to_image(lid.astype(np.float64), inv)
        presence_score = float(1 / (1 + np.exp(-float(presence.ravel()[0]))))
        return Mesh(points=points, presence=presence_score, iris=iris, lids=lids, eyelids=eyelids)

    def confirmed(self, rgb: np.ndarray, faces: list[Face]) -> list[tuple[Face, Mesh]]:
        """The detections the mesh model also sees as a face (its face-presence score at least
        ``PRESENCE_MIN``), each with its mesh. A detector box on a collar or a pattern scores 0.6-0.7
        with the detector and ~0.002 here; every real face of the evaluation set scores 1.0."""
        meshes = [(face, self.landmarks(rgb, face)) for face in faces]
        return [(face, mesh) for face, mesh in meshes if mesh.presence >= PRESENCE_MIN]
