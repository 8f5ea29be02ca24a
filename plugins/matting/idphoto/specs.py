"""The ID-photo spec catalogue (``matting/data/idphoto_specs.yaml``): data, not code."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from matting.catalogue import catalogue_files, load_catalogue, shipped
from matting.engine.colours import parse_colour
from matting.errors import ConfigError
from matting.idphoto.backgrounds import RGB, ColourFamily

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
    backgrounds: tuple[str, ...] = ("white",)  # colour family names or exact colours; first = default
    backgrounds_source: str = ""  # where the list of backgrounds comes from
    kb_min: float | None = None
    kb_max: float | None = None
    print_mm: tuple[float, float] | None = None
    print_in: tuple[float, float] | None = None
    source: str = ""
    expression: str = "neutral"  # or "natural_smile" (US): how far the mouth may open
    glasses: str = "allowed"  # or "forbidden" (US since 2016)
    formats: tuple[str, ...] = ("jpeg", "png")  # the file formats the standard accepts
    # the catalogue's colour families (``colour_families``), set by ``load_specs``: a name in
    # ``backgrounds`` that is one of them accepts the whole family, any other name one exact colour
    families: tuple[ColourFamily, ...] = field(default=(), compare=False, repr=False)

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
        if not self.backgrounds:
            raise ConfigError(f"spec {self.name}: backgrounds must list at least one colour or colour family")
        if not self.formats or set(self.formats) - {"jpeg", "png"}:
            raise ConfigError(f"spec {self.name}: formats must be a list of jpeg and/or png, got {list(self.formats)}")
        if self.kb_min and self.kb_max and self.kb_min > self.kb_max:
            raise ConfigError(f"spec {self.name}: kb_min is above kb_max")

    def family(self, name: str) -> ColourFamily | None:
        return next((f for f in self.families if f.name == str(name).strip().lower()), None)

    def background_colour(self, name: str) -> RGB:
        """The colour drawn for ``name``: a family's sample, else the colour itself (``parse_colour``)."""
        family = self.family(name)
        rgb = family.sample if family else parse_colour(name)
        if rgb is None:
            raise ConfigError("an ID photo needs a background colour")
        return rgb

    def accepts_background(self, rgb: RGB) -> bool:
        """The one rule for backgrounds (checked on the options before a run and in each report):
        an exact colour the preset lists, or a colour inside a family it lists."""
        rgb = tuple(int(c) for c in rgb)
        for name in self.backgrounds:
            family = self.family(name)
            if family.contains(rgb) if family else parse_colour(name) == rgb:
                return True
        return False

    def accepted_backgrounds(self) -> str:
        """``white, off-white (L* 90-100, C* <= 5)``: what ``backgrounds`` accepts, for messages."""
        return ", ".join(f.describe() if (f := self.family(n)) else n for n in self.backgrounds)

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
        known = {f.name for f in dataclasses.fields(cls)} - {"name", "families"}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"spec {name}: unknown keys {unknown}; allowed: {sorted(known)}")
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
    """All presets by name; files named by [matting] idphoto_specs override the shipped ones (their
    ``colour_families`` too). Every background a preset lists must be a family or a colour."""
    files = catalogue_files(DEFAULT_SPECS, "idphoto_specs")
    families = tuple(load_catalogue(files, "colour_families", ColourFamily.from_dict, "colour families").values())
    specs = load_catalogue(files, "specs", IdPhotoSpec.from_dict, "ID-photo specs")
    out = {}
    for name, spec in specs.items():
        spec = dataclasses.replace(spec, families=families)
        for bg in spec.backgrounds:
            try:
                spec.background_colour(bg)
            except ConfigError as exc:
                raise ConfigError(f"spec {name}: background {bg!r} is not a colour family or a colour: {exc}") from exc
        out[name] = spec
    return out


def get_spec(name: str | IdPhotoSpec) -> IdPhotoSpec:
    if isinstance(name, IdPhotoSpec):
        return name
    specs = load_specs()
    if name not in specs:
        raise ConfigError(f"unknown ID-photo spec {name!r}; known: {', '.join(sorted(specs))}")
    return specs[name]
