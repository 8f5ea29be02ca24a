"""The ID-photo evaluation set: real portraits (public domain: the NASA astronaut portrait and the
fixtures derived from it, tests/data/README.md; CC0: scikit-image's "camera", a man looking through
a camera held to his face) plus cases derived from them, each with the verdict a passport office
would give. `make idphoto-eval` prints the per-rule table; the tests assert every verdict
(tests/unit/test_idphoto_eval.py).

Not covered yet (no permissively licensed real photo here shows them, and they cannot be derived
honestly by editing): looking down, a hand over the face, an underexposed face."""

from __future__ import annotations

import io
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]


def _skimage_photo(name: str) -> Path:
    import skimage.data

    return Path(skimage.data.__file__).parent / name


SAMPLE = ROOT / "include" / "samples" / "astronaut.jpg"
DATA = ROOT / "tests" / "data"


def _rgb(path: Path) -> np.ndarray:
    from matting.images import decode_file

    return decode_file(path).rgb


def _jpeg(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=92)
    return buf.getvalue()


def blurred(rgb):
    return cv2.GaussianBlur(rgb, (0, 0), 1.5)


def tiny(rgb):
    return cv2.resize(rgb, (rgb.shape[1] // 2, rgb.shape[0] // 2), interpolation=cv2.INTER_AREA)


def side_light(rgb):
    """Light from the left: the right half of the face in shadow (soft edge at the nose)."""
    from matting.idphoto.face import detect_faces, prominent_faces

    face = prominent_faces(detect_faces(rgb))[0]
    cx = (face.box[0] + face.box[2]) / 2
    x = np.arange(rgb.shape[1], dtype=np.float32)
    gain = 1.0 - 0.65 / (1.0 + np.exp(-(x - cx) / 6.0))
    return np.clip(rgb * gain[None, :, None], 0, 255).astype(np.uint8)


def eyes_closed(rgb):
    """Both eyes painted over with the skin around them (cv2.inpaint from the mesh's eye contours)."""
    from matting.engine.models import ModelStore
    from matting.idphoto.face import detect_faces, prominent_faces
    from matting.idphoto.mesh import FaceMesh

    face = prominent_faces(detect_faces(rgb))[0]
    mesh = FaceMesh(ModelStore()).landmarks(rgb, face)
    mask = np.zeros(rgb.shape[:2], np.uint8)
    for ring in (
        (33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7),
        (263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373, 390, 249),
    ):
        cv2.fillConvexPoly(mask, cv2.convexHull(mesh.points[list(ring), :2].astype(np.int32)), 255)
    mask = cv2.dilate(mask, np.ones((5, 5), np.uint8))
    return cv2.inpaint(rgb, mask, 5, cv2.INPAINT_TELEA)


@dataclass(frozen=True)
class Case:
    name: str
    source: Path
    derive: object  # rgb -> rgb, or None for the photo as it is
    spec: str
    accept: bool  # the passport office's verdict
    caught_by: tuple[str, ...] = ()  # the rule(s) that must refuse it ("rejected" for no/two faces)
    why: str = ""


CASES = [
    Case("astronaut", SAMPLE, None, "us-passport", True, why="frontal, eyes open, natural smile (US allows it)"),
    Case("astronaut, 1-inch", SAMPLE, None, "cn-1inch", True, why="studio 1-inch photo"),
    Case("astronaut, EXIF-rotated file", DATA / "portrait_exif_rotated.jpg", None, "us-passport", True),
    Case("astronaut, head at the top", DATA / "portrait_head_at_top.jpg", None, "us-passport", True),
    Case("astronaut, small in a large frame", DATA / "portrait_small_in_frame.jpg", None, "cn-1inch", True),
    Case(
        "astronaut, tilted 8 degrees",
        DATA / "portrait_tilted_8deg.jpg",
        None,
        "us-passport",
        True,
        why="the roll is corrected",
    ),
    Case(
        "astronaut, Schengen",
        SAMPLE,
        None,
        "schengen",
        False,
        ("mouth_opening",),
        "teeth showing: Schengen/ICAO ask for a neutral expression with the mouth closed",
    ),
    Case("two people", DATA / "two_people.jpg", None, "us-passport", False, ("rejected",), "two faces"),
    Case(
        "cameraman (CC0)",
        _skimage_photo("camera.png"),
        None,
        "us-passport",
        False,
        ("yaw_deg", "gaze_along"),
        "head turned ~50 degrees, looking into a camera held at the eye",
    ),
    Case("blurred", SAMPLE, blurred, "us-passport", False, ("sharpness",), "out of focus"),
    Case(
        "tiny face",
        SAMPLE,
        tiny,
        "us-passport",
        False,
        ("upscale", "sharpness"),
        "would be enlarged 4.4x: too little resolution",
    ),
    Case(
        "strong side light", SAMPLE, side_light, "us-passport", False, ("lighting_balance",), "half the face in shadow"
    ),
    Case("eyes closed", SAMPLE, eyes_closed, "us-passport", False, ("eye_openness",), "eyes painted over"),
]


def run_case(case: Case, engine) -> dict:
    """The verdict our strict gate gives, and the rules that refused."""
    from matting.errors import ImageError
    from matting.idphoto import compose_id_photo
    from matting.idphoto.batch import options_from
    from matting.images import decode

    rgb = _rgb(case.source)
    data = _jpeg(case.derive(rgb)) if case.derive else case.source.read_bytes()
    try:
        report = compose_id_photo(engine, decode(data), options_from(case.spec, "white")).report
    except ImageError as exc:
        return {"accept": False, "failed": ["rejected"], "reasons": [str(exc)]}
    failed = [r["rule"] for r in report["rules"] if not r["passed"] and r["rule"] != "background_colour"]
    return {"accept": not failed, "failed": failed, "reasons": report["reasons"]}


def table(results: list[tuple[Case, dict]]) -> str:
    lines = ["| case | standard | office | ours | refused by |", "|---|---|---|---|---|"]
    for case, res in results:
        office = "accept" if case.accept else "refuse"
        ours = "accept" if res["accept"] else "refuse"
        lines.append(f"| {case.name} | {case.spec} | {office} | {ours} | {', '.join(res['failed']) or '-'} |")
    rules = sorted({r for _, res in results for r in res["failed"]})
    lines += ["", "| rule | bad photos caught | good photos wrongly refused |", "|---|---|---|"]
    for rule in rules:
        caught = sum(1 for c, res in results if not c.accept and rule in res["failed"])
        wrong = sum(1 for c, res in results if c.accept and rule in res["failed"])
        lines.append(f"| {rule} | {caught} | {wrong} |")
    return "\n".join(lines)


def main() -> None:
    sys.path.insert(0, str(ROOT / "plugins"))
    from matting.engine import Engine

    engine = Engine(scenario="id_photo")
    results = [(case, run_case(case, engine)) for case in CASES]
    print(table(results))


if __name__ == "__main__":
    main()
