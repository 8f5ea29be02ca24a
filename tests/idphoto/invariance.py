"""What should not change an ID-photo verdict, tried on the evaluation set (issue #20; not a test yet:
three cases still flip). For each case: every background its preset allows, PNG instead of JPEG, and
a 10 % smaller copy of the source, against the verdict on the first background as JPEG.

    python tests/idphoto/invariance.py
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT / "tests")]


def main() -> int:
    import cv2
    from idphoto.eval_set import CASES, _jpeg, _path, _rgb
    from matting.engine import Engine
    from matting.errors import ImageError
    from matting.idphoto import compose_id_photo
    from matting.idphoto.batch import options_from
    from matting.idphoto.specs import get_spec
    from matting.images import decode

    engine = Engine(scenario="id_photo")

    def failed_rules(data: bytes, spec: str, bg: str, fmt: str = "jpeg") -> tuple[str, ...]:
        try:
            report = compose_id_photo(engine, decode(data), options_from(spec, bg, fmt=fmt)).report
        except ImageError:
            return ("rejected",)
        rules = report["rules"]
        return tuple(sorted(r["rule"] for r in rules if not r["passed"] and r["rule"] != "background_colour"))

    flips = 0
    for case in CASES:
        rgb = _rgb(_path(case.source))
        rgb = case.derive(rgb) if case.derive else rgb
        data, spec = _jpeg(rgb), get_spec(case.spec)
        base = failed_rules(data, case.spec, spec.backgrounds[0])
        tried = {f"background {bg}": failed_rules(data, case.spec, bg) for bg in spec.backgrounds[1:]}
        tried["png"] = failed_rules(data, case.spec, spec.backgrounds[0], "png")
        smaller = cv2.resize(rgb, None, fx=0.9, fy=0.9, interpolation=cv2.INTER_AREA)
        tried["source x0.9"] = failed_rules(_jpeg(smaller), case.spec, spec.backgrounds[0])
        flipped = {k: v for k, v in tried.items() if bool(v) != bool(base)}
        flips += bool(flipped)
        verdict = "refuse" if base else "accept"
        print(f"{case.name:40} {verdict} {base or ''} {'FLIPS: ' + str(flipped) if flipped else ''}")
    print(f"cases whose verdict flips: {flips} of {len(CASES)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
