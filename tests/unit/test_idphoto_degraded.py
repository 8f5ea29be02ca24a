"""The photograph's rules on degraded copies of the evaluation portraits (tests/idphoto/degraded.py):
every copy labelled refused is refused, first for the rule a person would name; every copy labelled
acceptable keeps the original's verdict on those rules."""

from __future__ import annotations

import pytest
from idphoto.degraded import PHOTO_RULES, SWEEPS, bases, photo_values

CASES = [
    (sweep, strength, base)
    for sweep in SWEEPS
    for strength, label in sweep.strengths.items()
    if label is not None
    for base in bases()
]


@pytest.fixture(scope="module")
def originals(id_engine):
    return {base.person: photo_values(base, lambda rgb: rgb, id_engine) for base in bases()}


@pytest.mark.parametrize("sweep,strength,base", CASES, ids=[f"{s.name} {st} {b.person}" for s, st, b in CASES])
def test_a_degraded_copy_gets_the_offices_verdict_for_the_right_reason(sweep, strength, base, id_engine, originals):
    got = photo_values(base, sweep.make(strength), id_engine)
    assert "rejected" not in got, got  # a photo was made, and judged
    failed = {rule for rule in PHOTO_RULES if rule in got and not got[rule][1]}
    if sweep.strengths[strength]:  # acceptable: no photograph rule refuses what the original passed
        before = {
            rule for rule in PHOTO_RULES if rule in originals[base.person] and not originals[base.person][rule][1]
        }
        assert failed <= before, (failed, got)
        if base.person != "Hopper":  # a mild cast, a JPEG or a light exposure change does not make a bare head a hat
            assert got["head_covering"] == "none", got
    else:  # refused, and the first reason the degradation added is its own rule (Biden's turned head
        # is refused as it is: his copies' first reason stays yaw)
        assert failed & set(sweep.rules), got
        before = originals[base.person].get("failed_in_order", [])
        added = [rule for rule in got["failed_in_order"] if rule not in before]
        assert added and added[0] in sweep.rules, (added, got["reasons"])
