"""The ID-photo evaluation set: real portraits of five people, plus cases derived from them, each with
the verdict a passport office would give. `make idphoto-eval` prints the per-rule table; the tests
assert every verdict (tests/unit/test_idphoto_eval.py).

Public domain or CC0, none committed except the astronaut: the NASA astronaut portrait and the
fixtures derived from it (tests/data/README.md); scikit-image's "camera" (CC0, a man looking through
a camera held to his face); White House photographs of Barack Obama and Joe Biden and the US Navy
portrait of Grace Hopper, fetched from PyPI and checksum-verified (tests/idphoto/portraits.py).

Derived cases edit a real photo the way the fault happens: light (2 stops under, from the left), focus,
size, eyes painted over, a real hand (from the Obama portrait) pasted over the mouth.
Not covered (no such real photo here, and a 3-D head turn cannot be derived honestly by 2-D
editing): looking down. Hats are put on these heads by tests/idphoto/degrade_hats.py."""

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


@dataclass(frozen=True)
class Fetched:
    """A portrait fetched on first use (tests/idphoto/portraits.py), not at import."""

    name: str

    def path(self) -> Path:
        from idphoto.portraits import portrait

        return portrait(self.name)


def _portrait(name: str) -> Fetched:
    return Fetched(name)


def _path(source) -> Path:
    return source.path() if isinstance(source, Fetched) else source


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


def underexposed(rgb):
    """Two stops under: a quarter of the light, in linear sRGB."""
    linear = (rgb / 255.0) ** 2.2 * 0.25
    return (np.clip(linear, 0, 1) ** (1 / 2.2) * 255).round().astype(np.uint8)


def hand_over_mouth(rgb):
    """A real hand (the fingers of the Obama portrait's crossed arms, cut from the dark suit by colour)
    pasted over the mouth and chin, 0.9 face widths (cheek to cheek) wide."""
    from matting.engine.models import ModelStore
    from matting.idphoto.face import detect_faces, prominent_faces
    from matting.idphoto.mesh import FACE_SIDES, LIPS_INNER, FaceMesh

    donor = _rgb(_portrait("obama.jpg").path())[780:950, 540:720].astype(np.float32)
    skin = (donor.mean(axis=2) > 70) & (donor[..., 0] > donor[..., 2] + 10)
    mask = cv2.morphologyEx(skin.astype(np.uint8) * 255, cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))
    mask = cv2.GaussianBlur(mask, (0, 0), 1.5).astype(np.float32) / 255
    face = prominent_faces(detect_faces(rgb))[0]
    mesh = FaceMesh(ModelStore()).landmarks(rgb, face)
    cheeks = np.linalg.norm(mesh.pt(FACE_SIDES[0]) - mesh.pt(FACE_SIDES[1]))
    scale = 0.9 * cheeks / donor.shape[1]
    hand = cv2.resize(donor, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    alpha = cv2.resize(mask, (hand.shape[1], hand.shape[0]))[..., None]
    mx, my = (mesh.pt(LIPS_INNER[0]) + mesh.pt(LIPS_INNER[1])) / 2
    top, left = int(my - hand.shape[0] * 0.35), int(mx - hand.shape[1] * 0.5)
    out = rgb.astype(np.float32)
    region = out[top : top + hand.shape[0], left : left + hand.shape[1]]
    region[:] = region * (1 - alpha) + hand * alpha
    return np.clip(out, 0, 255).astype(np.uint8)


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


def jpeg_quality_10(rgb):
    """Saved at JPEG quality 10 (as a phone app's 'small file' or a chat app does): 8x8 blocks, and
    MODNet's matte keeps a stripe of the flag behind the astronaut at her shoulder."""
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=10)
    return np.asarray(Image.open(buf).convert("RGB"))


@dataclass(frozen=True)
class Case:
    name: str
    source: Path | Fetched
    derive: object  # rgb -> rgb, or None for the photo as it is
    spec: str
    accept: bool  # the passport office's verdict
    caught_by: tuple[str, ...] = ()  # the rule(s) that must refuse it ("rejected" for no/two faces)
    why: str = ""

    @property
    def person(self) -> str:
        """Whose photo it is (the unit the leave-one-person-out evaluation holds out)."""
        name = self.source.name if isinstance(self.source, Fetched) else self.source.name
        for prefix, person in PEOPLE:
            if name.startswith(prefix):
                return person
        return "Collins"  # include/samples/astronaut.jpg and the fixtures made from it (tests/data)


PEOPLE = (("obama", "Obama"), ("biden", "Biden"), ("grace_hopper", "Hopper"), ("camera", "cameraman"))


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
    # Labelled "accept" until 2026-12-01; looked at again when the new face stack measured his yaw at
    # 9.4-10.6 deg on every variant: the head is visibly turned to his left (more of his right cheek
    # shows), twice ICAO's 5 deg. Relabelled on the set the bands are tuned on (see docs/id-photos.md).
    Case(
        "Biden, official portrait",
        _portrait("biden.jpg"),
        None,
        "us-passport",
        False,
        ("yaw_deg",),
        "head turned ~10 degrees to his left (ICAO: within 5)",
    ),
    Case("Biden, official portrait, Schengen", _portrait("biden.jpg"), None, "schengen", False, ("yaw_deg",)),
    Case("Biden, UK", _portrait("biden.jpg"), None, "uk-passport", False, ("yaw_deg",)),
    Case(
        "Obama, official portrait",
        _portrait("obama.jpg"),
        None,
        "us-passport",
        True,
        why="a natural smile, eyes open (narrowed by the smile): the US allows it",
    ),
    Case(
        "Obama, official portrait, Schengen",
        _portrait("obama.jpg"),
        None,
        "schengen",
        False,
        ("mouth_opening",),
        "broad smile, teeth showing: not a neutral expression",
    ),
    Case(
        "Obama at a lectern",
        _portrait("obama2.jpg"),
        None,
        "us-passport",
        False,
        ("yaw_deg",),
        "speaking, head turned 15 degrees to the side",
    ),
    Case(
        "Obama, full length from below",
        _portrait("obama3.jpg"),
        None,
        "us-passport",
        False,
        ("pitch_deg",),
        "camera at waist height: the face is seen from below, chin up",
    ),
    Case(
        "Hopper, US Navy portrait",
        _portrait("grace_hopper.jpg"),
        None,
        "us-passport",
        False,
        ("glasses",),
        "glasses (the US refuses them since 2016) and a uniform cap",
    ),
    Case("two people", DATA / "two_people.jpg", None, "us-passport", False, ("rejected",), "two faces"),
    Case(
        "cameraman (CC0)",
        _skimage_photo("camera.png"),
        None,
        "us-passport",
        False,
        ("yaw_deg", "eyes_visible", "gaze_along"),
        "head turned ~50 degrees, one eye behind a camera held at the eye",
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
    Case("underexposed", SAMPLE, underexposed, "us-passport", False, ("face_exposure",), "two stops too dark"),
    Case(
        "saved at JPEG quality 10",
        SAMPLE,
        jpeg_quality_10,
        "us-passport",
        False,
        ("jpeg_blocking", "background_remnant"),
        "blocky, and a stripe of the old backdrop (the flag) kept beside the shoulder",
    ),
    Case("Obama, underexposed", _portrait("obama.jpg"), underexposed, "us-passport", False, ("face_exposure",)),
    Case(
        "eyes closed", SAMPLE, eyes_closed, "us-passport", False, ("eye_openness", "eyes_visible"), "eyes painted over"
    ),
    Case("Obama, eyes closed", _portrait("obama.jpg"), eyes_closed, "us-passport", False, ("eye_openness",)),
    Case("hand over the mouth", SAMPLE, hand_over_mouth, "us-passport", False, ("hand_over_face",)),
    Case(
        "Biden, hand over the mouth",
        _portrait("biden.jpg"),
        hand_over_mouth,
        "schengen",
        False,
        ("hand_over_face",),
    ),
]


def backdrop_show_through(source_rgb: np.ndarray, final_rgb: np.ndarray, alpha: np.ndarray, colour) -> float | None:
    """Edge halo on the final photo: in the outer half of the subject's edge (0.02 < alpha < 0.5, and
    2 px further out), how far each pixel sits from the new background colour towards the *old*
    backdrop's colour (the median of the source's top 6 % of rows), as a mean fraction 0..1. There the
    new colour dominates a clean edge; a rim of the old backdrop pulls towards it. None when the two
    backgrounds are too alike to tell apart."""
    rows = max(1, source_rgb.shape[0] * 6 // 100)
    old = np.median(source_rgb[:rows].reshape(-1, 3), axis=0)
    new = np.asarray(colour, np.float64)
    u = old - new
    if np.linalg.norm(u) < 40:
        return None
    a = alpha.astype(np.float64) / 255.0
    band = (a > 0.02) & (a < 0.5)
    band |= cv2.dilate(band.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool) & (a <= 0.02)
    d = final_rgb.reshape(-1, 3)[band.ravel()].astype(np.float64) - new
    return float(np.clip(d @ u / (u @ u), 0.0, 1.0).mean())


def outcome(report: dict | None) -> dict:
    """What the strict gate made of one report (None: rejected before a photo was made): verdict
    (accept = certified, review = held as borderline, refuse), the rules that refused or sit at a
    limit, and each numeric rule value."""
    if report is None:
        return {"verdict": "refuse", "failed": ["rejected"], "borderline": [], "values": {}}
    rules = [r for r in report["rules"] if r["rule"] != "background_colour"]
    failed = [r["rule"] for r in rules if not r["passed"]]
    borderline = [r["rule"] for r in rules if r.get("borderline")]
    return {
        "verdict": "refuse" if failed else "review" if borderline else "accept",
        "failed": failed,
        "borderline": borderline,
        "values": {
            r["rule"]: float(r["value"])
            for r in rules
            if isinstance(r.get("value"), int | float) and not isinstance(r["value"], bool)
        },
    }


def run_case(case: Case, engine, background: str | None = None) -> dict:
    """The verdict our strict gate gives, the rules that refused, and the edge halo of the final photo
    (over ``background``, default the preset's first: white, or light grey where the UK asks for it)."""
    from matting.errors import ImageError
    from matting.idphoto import compose_id_photo
    from matting.idphoto.portrait import options_from
    from matting.images import decode

    source = _path(case.source)
    data = _jpeg(case.derive(_rgb(source))) if case.derive else source.read_bytes()
    image = decode(data)
    options = options_from(case.spec, background)
    try:
        photo = compose_id_photo(engine, image, options)
    except ImageError as exc:
        return {**outcome(None), "reasons": [str(exc)], "halo": None}
    final = np.asarray(photo.image.convert("RGB"))
    halo = backdrop_show_through(image.rgb, final, photo.alpha, options.background)
    return {**outcome(photo.report), "reasons": photo.report["reasons"], "halo": halo}


def table(results: list[tuple[Case, dict]]) -> str:
    """Per case (ours: accept = certified, review = held as borderline, refuse), then per rule."""
    lines = [
        "| case | standard | office | ours | refused by | borderline | edge halo |",
        "|---|---|---|---|---|---|---|",
    ]
    for case, res in results:
        office = "accept" if case.accept else "refuse"
        halo = "-" if res.get("halo") is None else f"{res['halo']:.3f}"
        lines.append(
            f"| {case.name} | {case.spec} | {office} | {res['verdict']} | {', '.join(res['failed']) or '-'} "
            f"| {', '.join(res['borderline']) or '-'} | {halo} |"
        )
    rules = sorted({r for _, res in results for r in res["failed"] + res["borderline"]})
    lines += [
        "",
        "| rule | bad photos caught | good photos wrongly refused | good photos held as borderline |",
        "|---|---|---|---|",
    ]
    for rule in rules:
        caught = sum(1 for c, res in results if not c.accept and rule in res["failed"])
        wrong = sum(1 for c, res in results if c.accept and rule in res["failed"])
        held = sum(1 for c, res in results if c.accept and rule in res["borderline"] and not res["failed"])
        lines.append(f"| {rule} | {caught} | {wrong} | {held} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    import argparse

    sys.path[:0] = [str(ROOT / "plugins"), str(ROOT / "tests")]
    from idphoto.holdout import table as holdout_table
    from matting.engine import Engine

    ap = argparse.ArgumentParser(description="the ID-photo evaluation set: verdicts per case and per rule")
    ap.add_argument("--model", action="append", help="matting model(s) to compare (default: the id_photo scenario's)")
    args = ap.parse_args(argv)
    for model in args.model or [None]:
        engine = Engine(model=model, scenario="id_photo")
        results = [(case, run_case(case, engine)) for case in CASES]
        halos = [res["halo"] for _, res in results if res["halo"] is not None]
        print(f"\n### matte model: {engine.spec.name}\n")
        print(table(results))
        print(
            f"\nedge halo on the final photo (old backdrop showing through the edge band, {len(halos)} photos): "
            f"median {np.median(halos):.3f}, worst {max(halos):.3f}"
        )
        print(f"\n#### leave one person out ({engine.spec.name}: tests/idphoto/holdout.py)\n")
        print(holdout_table(results))


if __name__ == "__main__":
    main()
