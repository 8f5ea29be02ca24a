"""What should not change an ID-photo verdict, tried on the evaluation set: every background its preset
allows, PNG instead of JPEG (where the standard accepts PNG), a 40 KB upload limit and a 10 % smaller
copy of the source. tests/unit/test_idphoto_invariance.py asserts it per case; run directly, it prints
every case's verdicts and each rule's spread over its variants (what sets the borderline margins of
matting.idphoto.rules.BORDERLINE):

    python tests/idphoto/invariance.py
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TIGHT_KB = 40  # an upload limit well under every preset's own (most JPEGs here are 60-200 KB)


def variants(case):
    """(label, source bytes, background, format, kb_max) for every variant of one evaluation case."""
    import cv2
    from idphoto.eval_set import _jpeg, _path, _rgb
    from matting.idphoto.specs import get_spec

    rgb = _rgb(_path(case.source))
    rgb = case.derive(rgb) if case.derive else rgb
    data, spec = _jpeg(rgb), get_spec(case.spec)
    first = spec.backgrounds[0]
    yield f"background {first}", data, first, "jpeg", None
    for bg in spec.backgrounds[1:]:
        yield f"background {bg}", data, bg, "jpeg", None
    if "png" in spec.formats:
        yield "png", data, first, "png", None
    yield f"kb_max {TIGHT_KB}", data, first, "jpeg", TIGHT_KB  # a portal's upload limit: recompressed
    yield "source x0.9", _jpeg(cv2.resize(rgb, None, fx=0.9, fy=0.9, interpolation=cv2.INTER_AREA)), first, "jpeg", None


def verdicts(case, engine) -> dict[str, dict]:
    """label -> {verdict: accept/review/refuse, failed, borderline, values: rule -> value}."""
    from idphoto.eval_set import outcome
    from matting.errors import ImageError
    from matting.idphoto import compose_id_photo
    from matting.idphoto.portrait import options_from
    from matting.images import decode

    out = {}
    for label, data, bg, fmt, kb_max in variants(case):
        try:
            options = options_from(case.spec, bg, fmt=fmt, kb_max=kb_max)
            out[label] = outcome(compose_id_photo(engine, decode(data), options).report)
        except ImageError:
            out[label] = outcome(None)
    return out


def main() -> int:
    sys.path[:0] = [str(ROOT / "plugins"), str(ROOT / "tests")]
    from idphoto.eval_set import CASES
    from matting.engine import Engine

    engine = Engine(scenario="id_photo")
    flips = 0
    spread: dict[str, list[float]] = {}  # rule -> per case, max - min over its variants
    for case in CASES:
        got = verdicts(case, engine)
        seen = {v["verdict"] for v in got.values()}
        flips += {"accept", "refuse"} <= seen
        values: dict[str, list[float]] = {}
        for v in got.values():
            for rule, value in v["values"].items():
                values.setdefault(rule, []).append(value)
        for rule, vs in values.items():
            spread.setdefault(rule, []).append(max(vs) - min(vs))
        shown = "; ".join(f"{k}: {v['verdict']} {','.join(v['failed'] + v['borderline'])}" for k, v in got.items())
        print(f"{case.name:40} {'FLIPS ' if {'accept', 'refuse'} <= seen else ''}{shown}")
    print(f"cases with both an accept and a refusal among their variants: {flips} of {len(CASES)}")
    print("\n| rule | cases | median spread | largest spread |\n|---|---|---|---|")
    for rule, ss in sorted(spread.items()):
        ss.sort()
        print(f"| {rule} | {len(ss)} | {ss[len(ss) // 2]:.4g} | {ss[-1]:.4g} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
