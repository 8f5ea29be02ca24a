"""Post-processing scenarios (``matting/data/scenarios.yaml``): what happens to the model's mask before
composition. Data, not code: users add scenarios to the YAML (or a file named by [matting] scenarios).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from matting.catalogue import catalogue_files, load_catalogue, shipped
from matting.errors import ConfigError

DEFAULT_SCENARIOS = shipped("scenarios.yaml")
# the scenario the DAGs and operators use unless told otherwise (content-aware: see scenarios.yaml)
DEFAULT_SCENARIO = "auto"

FOREGROUND_METHODS = ("none", "ml", "blur_fusion")


ROUTES = ("people", "other")  # the kinds of content a content-aware scenario tells apart


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
    # a content-aware scenario: per photo, the scenario named for its content does the work
    # ({"people": ..., "other": ...}; a photo is "people" when BlazeFace finds a face with a score of
    # at least route_min_score, at least route_min_face of the photo's short side wide); every key
    # above then belongs to those scenarios
    route: dict | None = None
    route_min_face: float = 0.08
    # measured: real faces 0.83-0.95 (samples, test portraits, the ID-photo evaluation portraits);
    # face-like patterns on objects and animals of the quality composites 0.61-0.79. A person sent to
    # the general model still gets a good cut-out; an object sent to the portrait model does not.
    route_min_score: float = 0.85

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
        if self.route is not None:
            if set(self.route) != set(ROUTES) or not all(isinstance(v, str) for v in self.route.values()):
                raise ConfigError(f"scenario {self.name}: route must name a scenario for each of {ROUTES}")
            if not 0.0 < self.route_min_face < 1.0 or not 0.0 < self.route_min_score < 1.0:
                raise ConfigError(f"scenario {self.name}: route_min_face and route_min_score must be between 0 and 1")

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


def models_of(name: str, default_model: str) -> list[str]:
    """The models scenario ``name`` loads: its own (else ``default_model``), or, for a content-aware
    scenario, each route's. What an image must hold for that scenario to run."""
    scenario = get_scenario(name)
    targets = [get_scenario(t) for t in scenario.route.values()] if scenario.route is not None else [scenario]
    return sorted({t.model or default_model for t in targets})


def get_scenario(name_or_scenario: str | Scenario | None) -> Scenario:
    if isinstance(name_or_scenario, Scenario):
        return name_or_scenario
    name = name_or_scenario or "default"
    scenarios = load_scenarios()
    if name not in scenarios:
        raise ConfigError(f"unknown scenario {name!r}; known: {', '.join(sorted(scenarios))}")
    scenario = scenarios[name]
    for target in (scenario.route or {}).values():
        if target not in scenarios or scenarios[target].route is not None:
            raise ConfigError(f"scenario {name}: routes to {target!r}, which is not a scenario of its own")
    return scenario
