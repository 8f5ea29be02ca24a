"""A second opinion on what the matte kept: MediaPipe's selfie segmentation (256x256, Apache-2.0),
a person's probability per pixel. No Airflow import.

The matte decides what the ID photo shows; when it keeps a piece of the old backdrop joined to the
subject (a flag's stripe at the shoulder of a blocky JPEG, a shadow, a chair back), nothing about the
final photo's pixels says it is not the person. A different network, trained only on people, does:
run on the (levelled) source, where it sees the backdrop the matte saw, and carried into the output
frame by the placement's own transform, so its verdict does not depend on the colour we paint.
"""

from __future__ import annotations

import cv2
import numpy as np

from matting.idphoto.litert import runner

SIZE = 256


class PersonSegmenter:
    """Needs ``selfie_segmentation`` fetched (``python -m matting models fetch idphoto``)."""

    def __init__(self, store=None) -> None:
        from matting.engine.models import ModelStore

        self.model = runner(str((store or ModelStore()).verified_path("selfie_segmentation")))

    def probability(self, rgb: np.ndarray) -> np.ndarray:
        """A person's probability (0-1, float32) for every pixel of ``rgb`` (the picture stretched to
        the model's square input, as MediaPipe's own graph feeds it, and the answer stretched back)."""
        h, w = rgb.shape[:2]
        square = cv2.resize(rgb, (SIZE, SIZE), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
        (mask,) = self.model(square)
        return cv2.resize(mask.reshape(SIZE, SIZE).astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)

    def in_frame(self, rgb: np.ndarray, matrix: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """The person probability of ``rgb`` carried into an output frame of ``size`` (w, h) by the
        2x3 affine ``matrix`` (the placement's); outside the source it is 0."""
        return cv2.warpAffine(self.probability(rgb), matrix, size, flags=cv2.INTER_LINEAR, borderValue=0.0)


# a matte pixel (alpha > 0.5) the person network gives less than this is not the person
NOT_PERSON = 0.2
# pieces narrower than this share of the photo's width are the outline's disagreement (hair tips, a
# shoulder's edge), not a remnant: removed by an opening of this size
OUTLINE_WIDTH = 0.015


def remnant_share(alpha: np.ndarray, person: np.ndarray) -> tuple[float, int]:
    """(share of the photo kept by the matte where the person network sees no person, after the
    thin outline slivers are opened away; the number of such pieces)."""
    kept = (alpha > 127) & (person < NOT_PERSON)
    k = max(3, round(alpha.shape[1] * OUTLINE_WIDTH)) | 1
    kernel = np.ones((k, k), np.uint8)
    opened = cv2.dilate(cv2.erode(kept.astype(np.uint8), kernel), kernel).astype(bool) & kept
    pieces = cv2.connectedComponents(opened.astype(np.uint8))[0] - 1
    return float(opened.mean()), int(pieces)
