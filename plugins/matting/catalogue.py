"""Named YAML catalogues (scenarios, ID-photo specs): a shipped file plus user files named by a
``[matting]`` setting, later files overriding earlier entries of the same name."""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import TypeVar

import yaml

from matting import settings
from matting.errors import ConfigError

T = TypeVar("T")


def shipped(name: str) -> Traversable:
    """A data file shipped inside the package (``matting/data/``), wherever it is installed: a
    ``plugins/`` folder, site-packages or a wheel."""
    return resources.files("matting").joinpath("data", name)


def catalogue_files(default: Path | Traversable, setting: str) -> list[Path | Traversable]:
    return [default, *(Path(p) for p in settings.paths(setting))]


def load_catalogue(
    files: list[Path | Traversable], section: str, build: Callable[[str, dict], T], what: str
) -> dict[str, T]:
    out: dict[str, T] = {}
    for path in files:
        try:
            doc = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read {what} file {path}: {exc}") from exc
        for name, body in (doc.get(section) or {}).items():
            out[name] = build(name, body or {})
    return out
