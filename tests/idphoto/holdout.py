"""Leave-one-person-out: the evaluation set's verdicts when the thresholds that are ours (no official
figure) are set from the *other* people's photos only.

For each person, every threshold of ours is re-derived from the remaining people's cases: the good
side is what the office accepts, the bad side what the office refuses *for that rule* (``caught_by``);
the limit is the midpoint between the closest good and bad values (when they overlap, the limit that
misclassifies the fewest, bad photos first). A rule left without a good or without a bad example
cannot be re-derived: it keeps its shipped limit, and the table counts how often that happened (those
verdicts are not held-out evidence). Limits that come from a standard or a preset (roll +-8 deg, head
ratio, eye line, top margin, face count, file size) and the upscale policy keep their shipped verdict.

    python tests/idphoto/holdout.py        (also printed by make idphoto-eval)
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# rule -> (which side is bad, centre): two-sided rules are tuned on the distance from their centre
TUNABLE = {
    "yaw_deg": ("high", 0.0),
    "pitch_deg": ("high", 0.0),
    "gaze_along": ("high", 0.5),
    "gaze_across": ("high", 0.0),
    "eye_openness": ("low", None),
    "eyes_visible": ("low", None),
    "mouth_opening": ("high", None),
    "teeth": ("high", None),
    "face_exposure": ("low", None),
    "lighting_balance": ("low", None),
    "glasses": ("high", None),
    "hand_over_face": ("high", None),
    "sharpness": ("low", None),
    "shoulders": ("low", None),
    "stray_objects": ("high", None),
    "background_remnant": ("high", None),
    "head_covering": ("high", None),  # covering.COVERING_SHARE
}
EXPRESSION_RULES = ("mouth_opening", "teeth")  # their limit depends on the preset's expression


def _x(rule: str, value: float) -> float:
    """The value on the tuning axis: larger = worse."""
    side, centre = TUNABLE[rule]
    v = abs(value - centre) if centre is not None else value
    return v if side == "high" else -v


def tune(good: list[float], bad: list[float]) -> tuple[float | None, str]:
    """(limit on the larger-is-worse axis: fail when x > limit, how it was set); None: not derivable."""
    if not good or not bad:
        return None, "kept: no " + ("good" if not good else "bad") + " example without this person"
    if max(good) < min(bad):
        return (max(good) + min(bad)) / 2, "midpoint"
    candidates = sorted(set(good + bad))
    best = min(candidates, key=lambda t: (sum(b <= t for b in bad), sum(g > t for g in good)))  # bad first
    return best, "overlap"


def _expression(spec_name: str) -> str:
    from matting.idphoto.specs import get_spec

    return get_spec(spec_name).expression


def fold_limits(results, held_out: str, expression: str | None = None) -> dict[str, tuple[float | None, str]]:
    """Every tunable rule's limit from the cases of everyone but ``held_out``."""
    limits = {}
    for rule in TUNABLE:
        good, bad = [], []
        for case, res in results:
            if case.person == held_out or rule not in res["values"]:
                continue
            if rule in EXPRESSION_RULES and _expression(case.spec) != expression:
                continue
            x = _x(rule, float(res["values"][rule]))
            if case.accept:
                good.append(x)
            elif rule in case.caught_by:
                bad.append(x)
        limits[rule] = tune(good, bad)
    return limits


def judge_held_out(case, res, limits) -> list[str]:
    """The rules that refuse one held-out case under its fold's limits."""
    failed = []
    tuned = {r for r in TUNABLE if r in res["values"] and limits.get(r, (None,))[0] is not None}  # else: shipped
    for rule in res["failed"]:
        if rule not in tuned:  # standard / preset limits: as shipped
            failed.append(rule)
    for rule in sorted(tuned):
        if _x(rule, float(res["values"][rule])) > limits[rule][0]:
            failed.append(rule)
    return failed


def leave_one_person_out(results) -> tuple[list[tuple[object, dict, list[str]]], dict[str, list]]:
    """(per held-out case: case, result, rules refusing it; per rule: each fold's (person, limit, how))."""
    out, folds = [], {}
    people = sorted({case.person for case, _ in results})
    for person in people:
        # the limits shown per rule: the mouth rules' for neutral-expression presets (the others have none)
        for rule, (limit, how) in fold_limits(results, person, "neutral").items():
            folds.setdefault(rule, []).append((person, limit, how))
        cache: dict[str, dict] = {}
        for case, res in results:
            if case.person != person:
                continue
            expression = _expression(case.spec)
            if expression not in cache:
                cache[expression] = fold_limits(results, person, expression)
            out.append((case, res, judge_held_out(case, res, cache[expression])))
    return out, folds


def _shown(rule: str, x: float) -> str:
    """A limit on the tuning axis back in the rule's own terms."""
    side, centre = TUNABLE[rule]
    if centre is not None:
        return f"{centre:g} +- {x:.3g}"
    return f"<= {x:.3g}" if side == "high" else f">= {-x:.3g}"


def table(results) -> str:
    from matting.idphoto.rules import BANDS, TEETH_LIMIT

    rows, folds = leave_one_person_out(results)
    lines = [
        "| held-out person | case | office | shipped limits | limits tuned without this person | refused by |",
        "|---|---|---|---|---|---|",
    ]
    for case, res, failed in rows:
        office = "accept" if case.accept else "refuse"
        lopo = "refuse" if failed else "accept"
        lines.append(
            f"| {case.person} | {case.name} | {office} | {res['verdict']} | {lopo} | {', '.join(failed) or '-'} |"
        )
    from matting.idphoto.covering import COVERING_SHARE

    own_bands = {"mouth_opening": (0.0, 0.10), "teeth": (0.0, TEETH_LIMIT), "head_covering": (0.0, COVERING_SHARE)}
    rules = sorted({r for _, _, failed in rows for r in failed})
    lines += ["", "| rule | bad photos caught (held out) | good photos wrongly refused (held out) |", "|---|---|---|"]
    for rule in rules:
        caught = sum(1 for c, _, f in rows if not c.accept and rule in f)
        wrong = sum(1 for c, _, f in rows if c.accept and rule in f)
        lines.append(f"| {rule} | {caught} | {wrong} |")
    lines += [
        "",
        "| rule | shipped band | re-derived without each person | folds that kept the shipped limit |",
        "|---|---|---|---|",
    ]
    for rule in TUNABLE:
        shipped = own_bands[rule] if rule in own_bands else BANDS[rule][0]
        derived = [f"{person}: {_shown(rule, limit)}" for person, limit, _ in folds.get(rule, []) if limit is not None]
        kept = [person for person, limit, _ in folds.get(rule, []) if limit is None]
        lines.append(f"| {rule} | {list(shipped)} | {', '.join(derived) or '-'} | {', '.join(kept) or '-'} |")
    bad = [c for c, _, f in rows if not c.accept]
    good = [c for c, _, f in rows if c.accept]
    missed = [c.name for c, _, f in rows if not c.accept and not f]
    refused = [c.name for c, _, f in rows if c.accept and f]
    lines += [
        "",
        f"held out: {len(bad) - len(missed)} of {len(bad)} bad photos refused, "
        f"{len(good) - len(refused)} of {len(good)} good photos accepted"
        + (f"; missed: {', '.join(missed)}" if missed else "")
        + (f"; wrongly refused: {', '.join(refused)}" if refused else ""),
    ]
    return "\n".join(lines)


def main() -> int:
    sys.path[:0] = [str(ROOT / "plugins"), str(ROOT / "tests")]
    from idphoto.eval_set import CASES, run_case
    from matting.engine import Engine

    engine = Engine(scenario="id_photo")
    results = [(case, run_case(case, engine)) for case in CASES]
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
