"""ID photo stage 6, report: every rule in one table (what was made, what was measured, the file
size), judged for borderline values, with the verdict, the reasons and the warnings."""

from __future__ import annotations

import numpy as np

from matting.idphoto.place import Framing
from matting.idphoto.render import Rendered
from matting.idphoto.rules import ISO, judge, rule

MAX_ROLL_DEG = 20.0  # beyond this the subject is not posing for an ID photo: rejected by the report
BG_TOLERANCE = 6  # a background pixel within this of the target colour (per channel) is "uniform"


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


def _hex(rgb) -> str:
    return "#{:02X}{:02X}{:02X}".format(*rgb)


def _output_rules(spec, options, out_size: list, roll: float) -> list[dict]:
    """The rules about the file we made (size, background) and the source's face count and roll."""
    size = [spec.width_px, spec.height_px]
    return [
        rule(
            "pixel_size",
            out_size,
            size,
            f"downscaled to {out_size[0]}x{out_size[1]} to meet the KB limit",
            spec.source,
            passed=out_size == size,
        ),
        rule("face_count", 1, (1, 1), "", f"{ISO}: exactly one face"),  # framed at all: exactly one
        rule(
            "roll_in_source",
            round(roll, 2),
            [-MAX_ROLL_DEG, MAX_ROLL_DEG],
            f"head tilted {roll:.1f} degrees",
            f"{ISO}: a head posing for an ID photo (ours: tilted more than this, it is not)",
            passed=abs(roll) <= MAX_ROLL_DEG,
        ),
        rule(
            "background_colour",
            options.background_name or _hex(options.background),
            list(spec.backgrounds),
            f"background not accepted by {spec.name} (accepted: {spec.accepted_backgrounds()})",
            spec.backgrounds_source or spec.source,
            passed=spec.accepts_background(options.background),
        ),
    ]


def _limit_rules(spec, options, file_kb: float) -> list[dict]:
    """The file-size limits, checked to the byte (the value shown is rounded to 0.1 KB)."""
    kb_min, kb_max = options.limits_kb
    rules = []
    if kb_max:
        rules.append(
            rule(
                "kb_max",
                round(file_kb, 1),
                [0, kb_max],
                f"file is {file_kb:.1f} KB, over {kb_max} KB",
                spec.source,
                passed=file_kb <= kb_max,
            )
        )
    if kb_min:
        rules.append(
            rule(
                "kb_min",
                round(file_kb, 1),
                [kb_min, None],
                f"file is {file_kb:.1f} KB, under {kb_min} KB",
                spec.source,
                passed=file_kb >= kb_min,
            )
        )
    return rules


def _warnings(measured_warnings, framing: Framing, roll: float, detections: int) -> list[str]:
    warnings = list(measured_warnings)
    if framing.touches_top:
        warnings.append("the head touches the top of the source: crown estimated from the face, top padded")
    if framing.rotated:
        warnings.append(f"head roll of {roll:.1f} degrees corrected")
    if detections > 1:
        warnings.append(f"{detections - 1} small or unsure face detection(s) ignored")
    return warnings


def _background_uniformity(composed, out_alpha, background) -> float:
    """Informational: painted by us, so it cannot fail; stray_objects is the real check."""
    bg_mask = out_alpha < 8
    if not bg_mask.any():
        return 0.0
    diff = np.abs(composed[bg_mask].astype(np.int16) - np.array(background, np.int16)).max(axis=1)
    return float((diff <= BG_TOLERANCE).mean())


def build_report(
    spec, options, *, roll: float, detections: int, framing: Framing, rendered: Rendered, measured
) -> dict:
    """The compliance report of one ID photo. ``measured`` is ``measure_photo``'s (rules, values,
    warnings); ``roll`` and ``detections`` are the source's."""
    h = spec.height_px
    placement = framing.placement
    measured_rules, values, measured_warnings = measured
    planned = {
        "head_ratio": round((placement.chin_y - placement.crown_y) / h, 4),
        "top_margin_ratio": round(placement.crown_y / h, 4),
        "eye_line_ratio": round(1 - placement.eye_y / h, 4),
    }
    uniformity = _background_uniformity(rendered.composed, rendered.alpha, options.background)
    file_kb = len(rendered.data) / 1024
    rules = [
        *_output_rules(spec, options, rendered.size, roll),
        *measured_rules,
        *_limit_rules(spec, options, file_kb),
    ]
    rules = judge([_plain(r) for r in rules if r])
    warnings = _warnings(measured_warnings, framing, roll, detections)
    reasons = [r["message"] for r in rules if not r["passed"]]
    borderline = [r["message"] for r in rules if r.get("borderline")]
    verdict = "fail" if reasons else "borderline" if borderline else "pass"
    if options.strict:  # borderline is not a pass: held for review, with why
        reasons += borderline
    else:  # lenient: borderline is a warning, but a rule that asks for a person (a religious covering) holds it
        warnings += [r["message"] for r in rules if r.get("borderline") and not r.get("review")]
        reasons += [r["message"] for r in rules if r.get("review")]
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
            "face_count": 1,
            "roll_deg": round(roll, 2),
            "roll_corrected": framing.rotated,
            "background": options.background_name or _hex(options.background),
            "background_uniformity": round(uniformity, 4),
            "width": rendered.image.width,
            "height": rendered.image.height,
            "dpi": spec.dpi,
            "format": options.format,
            "file_kb": round(file_kb, 1),
            "jpeg_quality": rendered.encoding["quality"],
            "rules": rules,
            "standard": spec.source,
        }
    )
