"""Package names imported on first use (PEP 562), so that importing one light module of a package
(a DAG file reading the ID-photo presets) does not load the heavy ones (ONNX Runtime, OpenCV)."""

from __future__ import annotations

import importlib
from collections.abc import Callable


def exports(package: str, names: dict[str, str], namespace: dict) -> tuple[Callable, Callable]:
    """``__getattr__`` and ``__dir__`` for ``package``: each of ``names`` (name -> its submodule) is
    imported from its submodule when first asked for, then kept in the package's ``namespace``."""

    def getattr_(name: str):
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{names[name]}"), name)
        namespace[name] = value
        return value

    def dir_() -> list[str]:
        return sorted({*namespace, *names})

    return getattr_, dir_
