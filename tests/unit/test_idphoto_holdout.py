"""The leave-one-person-out protocol (tests/idphoto/holdout.py): limits come from the other people
only, and are set the way its docstring says."""

from __future__ import annotations

from dataclasses import dataclass

from idphoto.holdout import fold_limits, judge_held_out, tune


@dataclass(frozen=True)
class FakeCase:
    name: str
    person: str
    accept: bool
    caught_by: tuple = ()
    spec: str = "us-passport"


def test_tune_separable_overlapping_and_not_derivable():
    assert tune([1.0, 2.0], [4.0, 6.0]) == (3.0, "midpoint")
    limit, how = tune([1.0, 5.0], [4.0, 6.0])  # overlap: letting a bad photo through costs most
    assert how == "overlap" and limit < 4.0
    assert tune([2.0], [])[0] is None and "no bad example" in tune([2.0], [])[1]
    assert tune([], [10.0])[0] is None and "no good example" in tune([], [10.0])[1]


def test_a_fold_never_sees_the_held_out_person():
    results = [
        (FakeCase("a good", "A", True), {"values": {"sharpness": 30.0}, "failed": [], "verdict": "accept"}),
        (FakeCase("b blurred", "B", False, ("sharpness",)), {"values": {"sharpness": 2.0}, "failed": ["sharpness"]}),
        (FakeCase("c good", "C", True), {"values": {"sharpness": 10.0}, "failed": [], "verdict": "accept"}),
    ]
    limits = fold_limits(results, "C")
    assert limits["sharpness"] == (-16.0, "midpoint")  # between A's 30 and B's 2 (negated: low is bad)
    changed = [results[0], results[1], (results[2][0], {**results[2][1], "values": {"sharpness": 99.0}})]
    assert fold_limits(changed, "C") == limits  # C's own value moves nothing
    # C (10) is below the midpoint 16 that A and B set: held out, it is refused
    assert judge_held_out(results[2][0], results[2][1], limits) == ["sharpness"]
    # shipped failures of rules not tuned (a preset's band) stay
    kept = judge_held_out(FakeCase("x", "C", False), {"values": {}, "failed": ["head_ratio"]}, limits)
    assert kept == ["head_ratio"]
