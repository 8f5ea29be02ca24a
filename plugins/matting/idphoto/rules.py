"""One row of an ID photo's rule table: the one way every stage writes a rule."""

from __future__ import annotations

ISO = "ISO/IEC 19794-5 full frontal / ICAO 9303 part 3"


def in_band(value, band) -> bool:
    """A number inside ``band`` (``None`` ends are open); a missing value is never inside."""
    lo, hi = band
    return value is not None and (lo is None or value >= lo - 1e-9) and (hi is None or value <= hi + 1e-9)


def rule(name: str, value, band, why: str, source: str, passed: bool | None = None) -> dict:
    """The row for rule ``name``: its value, band, verdict, the standard it comes from, and a message
    saying what is wrong (only when it is). ``passed`` None: a measured number checked against its
    band (and rounded for the report); a rule with a test of its own (a pixel size, a colour among
    the accepted ones, a file size to the byte) passes its verdict and keeps its value as it is."""
    if passed is None:
        passed = in_band(value, band)
        value = None if value is None else round(float(value), 4)
    return {
        "rule": name,
        "value": value,
        "band": list(band),
        "passed": bool(passed),
        "message": "" if passed else why,
        "source": source,
    }
