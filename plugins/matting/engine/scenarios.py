"""Post-processing scenarios (``matting/data/scenarios.yaml``): what happens to the model's mask before
composition. Data, not code: users add scenarios to the YAML (or a file named by [matting] scenarios).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from matting.catalogue import catalogue_files, load_catalogue, shipped
from matting.errors import ConfigError

DEFAULT_SCENARIOS = shipped("scenarios.yaml")

FOREGROUND_METHODS = ("none", "ml", "blur_fusion")


@dataclass(frozen=True)
class Scenario:
    """How the mask is made (``model``, ``flip``) and post-processed, in this order: alpha matting,
    levels/threshold, largest region, erosion, feathering; then foreground colour
    estimation on the final alpha."""

    name: str = "default"
    description: str = ""
    model: str | None = None
    flip: bool = False  # average the model's prediction with the mirrored photo's (2 inferences)
    levels: tuple[float, float] | None = None  # alpha below lo -> 0, above hi -> 1, linear between
    threshold: float | None = None  # binary alpha at this level (0..1)
    keep_largest: bool = False  # drop every foreground region except the largest
    erode: int = 0  # pixels
    feather: float = 0.0  # Gaussian sigma in pixels
    alpha_matting: bool = False  # pymatting closed-form refinement of the unsure band
    am_fg_threshold: int = 240
    am_bg_threshold: int = 10
    am_erode: int = 10
    am_max_pixels: int = 500_000  # refinement runs at most at this size, then is upscaled
    # remove the old background's colour from edge pixels: "blur_fusion" (vectorised, no JIT: a cold
    # worker pays nothing) or "ml" (pymatting's multilevel estimator: numba-compiled, ~40 s on first use)
    foreground: str = "none"
    fg_max_pixels: int = 2_000_000

    def __post_init__(self) -> None:
        if self.foreground not in FOREGROUND_METHODS:
            raise ConfigError(f"scenario {self.name}: foreground must be one of {FOREGROUND_METHODS}")
        if self.threshold is not None and not 0.0 < self.threshold < 1.0:
            raise ConfigError(f"scenario {self.name}: threshold must be between 0 and 1")
        if self.levels is not None:
            lo, hi = self.levels
            if not 0.0 <= lo < hi <= 1.0:
                raise ConfigError(f"scenario {self.name}: levels must be [lo, hi] with 0 <= lo < hi <= 1")
        if self.erode < 0 or self.feather < 0:
            raise ConfigError(f"scenario {self.name}: erode and feather must not be negative")

    @classmethod
    def from_dict(cls, name: str, d: dict) -> Scenario:
        d = dict(d or {})
        flat: dict = {"name": name}
        am = d.pop("alpha_matting", None)
        if isinstance(am, dict):
            flat["alpha_matting"] = bool(am.pop("enabled", True))
            for key, value in am.items():
                flat[f"am_{key}"] = value
        elif am is not None:
            flat["alpha_matting"] = bool(am)
        fg = d.pop("foreground", None)
        if isinstance(fg, dict):
            flat["foreground"] = fg.get("method", "ml")
            if "max_pixels" in fg:
                flat["fg_max_pixels"] = fg["max_pixels"]
        elif fg is not None:
            flat["foreground"] = str(fg)
        flat.update(d)
        if flat.get("levels") is not None:
            flat["levels"] = tuple(float(x) for x in flat["levels"])
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(flat) - known)
        if unknown:
            raise ConfigError(f"scenario {name}: unknown keys {unknown}; allowed: {sorted(known - {'name'})}")
        return cls(**flat)


def load_scenarios() -> dict[str, Scenario]:
    """All scenarios by name; files named by [matting] scenarios override the shipped ones."""
    files = catalogue_files(DEFAULT_SCENARIOS, "scenarios")
    return load_catalogue(files, "scenarios", Scenario.from_dict, "scenarios")


def get_scenario(name_or_scenario: str | Scenario | None) -> Scenario:
    if isinstance(name_or_scenario, Scenario):
        return name_or_scenario
    name = name_or_scenario or "default"
    scenarios = load_scenarios()
    if name not in scenarios:
        raise ConfigError(f"unknown scenario {name!r}; known: {', '.join(sorted(scenarios))}")
    return scenarios[name]
