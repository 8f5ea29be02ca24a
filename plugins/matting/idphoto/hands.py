"""Hands near the face, offline: MediaPipe's palm detector (lite) on LiteRT.

A passport office refuses a photo with a hand over the face (a chin resting on a hand, fingers at the
mouth). The detector is an SSD over 2016 fixed anchors at 192 x 192 (MediaPipe's palm_detection graph:
strides 8 and 16, 2 and 6 anchors per cell, inputs scaled to 0..1, boxes relative to their anchor).
The .tflite file comes from the mediapipe wheel like the face mesh (matting/data/models.json,
``python -m matting models fetch palm_detection``). No Airflow import.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from matting.idphoto.face import box_iou
from matting.idphoto.litert import runner

SIZE = 192
MIN_SCORE = 0.5  # MediaPipe's palm graph threshold


@dataclass(frozen=True)
class Palm:
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in image pixels
    score: float


@lru_cache(maxsize=1)
def _anchors() -> np.ndarray:
    centres = []
    for stride, per_cell in ((8, 2), (16, 6)):
        cells = SIZE // stride
        for y in range(cells):
            for x in range(cells):
                centres += [((x + 0.5) / cells, (y + 0.5) / cells)] * per_cell
    return np.asarray(centres, np.float32)


class PalmDetector:
    """Palms in an image region. Needs ``palm_detection`` fetched."""

    def __init__(self, store=None) -> None:
        from matting.engine.models import ModelStore

        self.model = runner(str((store or ModelStore()).verified_path("palm_detection")))

    def palms(self, rgb: np.ndarray, region: tuple[float, float, float, float] | None = None) -> list[Palm]:
        """Palms found in ``region`` (x0, y0, x1, y1; the whole image if None), letterboxed to a square,
        strongest first, overlapping detections merged (IoU > 0.3)."""
        h, w = rgb.shape[:2]
        x0, y0, x1, y1 = (0, 0, w, h) if region is None else region
        x0, y0 = int(max(0, x0)), int(max(0, y0))
        x1, y1 = int(min(w, x1)), int(min(h, y1))
        if x1 - x0 < 8 or y1 - y0 < 8:
            return []
        patch = rgb[y0:y1, x0:x1]
        side = max(patch.shape[:2])
        square = np.zeros((side, side, 3), np.uint8)
        oy, ox = (side - patch.shape[0]) // 2, (side - patch.shape[1]) // 2
        square[oy : oy + patch.shape[0], ox : ox + patch.shape[1]] = patch
        tensor = cv2.resize(square, (SIZE, SIZE), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
        regressors, logits = self.model(tensor)
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits.reshape(-1), -80, 80)))
        anchors = _anchors()
        found: list[Palm] = []
        for i in np.argsort(-scores):
            if scores[i] < MIN_SCORE:
                break
            cx, cy, bw, bh = regressors.reshape(-1, 18)[i, :4] / SIZE
            cx, cy = cx + anchors[i, 0], cy + anchors[i, 1]
            box = tuple(
                float(v)
                for v in (
                    (cx - bw / 2) * side - ox + x0,
                    (cy - bh / 2) * side - oy + y0,
                    (cx + bw / 2) * side - ox + x0,
                    (cy + bh / 2) * side - oy + y0,
                )
            )
            if not found or box_iou(box, [p.box for p in found]).max() <= 0.3:
                found.append(Palm(box=box, score=float(scores[i])))
        return found


def confirmed_palms(detector: PalmDetector, rgb: np.ndarray, face_box, min_score: float) -> list[Palm]:
    """Palms seen both in the whole photo and in a close-up around the face (2 face boxes), each
    with its lower score: a large face alone can look like a palm to one view (0.53-0.59 on clean
    portraits) but not to both."""
    x0, y0, x1, y1 = face_box
    cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0) * 1.0
    close = detector.palms(rgb, (cx - half, cy - half, cx + half, cy + half))
    out = []
    for palm in detector.palms(rgb):
        twins = [p for p in close if box_iou(p.box, [palm.box])[0] > 0.3]
        score = min([palm.score, max(p.score for p in twins)]) if twins else 0.0
        if score >= min_score:
            out.append(Palm(box=palm.box, score=score))
    return out
