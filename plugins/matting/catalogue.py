"""Named YAML catalogues (scenarios, ID-photo specs): a shipped file plus user files named by an
environment variable, later files overriding earlier entries of the same name."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import yaml

from matting.errors import ConfigError

T = TypeVar("T")


def catalogue_files(default: Path, env_var: str) -> list[Path]:
    extra = os.environ.get(env_var, "")
    return [default, *(Path(p) for p in extra.split(os.pathsep) if p)]


def load_catalogue(files: list[Path], section: str, build: Callable[[str, dict], T], what: str) -> dict[str, T]:
    out: dict[str, T] = {}
    for path in files:
        try:
            doc = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read {what} file {path}: {exc}") from exc
        for name, body in (doc.get(section) or {}).items():
            out[name] = build(name, body or {})
    return out
