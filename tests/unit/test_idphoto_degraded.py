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
    else:  # refused, and the first reason given is this degradation's own rule
        assert failed & set(sweep.rules), got
        assert got["first_failed"] in sweep.rules, (got["first_failed"], got["reasons"])
