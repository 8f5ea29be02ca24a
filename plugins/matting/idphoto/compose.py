"""One portrait -> one standard ID photo, stage by stage, each stage in its own module:

1. detect (``detect.py``, ``source.py``): the one face, its mesh, what only the source shows (mouth, hands, focus);
2. matte (the engine): the subject's alpha;
3. place (``place.py``): level the eyes, find the crown, scale and place the head inside the bands;
4. render (``render.py``): composite over the background colour, encode within the KB limit;
5. measure (``measure.py``): every rule again on the file as written;
6. report (``report.py``): the rule table, the verdict (bands and margins: ``rules.py``), the reasons and warnings.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from matting.engine.core import Engine
from matting.idphoto.detect import as_seen, face_mesh, find_subject, palm_detector, person_segmenter
from matting.idphoto.measure import measure_photo
from matting.idphoto.photo import detail
from matting.idphoto.place import frame
from matting.idphoto.render import encode_photo, render_over
from matting.idphoto.report import build_report
from matting.idphoto.specs import IdPhotoSpec
from matting.images import DecodedImage

__all__ = ["IdPhoto", "IdPhotoOptions", "compose_id_photo"]


@dataclass(frozen=True)
class IdPhotoOptions:
    spec: IdPhotoSpec
    background: tuple[int, int, int]
    background_name: str = ""
    format: str = "jpeg"  # jpeg | png
    kb_max: float | None = None  # overrides the spec's
    kb_min: float | None = None
    strict: bool = True

    @property
    def limits_kb(self) -> tuple[float | None, float | None]:
        return (self.kb_min or self.spec.kb_min, self.kb_max or self.spec.kb_max)


@dataclass
class IdPhoto:
    image: Image.Image
    data: bytes
    report: dict = field(default_factory=dict)
    alpha: np.ndarray | None = None  # the subject's alpha placed in the final frame (uint8, before encoding)

    @property
    def passed(self) -> bool:
        return bool(self.report.get("passed"))


@contextmanager
def _timed(timings: dict[str, float], stage: str):
    t0 = time.perf_counter()
    yield
    timings[stage] = round((time.perf_counter() - t0) * 1000, 1)


def compose_id_photo(engine: Engine, image: DecodedImage, options: IdPhotoOptions) -> IdPhoto:
    """The whole ID-photo pipeline for one decoded portrait. Raises NoFaceFound / MultipleFaces /
    FaceCut for photos that cannot be framed; everything else is measured into the report."""
    spec, store = options.spec, engine.store
    timings: dict[str, float] = {}
    with _timed(timings, "face"):  # detection, mesh, the source's measures
        subject = find_subject(store, image)
    matte = engine.matte(image, timings)
    with _timed(timings, "place"):  # levelling, placing, compositing
        framing = frame(spec, subject.face, subject.mesh, matte.rgb, matte.alpha, face_mesh(store))
        # real detail of the source face at the resolution this output uses
        subject.from_source["detail"] = detail(as_seen(image), subject.mesh, framing.placement.scale)
        size = (spec.width_px, spec.height_px)
        composed, alpha = render_over(framing.rgb, framing.alpha, framing.placement.matrix, size, options.background)
        # what a network trained only on people makes of the same frame (a second opinion on the matte)
        person = person_segmenter(store).in_frame(framing.rgb, framing.placement.matrix, size)
    with _timed(timings, "encode"):
        rendered = encode_photo(composed, alpha, spec, options)
    with _timed(timings, "measure"):  # as it will be seen: after JPEG and any KB-limit downscale
        measured = measure_photo(
            rendered.data,
            rendered.alpha,
            person,
            spec,
            framing.placement.scale,
            face_mesh(store),
            palm_detector(store),
            subject.from_source,
        )
    report = build_report(
        spec,
        options,
        roll=subject.roll_deg,
        detections=subject.detections,
        framing=framing,
        rendered=rendered,
        measured=measured,
    )
    report["timings_ms"] = timings
    return IdPhoto(image=rendered.image, data=rendered.data, report=report, alpha=rendered.alpha)
