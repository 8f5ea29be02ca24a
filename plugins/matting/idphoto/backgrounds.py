"""Background colours a standard accepts: exact colours (``white``, ``#438EDB``) and colour *families*
(``off-white``, ``light-grey``, ``cream``): the words standards use, as limits in CIELAB.

A family is data (``colour_families`` in ``matting/data/idphoto_specs.yaml``): lightness L* and
chroma C*ab bands, optionally a hue band, and the sample colour drawn when the family itself is
asked for. CIELAB because its distances follow what people see: C*ab ~2.3 is about one
just-noticeable step away from neutral grey."""

from __future__ import annotations

import math
from dataclasses import dataclass

from matting.engine.colours import parse_colour
from matting.errors import ConfigError

Band = tuple[float, float]
RGB = tuple[int, int, int]

_FAMILY_KEYS = {"lightness", "chroma", "hue", "sample", "source"}


def lab(rgb: RGB) -> tuple[float, float, float]:
    """sRGB (0-255) -> CIELAB (D65): L* 0-100, a*, b*."""

    def linear(c: float) -> float:
        c /= 255.0
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(c) for c in rgb)
    x = (0.4124564 * r + 0.3575761 * g + 0.1804375 * b) / 0.95047
    y = 0.2126729 * r + 0.7151522 * g + 0.0721750 * b
    z = (0.0193339 * r + 0.1191920 * g + 0.9503041 * b) / 1.08883

    def f(t: float) -> float:
        return t ** (1 / 3) if t > (6 / 29) ** 3 else t / (3 * (6 / 29) ** 2) + 4 / 29

    fx, fy, fz = f(x), f(y), f(z)
    return 116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)


def lightness_chroma_hue(rgb: RGB) -> tuple[float, float, float]:
    """L*, C*ab and hue angle h_ab in degrees (0-360; 0 for a neutral colour)."""
    lum, a, b = lab(rgb)
    return lum, math.hypot(a, b), math.degrees(math.atan2(b, a)) % 360 if math.hypot(a, b) > 1e-9 else 0.0


@dataclass(frozen=True)
class ColourFamily:
    """Colours a standard names by a word: every colour whose L*, C*ab (and hue, if given) lie in the bands."""

    name: str
    lightness: Band
    chroma: Band
    sample: RGB
    hue: Band | None = None  # degrees [from, to]; from > to wraps through 0
    source: str = ""

    def contains(self, rgb: RGB) -> bool:
        lum, chroma, hue = lightness_chroma_hue(rgb)
        eps = 1e-6  # a limit stated to one decimal includes the colour that sits on it
        if not (self.lightness[0] - eps <= lum <= self.lightness[1] + eps):
            return False
        if not (self.chroma[0] - eps <= chroma <= self.chroma[1] + eps):
            return False
        if self.hue is None:
            return True
        lo, hi = self.hue
        return lo <= hue <= hi if lo <= hi else (hue >= lo or hue <= hi)

    def describe(self) -> str:
        """``off-white (L* 90-100, C* <= 5)``: the name with its limits, for messages."""
        parts = [f"L* {self.lightness[0]:g}-{self.lightness[1]:g}"]
        lo, hi = self.chroma
        parts.append(f"C* <= {hi:g}" if lo == 0 else f"C* {lo:g}-{hi:g}")
        if self.hue is not None:
            parts.append(f"hue {self.hue[0]:g}-{self.hue[1]:g} deg")
        return f"{self.name} ({', '.join(parts)})"

    @classmethod
    def from_dict(cls, name: str, d: dict) -> ColourFamily:
        if not isinstance(d, dict):
            raise ConfigError(f"colour family {name}: expected a mapping, got {d!r}")
        unknown = sorted(set(d) - _FAMILY_KEYS)
        if unknown:
            raise ConfigError(f"colour family {name}: unknown keys {unknown}; allowed: {sorted(_FAMILY_KEYS)}")
        missing = [k for k in ("lightness", "chroma", "sample") if k not in d]
        if missing:
            raise ConfigError(f"colour family {name}: missing keys {missing}")
        lightness = _band(name, "lightness", d["lightness"], 0, 100)
        chroma = _band(name, "chroma", d["chroma"], 0, 200)
        hue = _band(name, "hue", d["hue"], 0, 360, ordered=False) if d.get("hue") is not None else None
        sample = parse_colour(d["sample"])
        if sample is None:
            raise ConfigError(f"colour family {name}: sample must be a colour")
        family = cls(name, lightness, chroma, sample, hue, str(d.get("source", "")))
        if not family.contains(sample):
            raise ConfigError(f"colour family {name}: its sample {d['sample']} lies outside {family.describe()}")
        return family


def _band(family: str, key: str, value, lo: float, hi: float, ordered: bool = True) -> Band:
    try:
        a, b = (float(x) for x in value)
    except (TypeError, ValueError):
        raise ConfigError(f"colour family {family}: {key} must be [min, max], got {value!r}") from None
    if not (lo <= a <= hi and lo <= b <= hi) or (ordered and a > b):
        raise ConfigError(f"colour family {family}: {key} must be [min, max] within {lo:g}..{hi:g}, got {value!r}")
    return a, b
