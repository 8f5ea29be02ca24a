"""One portrait -> one standard ID photo: matte, find the face, level the eyes, scale and place the
head inside the preset's bands, composite over the background colour, encode within the KB limit,
and measure every rule for the compliance report.
"""

from __future__ import annotations

import io
import math
import time
from dataclasses import dataclass, field
from functools import lru_cache

import cv2
import numpy as np
from PIL import Image

from matting.engine import postprocess as pp
from matting.engine.core import Engine
from matting.errors import ConfigError, FaceCut, MultipleFaces, NoFaceFound
from matting.idphoto.face import Face, detect_faces, prominent_faces
from matting.idphoto.hands import PalmDetector
from matting.idphoto.measure import judge, measure_final, measure_source
from matting.idphoto.mesh import FaceMesh, on_mesh
from matting.idphoto.specs import IdPhotoSpec
from matting.images import DecodedImage, decode

ROLL_CORRECT_MIN_DEG = 0.5  # below this the eyes count as level; no resampling
MAX_ROLL_DEG = 20.0  # beyond this the subject is not posing for an ID photo: rejected by the report
BG_TOLERANCE = 6  # a background pixel within this of the target colour (per channel) is "uniform"


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
class Placement:
    """Where the head lands in the output, in output pixels."""

    scale: float
    crown_y: float
    chin_y: float
    eye_y: float
    face_box: tuple[float, float, float, float]
    matrix: np.ndarray  # 2x3 affine from (rotated) source to output


@dataclass
class IdPhoto:
    image: Image.Image
    data: bytes
    report: dict = field(default_factory=dict)
    alpha: np.ndarray | None = None  # the subject's alpha placed in the final frame (uint8, before encoding)

    @property
    def passed(self) -> bool:
        return bool(self.report.get("passed"))


# --- geometry ---------------------------------------------------------------------------------


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


def find_crown(alpha: np.ndarray, face: Face) -> tuple[float, bool]:
    """Top of the head (hair included) from the matte, in the face's column band.

    Returns (crown_y, touches_top): when the matte reaches the top edge the real crown is outside
    the picture, so it is estimated from the face (eyes sit half-way between crown and chin)."""
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


# Placement aims this share of each band's width inside the band (top margin and eye line; the head
# ratio is aimed inside by its candidates): the final photo is re-measured after JPEG, KB-limit
# re-compression and re-detection, which move the eye line by ~0.003 of the height, so a photo we
# place can never land on a band's edge and fail our own rule.
PLACEMENT_MARGIN = 0.15


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


@lru_cache(maxsize=2)
def face_mesh(store) -> FaceMesh:
    """One mesh per model store (its interpreters are reused by every photo of the process)."""
    return FaceMesh(store)


@lru_cache(maxsize=2)
def palm_detector(store) -> PalmDetector:
    return PalmDetector(store)


def _warp(arr: np.ndarray, m: np.ndarray, size: tuple[int, int], border) -> np.ndarray:
    """Affine warp; a large reduction is box-filtered first so no detail aliases."""
    s = m[0, 0]
    if s < 0.5:
        small = cv2.resize(arr, None, fx=s * 2, fy=s * 2, interpolation=cv2.INTER_AREA)
        m = m.copy()
        m[:, :2] /= s * 2
        arr = small
    interp = cv2.INTER_CUBIC if m[0, 0] > 1.0 else cv2.INTER_LINEAR
    out = cv2.warpAffine(arr, m, size, flags=interp, borderMode=cv2.BORDER_CONSTANT, borderValue=border)
    return out


def render_over(
    rgb: np.ndarray, alpha: np.ndarray, m: np.ndarray, size: tuple[int, int], colour: tuple[int, int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """The subject over ``colour``, placed by ``m``, and the placed alpha. Composited *before* it is
    resampled: compositing is linear in (alpha x colour, alpha), so this equals resampling
    premultiplied colour and alpha, and no colour of the old background (which transparent pixels
    still hold) can leak into the edge pixels of a downscaled photo."""
    composed = pp.over_background(rgb, alpha, colour)
    return _warp(composed, m, size, tuple(int(c) for c in colour)), _warp(alpha, m, size, 0)


# --- encoding within limits -----------------------------------------------------------------------


def encode_within_limits(
    img: Image.Image, fmt: str, dpi: int, kb_min: float | None, kb_max: float | None
) -> tuple[bytes, dict]:
    """JPEG: the highest quality (binary search, 40-95) whose file fits kb_max; if even quality 40
    does not fit, downscale in 10 % steps. Under kb_min: quality up to 100 with no chroma
    subsampling. Never pads the file with junk bytes; a limit that cannot be met is reported."""
    info: dict = {"quality": None, "downscaled_to": None}

    def jpeg(image: Image.Image, q: int, subsampling: int = 2) -> bytes:
        buf = io.BytesIO()
        image.save(buf, "JPEG", quality=q, dpi=(dpi, dpi), subsampling=subsampling, optimize=True)
        return buf.getvalue()

    if fmt == "png":
        buf = io.BytesIO()
        img.save(buf, "PNG", dpi=(dpi, dpi), optimize=True)
        return buf.getvalue(), info
    if fmt != "jpeg":
        raise ConfigError(f"ID photos are written as jpeg or png, not {fmt!r}")
    limit = kb_max * 1024 if kb_max else None
    data = jpeg(img, 95)
    info["quality"] = 95
    if limit and len(data) > limit:
        lo, hi, best = 40, 94, None
        while lo <= hi:
            q = (lo + hi) // 2
            candidate = jpeg(img, q)
            if len(candidate) <= limit:
                best, lo = (q, candidate), q + 1
            else:
                hi = q - 1
        if best:
            info["quality"], data = best
        else:
            image = img
            while len(data) > limit and image.width > 64:
                image = image.resize((round(image.width * 0.9), round(image.height * 0.9)), Image.Resampling.LANCZOS)
                data = jpeg(image, 40)
            info["quality"], info["downscaled_to"] = 40, list(image.size)
    if kb_min and len(data) < kb_min * 1024:
        for q, sub in ((97, 2), (100, 2), (100, 0)):
            candidate = jpeg(img, q, sub)
            if not limit or len(candidate) <= limit:
                data, info["quality"] = candidate, q
            if len(data) >= kb_min * 1024:
                break
    return data, info


# --- the pipeline -------------------------------------------------------------------------------


def _plain(obj):
    """numpy scalars -> Python numbers/bools, recursively, so reports serialise as JSON."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (float, np.floating)):
        return round(float(obj), 4)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _rule(name: str, value, band, passed: bool, failure: str) -> dict:
    """One row of the report's rule table; the message says what is wrong, only when it is."""
    return {"rule": name, "value": value, "band": band, "passed": passed, "message": "" if passed else failure}


def compose_id_photo(engine: Engine, image: DecodedImage, options: IdPhotoOptions) -> IdPhoto:
    """The whole ID-photo pipeline for one decoded portrait. Raises NoFaceFound / MultipleFaces /
    FaceCut for photos that cannot be framed; everything else is measured into the report."""
    spec = options.spec
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    seen = image.rgb if image.alpha is None else pp.over_background(image.rgb, image.alpha, (255, 255, 255))
    faces = detect_faces(seen, engine.store)
    prominent = prominent_faces(faces)
    if not prominent:
        raise NoFaceFound("no face found" + (f" (only {len(faces)} unsure or tiny detection(s))" if faces else ""))
    if len(prominent) > 1:
        raise MultipleFaces(f"{len(prominent)} prominent faces found; an ID photo needs exactly one")
    mesh_model = face_mesh(engine.store)
    source_mesh = mesh_model.landmarks(seen, prominent[0])
    from_source = measure_source(seen, source_mesh, palm_detector(engine.store))
    face = on_mesh(prominent[0], source_mesh)
    roll = face.roll_deg
    timings["face"] = round((time.perf_counter() - t0) * 1000, 1)  # detection, mesh, source measures

    matte = engine.matte(image, timings)
    rgb, alpha = matte.rgb, matte.alpha
    t0 = time.perf_counter()
    rotated = abs(roll) >= ROLL_CORRECT_MIN_DEG
    if rotated:
        rot = cv2.getRotationMatrix2D(face.eye_mid, roll, 1.0)
        size = (rgb.shape[1], rgb.shape[0])
        rgb = cv2.warpAffine(rgb, rot, size, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
        alpha = cv2.warpAffine(alpha, rot, size, flags=cv2.INTER_LINEAR, borderValue=0)
        face = _rotated_face(face, rot)
        face = on_mesh(face, mesh_model.landmarks(rgb, face))
    if face.box[1] < 0 or face.box[0] < 0 or face.box[2] > rgb.shape[1]:
        raise FaceCut("the face runs off the edge of the source photo")
    crown, touches_top = find_crown(alpha, face)
    placement = plan_placement(spec, face, crown)
    w, h = spec.width_px, spec.height_px
    fb = placement.face_box
    if placement.crown_y < -0.5 or placement.chin_y > h + 0.5 or fb[0] < 0 or fb[2] > w:
        raise FaceCut(
            f"framing the head at {spec.name}'s proportions would cut the face "
            f"(crown at {placement.crown_y:.0f} px, chin at {placement.chin_y:.0f} px of {h})"
        )
    composed, out_alpha = render_over(rgb, alpha, placement.matrix, (w, h), options.background)
    timings["place"] = round((time.perf_counter() - t0) * 1000, 1)

    t0 = time.perf_counter()
    final = Image.fromarray(composed, "RGB")
    kb_min, kb_max = options.limits_kb
    data, enc = encode_within_limits(final, options.format, spec.dpi, kb_min, kb_max)
    timings["encode"] = round((time.perf_counter() - t0) * 1000, 1)

    t0 = time.perf_counter()
    shown = decode(data).rgb  # measured as it will be seen: after JPEG and any KB-limit downscale
    shown_alpha = (
        out_alpha
        if shown.shape[:2] == out_alpha.shape
        else cv2.resize(out_alpha, (shown.shape[1], shown.shape[0]), interpolation=cv2.INTER_AREA)
    )
    measured = measure_final(
        shown, shown_alpha, spec, placement.scale, mesh_model, palm_detector(engine.store), from_source
    )
    timings["measure"] = round((time.perf_counter() - t0) * 1000, 1)
    report = build_report(
        spec,
        options,
        measured=measured,
        face_count=len(prominent),
        detections=len(faces),
        roll=roll,
        rotated=rotated,
        touches_top=touches_top,
        placement=placement,
        composed=composed,
        out_alpha=out_alpha,
        data=data,
        enc=enc,
        final=final,
    )
    report["timings_ms"] = timings
    return IdPhoto(image=final, data=data, report=report, alpha=out_alpha)


def _hex(rgb) -> str:
    return "#{:02X}{:02X}{:02X}".format(*rgb)


def _output_rules(spec, options, out_size: list, face_count: int, roll: float) -> list[dict]:
    """The rules about the file we made (size, background) and the source's face count and roll."""
    bg_allowed = {tuple(pp.parse_colour(c)) for c in spec.backgrounds}
    size = [spec.width_px, spec.height_px]
    return [
        _rule(
            "pixel_size",
            out_size,
            size,
            out_size == size,
            f"downscaled to {out_size[0]}x{out_size[1]} to meet the KB limit",
        ),
        _rule("face_count", face_count, [1, 1], face_count == 1, ""),
        _rule(
            "roll_in_source",
            round(roll, 2),
            [-MAX_ROLL_DEG, MAX_ROLL_DEG],
            abs(roll) <= MAX_ROLL_DEG,
            f"head tilted {roll:.1f} degrees",
        ),
        _rule(
            "background_colour",
            options.background_name or _hex(options.background),
            list(spec.backgrounds),
            tuple(options.background) in bg_allowed,
            f"background not accepted by {spec.name} (accepted: {', '.join(spec.backgrounds)})",
        ),
    ]


def _limit_rules(options, file_kb: float) -> list[dict]:
    kb_min, kb_max = options.limits_kb
    rules = []
    if kb_max:
        rules.append(
            _rule(
                "kb_max",
                round(file_kb, 1),
                [0, kb_max],
                file_kb <= kb_max,
                f"file is {file_kb:.1f} KB, over {kb_max} KB",
            )
        )
    if kb_min:
        rules.append(
            _rule(
                "kb_min",
                round(file_kb, 1),
                [kb_min, None],
                file_kb >= kb_min,
                f"file is {file_kb:.1f} KB, under {kb_min} KB",
            )
        )
    return rules


def _warnings(measured_warnings, touches_top: bool, rotated: bool, roll: float, detections: int, face_count: int):
    warnings = list(measured_warnings)
    if touches_top:
        warnings.append("the head touches the top of the source: crown estimated from the face, top padded")
    if rotated:
        warnings.append(f"head roll of {roll:.1f} degrees corrected")
    if detections > face_count:
        warnings.append(f"{detections - face_count} small or unsure face detection(s) ignored")
    return warnings


def _background_uniformity(composed, out_alpha, background) -> float:
    """Informational: painted by us, so it cannot fail; stray_objects is the real check."""
    bg_mask = out_alpha < 8
    if not bg_mask.any():
        return 0.0
    diff = np.abs(composed[bg_mask].astype(np.int16) - np.array(background, np.int16)).max(axis=1)
    return float((diff <= BG_TOLERANCE).mean())


def build_report(
    spec,
    options,
    *,
    measured,
    face_count,
    detections,
    roll,
    rotated,
    touches_top,
    placement,
    composed,
    out_alpha,
    data,
    enc,
    final,
) -> dict:
    h = spec.height_px
    measured_rules, values, measured_warnings = measured
    planned = {
        "head_ratio": round((placement.chin_y - placement.crown_y) / h, 4),
        "top_margin_ratio": round(placement.crown_y / h, 4),
        "eye_line_ratio": round(1 - placement.eye_y / h, 4),
    }
    uniformity = _background_uniformity(composed, out_alpha, options.background)
    file_kb = len(data) / 1024
    out_size = list(enc["downscaled_to"] or final.size)
    rules = [
        *_output_rules(spec, options, out_size, face_count, roll),
        *measured_rules,
        *_limit_rules(options, file_kb),
    ]
    rules = judge([_plain(r) for r in rules if r])
    warnings = _warnings(measured_warnings, touches_top, rotated, roll, detections, face_count)
    reasons = [r["message"] for r in rules if not r["passed"]]
    borderline = [r["message"] for r in rules if r.get("borderline")]
    verdict = "fail" if reasons else "borderline" if borderline else "pass"
    if options.strict:  # borderline is not a pass: held for review, with why
        reasons += borderline
    else:
        warnings += borderline
    return _plain(
        {
            "spec": spec.name,
            "spec_title": spec.title,
            "passed": not reasons,
            "verdict": verdict,
            "reasons": reasons,
            "warnings": warnings,
            "head_ratio": values.get("head_ratio"),
            "top_margin_ratio": values.get("top_margin_ratio"),
            "eye_line_ratio": values.get("eye_line_ratio"),
            "planned": planned,
            "measured": values,
            "face_count": face_count,
            "roll_deg": round(roll, 2),
            "roll_corrected": rotated,
            "background": options.background_name or _hex(options.background),
            "background_uniformity": round(uniformity, 4),
            "width": final.width,
            "height": final.height,
            "dpi": spec.dpi,
            "format": options.format,
            "file_kb": round(file_kb, 1),
            "jpeg_quality": enc["quality"],
            "rules": rules,
            "standard": spec.source,
        }
    )
