"""The ID-photo spec catalogue (``matting/data/idphoto_specs.yaml``): data, not code."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from matting.catalogue import catalogue_files, load_catalogue, shipped
from matting.errors import ConfigError

DEFAULT_SPECS = shipped("idphoto_specs.yaml")

Band = tuple[float, float]


@dataclass(frozen=True)
class IdPhotoSpec:
    """One preset. Ratios are fractions of the photo height; eye line is measured from the bottom."""

    name: str
    title: str
    width_px: int
    height_px: int
    dpi: int
    head_ratio: Band
    top_margin_ratio: Band
    eye_line_ratio: Band | None = None
    backgrounds: tuple[str, ...] = ("white",)
    kb_min: float | None = None
    kb_max: float | None = None
    print_mm: tuple[float, float] | None = None
    print_in: tuple[float, float] | None = None
    source: str = ""
    expression: str = "neutral"  # or "natural_smile" (US): how far the mouth may open
    glasses: str = "allowed"  # or "forbidden" (US since 2016)
    formats: tuple[str, ...] = ("jpeg", "png")  # the file formats the standard accepts

    def __post_init__(self) -> None:
        if self.expression not in ("neutral", "natural_smile"):
            raise ConfigError(f"spec {self.name}: expression must be neutral or natural_smile")
        if self.glasses not in ("allowed", "forbidden"):
            raise ConfigError(f"spec {self.name}: glasses must be allowed or forbidden")
        for label in ("head_ratio", "top_margin_ratio", "eye_line_ratio"):
            band = getattr(self, label)
            if band is not None and not (0.0 <= band[0] <= band[1] <= 1.0):
                raise ConfigError(f"spec {self.name}: {label} must be [min, max] within 0..1, got {band}")
        if self.width_px <= 0 or self.height_px <= 0 or self.dpi <= 0:
            raise ConfigError(f"spec {self.name}: width_px, height_px and dpi must be positive")
        if not self.formats or set(self.formats) - {"jpeg", "png"}:
            raise ConfigError(f"spec {self.name}: formats must be a list of jpeg and/or png, got {list(self.formats)}")
        if self.kb_min and self.kb_max and self.kb_min > self.kb_max:
            raise ConfigError(f"spec {self.name}: kb_min is above kb_max")

    @property
    def print_size_mm(self) -> tuple[float, float]:
        """Printed (width, height) in mm: as stated, or from pixels and DPI."""
        if self.print_mm:
            return self.print_mm
        if self.print_in:
            return (self.print_in[0] * 25.4, self.print_in[1] * 25.4)
        return (self.width_px / self.dpi * 25.4, self.height_px / self.dpi * 25.4)

    @classmethod
    def from_dict(cls, name: str, d: dict) -> IdPhotoSpec:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"spec {name}: unknown keys {unknown}; allowed: {sorted(known - {'name'})}")
        kw = dict(d)
        for key in ("head_ratio", "top_margin_ratio", "eye_line_ratio", "print_mm", "print_in"):
            if kw.get(key) is not None:
                kw[key] = tuple(float(x) for x in kw[key])
        for key in ("backgrounds", "formats"):
            if key in kw:
                kw[key] = tuple(str(b) for b in kw[key])
        missing = [
            k for k in ("title", "width_px", "height_px", "dpi", "head_ratio", "top_margin_ratio") if k not in kw
        ]
        if missing:
            raise ConfigError(f"spec {name}: missing keys {missing}")
        return cls(name=name, **kw)


def load_specs() -> dict[str, IdPhotoSpec]:
    """All presets by name; files named by [matting] idphoto_specs override the shipped ones."""
    files = catalogue_files(DEFAULT_SPECS, "idphoto_specs")
    return load_catalogue(files, "specs", IdPhotoSpec.from_dict, "ID-photo specs")


def get_spec(name: str | IdPhotoSpec) -> IdPhotoSpec:
    if isinstance(name, IdPhotoSpec):
        return name
    specs = load_specs()
    if name not in specs:
        raise ConfigError(f"unknown ID-photo spec {name!r}; known: {', '.join(sorted(specs))}")
    return specs[name]
