"""One portrait: photo, report, optional sheet, routed to the output or to review/; a refusal's
report; and a run's options checked against the preset before any photo is read.

What ``IdPhotoJob`` (``matting.pipeline.jobs``) runs per photo, in Airflow and the CLI alike; returns
the files to write (relative names -> bytes), which the batch runner writes, atomically."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from matting import layout
from matting.engine.core import Engine, ImageResult
from matting.idphoto.compose import IdPhotoOptions, compose_id_photo
from matting.idphoto.sheet import make_sheet
from matting.images import decode
from matting.pipeline.naming import report_name, sheet_name

log = logging.getLogger("matting.idphoto")


@dataclass
class PortraitOutcome:
    result: ImageResult  # for progress logs and summaries
    files: dict[str, bytes] = field(default_factory=dict)  # relative path -> bytes
    report: dict = field(default_factory=dict)


def process_portrait(
    engine: Engine,
    load: Callable[[], bytes],
    name: str,
    out_name: str,
    options: IdPhotoOptions,
    sheet: str | None = None,
    max_pixels: int | None = None,
) -> PortraitOutcome:
    """``out_name`` is the photo's relative output name (e.g. ``a/b.jpg``). Strict-mode failures and
    rejections go under ``review/`` with their report; the report always says why. ``load`` returns
    the file's bytes: an unreadable file, like any failure on this portrait, fails only itself."""
    try:
        photo = compose_id_photo(engine, decode(load(), name=name, max_pixels=max_pixels), options)
    except Exception as exc:  # one classification with the engine: content error, vanished, or retryable
        return refused_with_report(name, exc, options, out_name)
    report = {"source": name, **photo.report}
    to_review = not photo.passed and options.strict
    folder = f"{layout.REVIEW}/" if to_review else ""
    files = {f"{folder}{out_name}": photo.data}
    report["output"] = f"{folder}{out_name}"
    if sheet and not to_review:
        page, copies = make_sheet(photo.image, options.spec, sheet)
        buf = io.BytesIO()
        page.save(buf, "JPEG", quality=95, dpi=(300, 300))
        files[sheet_name(out_name, sheet)] = buf.getvalue()
        report["sheet"] = {"path": sheet_name(out_name, sheet), "size": sheet, "copies": copies}
    files[f"{folder}{report_name(out_name)}"] = json.dumps(report, indent=2, ensure_ascii=False).encode()
    if to_review:
        result = ImageResult(
            source=name,
            ok=False,
            output=report["output"],
            error_type="rule_failed",
            error="sent to review: " + "; ".join(photo.report["reasons"]),
        )
    else:
        for reason in photo.report["reasons"]:
            log.warning("%s: emitted with a failed rule (lenient): %s", name, reason)
        result = ImageResult(
            source=name,
            ok=True,
            output=report["output"],
            width=photo.image.width,
            height=photo.image.height,
            bytes_out=len(photo.data),
            timings_ms=photo.report["timings_ms"],
        )
    return PortraitOutcome(result=result, files=files, report=report)


def refused_with_report(name: str, exc: Exception, options: IdPhotoOptions, out_name: str) -> PortraitOutcome:
    """``refused``, with its report as the file to write under ``review/`` (named after ``out_name``)."""
    outcome = refused(name, exc, options)
    report = json.dumps(outcome.report, indent=2, ensure_ascii=False).encode()
    outcome.files = {f"{layout.REVIEW}/{report_name(out_name)}": report}
    return outcome


def refused(name: str, exc: Exception, options: IdPhotoOptions) -> PortraitOutcome:
    """A portrait that failed (``exc``, classified as the engine does): its result and its report,
    which says why; no files (the caller writes the report where it can)."""
    result = Engine.failed_result(name, exc, {})
    report = {
        "spec": options.spec.name,
        "source": name,
        "passed": False,
        "rejected": result.error_type,
        "reasons": [result.error],
        "head_ratio": None,
        "top_margin_ratio": None,
    }
    return PortraitOutcome(result=result, report=report)


def options_from(
    spec_name: str,
    background: str | None,
    fmt: str = "jpeg",
    kb_max: float | None = None,
    kb_min: float | None = None,
    strict: bool = True,
) -> IdPhotoOptions:
    """Validated options from plain values (CLI flags, DAG params), checked against the preset before
    any photo is read: a background, format or KB limit the standard does not allow is a
    ``ConfigError`` for the whole run, not a refusal of each photo."""
    from matting.errors import ConfigError
    from matting.idphoto.specs import get_spec

    spec = get_spec(spec_name)
    bg_name = background or spec.backgrounds[0]
    colour = spec.background_colour(bg_name)
    if not spec.accepts_background(colour):
        hex_colour = "#{:02X}{:02X}{:02X}".format(*colour)
        given = bg_name if bg_name.upper() == hex_colour else f"{bg_name} ({hex_colour})"
        accepted = spec.accepted_backgrounds()
        raise ConfigError(f"{spec.name} does not accept the background {given}; accepted: {accepted}")
    fmt = fmt.lower().replace("jpg", "jpeg")
    if fmt not in ("jpeg", "png"):
        raise ConfigError(f"ID photos are written as jpeg or png, not {fmt!r}")
    if fmt not in spec.formats:
        raise ConfigError(f"{spec.name} accepts {' or '.join(spec.formats)} files only, not {fmt}")
    _check_kb_limits(spec, kb_max, kb_min)
    return IdPhotoOptions(
        spec=spec, background=colour, background_name=bg_name, format=fmt, kb_max=kb_max, kb_min=kb_min, strict=strict
    )


def _check_kb_limits(spec, kb_max: float | None, kb_min: float | None) -> None:
    """A user's limits may tighten the preset's (a portal's smaller upload limit), never widen them:
    a file above the office's kb_max or below its kb_min would be refused there."""
    from matting.errors import ConfigError

    for label, value in (("kb_max", kb_max), ("kb_min", kb_min)):
        if value is not None and value <= 0:
            raise ConfigError(f"{label} must be positive, got {value:g}")
    if kb_max is not None and spec.kb_max and kb_max > spec.kb_max:
        raise ConfigError(
            f"kb_max {kb_max:g} is above {spec.name}'s limit of {spec.kb_max:g} KB: the office would refuse that file"
        )
    if kb_min is not None and spec.kb_min and kb_min < spec.kb_min:
        raise ConfigError(
            f"kb_min {kb_min:g} is below {spec.name}'s minimum of {spec.kb_min:g} KB: the office would refuse that file"
        )
    lo, hi = kb_min or spec.kb_min, kb_max or spec.kb_max
    if lo and hi and lo > hi:
        raise ConfigError(f"the file size limits leave nothing: at least {lo:g} KB and at most {hi:g} KB ({spec.name})")
