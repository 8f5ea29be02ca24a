"""ID photo stage 1, detect: the one face of the portrait, its mesh, and what only the source shows
(measured by ``source.py``).

The models are loaded once per model store (``face_mesh``, ``palm_detector``) and reused by every
photo of the process.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from matting.engine import postprocess as pp
from matting.errors import MultipleFaces, NoFaceFound
from matting.idphoto.face import Face, detect_faces, face_detector, prominent_faces
from matting.idphoto.hands import PalmDetector
from matting.idphoto.mesh import FaceMesh, Mesh, on_mesh
from matting.idphoto.person import PersonSegmenter
from matting.idphoto.source import measure_source
from matting.images import DecodedImage


@lru_cache(maxsize=2)
def face_mesh(store) -> FaceMesh:
    """One mesh per model store (its interpreters are reused by every photo of the process)."""
    return FaceMesh(store)


@lru_cache(maxsize=2)
def palm_detector(store) -> PalmDetector:
    return PalmDetector(store)


@lru_cache(maxsize=2)
def person_segmenter(store) -> PersonSegmenter:
    return PersonSegmenter(store)


def load_models(store) -> None:
    """Load the face detector, mesh (with iris), palm detector and person segmenter now: a missing or corrupt model
    fails the run before its first photo, not every photo on its own."""
    face_detector(store), face_mesh(store), palm_detector(store), person_segmenter(store)


@dataclass
class Subject:
    """The person in the source photo."""

    face: Face  # the one prominent face, its eyes, nose and mouth from the mesh
    mesh: Mesh  # its landmarks on the source
    detections: int  # every face detection, the unsure and tiny ones included
    from_source: dict  # what measure_source found on the source face (mouth, hand, sharpness)

    @property
    def roll_deg(self) -> float:
        return self.face.roll_deg


def find_subject(store, image: DecodedImage) -> Subject:
    """The portrait's one face; ``NoFaceFound`` / ``MultipleFaces`` when it has none or several."""
    seen = as_seen(image)
    faces = detect_faces(seen, store)
    prominent = prominent_faces(faces)
    if not prominent:
        raise NoFaceFound("no face found" + (f" (only {len(faces)} unsure or tiny detection(s))" if faces else ""))
    if len(prominent) > 1:  # a second face must be one for the mesh model too (not a collar's pattern)
        confirmed = face_mesh(store).confirmed(seen, prominent)
        if len(confirmed) != 1:
            raise MultipleFaces(
                f"{len(confirmed) or len(prominent)} prominent faces found; an ID photo needs exactly one"
            )
        face, mesh = confirmed[0]
    else:
        face, mesh = prominent[0], face_mesh(store).landmarks(seen, prominent[0])
    return Subject(
        face=on_mesh(face, mesh),
        mesh=mesh,
        detections=len(faces),
        from_source=measure_source(seen, mesh, palm_detector(store)),
    )


def as_seen(image: DecodedImage) -> np.ndarray:
    """The source as the detectors see it: a transparent portrait over white."""
    return image.rgb if image.alpha is None else pp.over_background(image.rgb, image.alpha, (255, 255, 255))
