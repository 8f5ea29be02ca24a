"""Output names for a batch: input names kept, extension swapped, clashes resolved deterministically."""

from __future__ import annotations

import os


def plan_outputs(names: list[str], extension: str) -> dict[str, str]:
    """Map each relative input name to an output name with ``extension``; names kept, clashes
    (a.jpg and a.png both -> a.png) resolved by adding the source extension to the later one."""
    plan: dict[str, str] = {}
    used: set[str] = set()
    for name in names:
        stem, src_ext = os.path.splitext(name)
        candidate = stem + extension
        if candidate.lower() in used:
            candidate = f"{stem}_{src_ext.lstrip('.').lower() or 'noext'}{extension}"
            n = 2
            while candidate.lower() in used:
                candidate = f"{stem}_{n}{extension}"
                n += 1
        used.add(candidate.lower())
        plan[name] = candidate
    return plan
