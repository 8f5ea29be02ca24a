"""Every name a run gives a file, planned here and only here.

- Output names (``plan_stems`` / ``plan_outputs``): input names kept, extension swapped, clashes
  resolved deterministically. Planned once over the whole run: the DAGs' ``split_batches`` stamps
  each file's stem on its XCom dict (``STEM_KEY``), the operators read it back (``stems_of``), the
  batch runner plans only what was not planned yet, around what was (``plan_outputs(fixed=)``);
  so mapped batches never collide and a retried batch writes the same names again.
- Where an original goes (``unique_name`` / ``versioned_name``): its own name under ``processed/``
  or ``quarantine/`` if that is free, else this version's suffixed name; never an overwrite.
- The files that go with an output (``report_name``, ``sheet_name``, ``decision_name``).
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the storage layer imports nothing from here; only a type for the signatures
    from matting.storage import FileInfo, Storage

STEM_KEY = "output_stem"  # the field of a file's XCom dict that carries its planned output stem


def _clean(name: str) -> str:
    """A source name (an S3 key may hold ``a//b`` or ``./c``) as a safe relative output path."""
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".", "..")]
    return posixpath.join(*parts) if parts else "unnamed"


def plan_named(
    pairs: Iterable[tuple[str, str]], extension: str, fixed: Mapping[str, str] | None = None
) -> dict[str, str]:
    """``(key, relative name)`` pairs -> ``{key: unique output name}``; two keys may share a name
    (``x/a.jpg`` and ``y/a.jpg`` given as files): each still gets an output of its own. Clashes
    (``a.jpg`` and ``a.png`` both -> ``a.png``, or ``a//b.jpg`` and ``a/b.jpg``) are resolved by
    adding the source extension, then a number, to the later one, case-insensitively. ``fixed``
    (key -> stem, planned earlier) is kept as it is and planned around."""
    fixed = dict(fixed or {})
    plan = {key: stem + extension for key, stem in fixed.items()}
    used = {name.lower() for name in plan.values()}
    for key, name in pairs:
        if key in plan:
            continue
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


def plan_outputs(names: Iterable[str], extension: str, fixed: Mapping[str, str] | None = None) -> dict[str, str]:
    """Each relative input name -> a unique output name with ``extension``; ``fixed`` (name -> stem)
    holds the names planned earlier for the run, which stay and are planned around."""
    return plan_named([(n, n) for n in dict.fromkeys(names)], extension, fixed)


def plan_stems(names: Iterable[str]) -> dict[str, str]:
    """Output names without an extension (the format is the job's): what ``STEM_KEY`` carries."""
    return plan_outputs(names, "")


def with_stems(files: list[dict]) -> list[dict]:
    """Copies of the files' XCom dicts, each with its stem planned over all of them."""
    files = [dict(f) for f in files]
    stems = plan_stems(f["path"] for f in files)
    for f in files:
        f[STEM_KEY] = stems[f["path"]]
    return files


def stems_of(files: Iterable[dict]) -> dict[str, str]:
    """The stems planned for the run, read back from the files' XCom dicts (path -> stem)."""
    return {f["path"]: f[STEM_KEY] for f in files if f.get(STEM_KEY)}


def versioned_name(rel: str, info: FileInfo) -> str:
    """``rel`` with this version's suffix (``a.jpg`` -> ``a~1f2e3d4c.jpg``); idempotent."""
    tag = f"~{info.version_id[:8]}"
    stem, ext = posixpath.splitext(rel)
    return rel if stem.endswith(tag) else f"{stem}{tag}{ext}"


def unique_name(storage: Storage, rel: str, info: FileInfo) -> str:
    """``rel`` if nothing is there yet, else the versioned name: never overwrites, and a retry of the
    same version picks the same name."""
    return rel if not storage.exists(rel) else versioned_name(rel, info)


def _stem(out_name: str) -> str:
    return posixpath.splitext(out_name)[0]


def report_name(out_name: str) -> str:
    """An ID photo's report beside it: ``a/b.jpg`` -> ``a/b.report.json``."""
    return f"{_stem(out_name)}.report.json"


def sheet_name(out_name: str, size: str) -> str:
    """Its print sheet: ``a/b.jpg``, ``4x6`` -> ``a/b.sheet-4x6.jpg``."""
    return f"{_stem(out_name)}.sheet-{size}.jpg"


def decision_name(out_name: str) -> str:
    """A reviewer's decision on a held photo: ``a/b.jpg`` -> ``a/b.review.json``."""
    return f"{_stem(out_name)}.review.json"
