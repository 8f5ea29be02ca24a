"""Output names for a run: input names kept, extension swapped, clashes resolved deterministically."""

from __future__ import annotations

import os
import posixpath


def _clean(name: str) -> str:
    """A source name (an S3 key may hold ``a//b`` or ``./c``) as a safe relative output path."""
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".", "..")]
    return posixpath.join(*parts) if parts else "unnamed"


def plan_outputs(names: list[str], extension: str) -> dict[str, str]:
    """Map each relative input name to a unique output name with ``extension``. Plan it once over the
    whole run (every mapped batch and every retry then agrees). Names are kept; clashes (``a.jpg`` and
    ``a.png`` both -> ``a.png``, or ``a//b.jpg`` and ``a/b.jpg``) are resolved by adding the source
    extension, then a number, to the later one, case-insensitively."""
    return plan_named([(n, n) for n in dict.fromkeys(names)], extension)


def plan_named(pairs: list[tuple[str, str]], extension: str) -> dict[str, str]:
    """``(key, relative name)`` pairs -> ``{key: unique output name}``; two keys may share a name
    (``x/a.jpg`` and ``y/a.jpg`` given as files): each still gets an output of its own."""
    plan: dict[str, str] = {}
    used: set[str] = set()
    for key, name in pairs:
        stem, src_ext = os.path.splitext(_clean(name))
        candidate = stem + extension
        if candidate.lower() in used:
            candidate = f"{stem}_{src_ext.lstrip('.').lower() or 'noext'}{extension}"
            n = 2
            while candidate.lower() in used:
                candidate = f"{stem}_{n}{extension}"
                n += 1
        used.add(candidate.lower())
        plan[key] = candidate
    return plan
