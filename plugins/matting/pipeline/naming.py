"""Every name a run gives a file, planned here and only here.

- Output names (``plan_stems`` / ``plan_outputs``): input names kept, extension swapped, clashes
  resolved deterministically. Planned once over the whole run: the DAGs' ``split_batches`` stamps
  each file's stem on its XCom dict (``STEM_KEY``), the operators read it back (``stems_of``), the
  batch runner plans only what was not planned yet, around what was (``plan_outputs(fixed=)``);
  so mapped batches never collide and a retried batch writes the same names again.
- Portable and within the destination's limits (``Storage.name_limits()``: bytes per folder or file
  name, bytes per path below the root): ``\\ : * ? " < > |`` and control characters become ``_``,
  trailing dots and spaces go, no name is empty, ``.`` or ``..``; a name that would not fit (with
  room for its companions and under the run's folder) is cut between UTF-8 characters and ends with
  ``-`` and a hash of the whole original name (``nnnn…n-1f2e3d4c.png``), so it stays unique and
  recognisable; the record keeps the original name (``FileRecord.source``).
- Where an original goes (``unique_name`` / ``versioned_name``): its own name under ``processed/``
  or ``quarantine/`` if that is free, else this version's suffixed name; never an overwrite; cut the
  same way where the source's limits require it, leaving room for a quarantined file's note.
- The files that go with an output (``report_name``, ``sheet_name``, ``decision_name``).
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from matting.storage.base import NameLimits, utf8_len

if TYPE_CHECKING:  # the storage layer imports nothing from here
    from matting.storage import FileInfo, Storage

STEM_KEY = "output_stem"  # the field of a file's XCom dict that carries its planned output stem

#: what an output's companions put in place of its extension (report, reviewer's decision, the
#: largest print sheet): every planned name leaves room for the longest
COMPANION_SUFFIXES = (".report.json", ".review.json", ".sheet-5x7.jpg")
COMPANION_ROOM = max(len(s) for s in COMPANION_SUFFIXES)
NOTE_SUFFIX = ".error.json"  # a quarantined original's note, beside it
#: before the destination is known (``split_batches``): a Linux folder's or SFTP server's name limit
DEFAULT_LIMITS = NameLimits(name_bytes=255, path_bytes=None)
HASH_BYTES = 9  # "-" and 8 hex digits: how a shortened name ends
MIN_NAME_BYTES = 24  # a path too long is fitted by cutting its longest names, none below this
MAX_EXT_BYTES = 16  # a longer "extension" (``a.<300 x n>``) is part of the stem

_UNSAFE = re.compile(r'[\\:*?"<>|\x00-\x1f\x7f\ud800-\udfff]')


def cut_utf8(text: str, max_bytes: int) -> str:
    """The longest start of ``text`` of at most ``max_bytes`` bytes in UTF-8, cut between characters."""
    total = 0
    for i, ch in enumerate(text):
        total += utf8_len(ch)
        if total > max_bytes:
            return text[:i]
    return text


def _hash(seed: str) -> str:
    return hashlib.sha1(seed.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def _component(part: str) -> str:
    """One folder or file name as every common destination can hold it."""
    return _UNSAFE.sub("_", part).rstrip(". ") or "_"


def _clean(name: str) -> str:
    """A source name (an S3 key may hold ``a//b``, ``./c`` or ``x\\..\\y``) as a portable relative path:
    ``/`` the only separator, empty / ``.`` / ``..`` parts dropped, each part made safe."""
    parts = [_component(p) for p in name.split("/") if p not in ("", ".", "..")]
    return posixpath.join(*parts) if parts else "unnamed"


def _splitext(name: str) -> tuple[str, str]:
    stem, ext = posixpath.splitext(name)
    return (stem, ext) if utf8_len(ext) <= MAX_EXT_BYTES else (name, "")


def _shorten(text: str, max_bytes: int, seed: str) -> str:
    """``text`` if it fits ``max_bytes``, else its start and ``-<hash of seed>`` within them."""
    if utf8_len(text) <= max_bytes:
        return text
    return cut_utf8(text, max(0, max_bytes - HASH_BYTES)) + "-" + _hash(seed)


def _fit(
    folders: list[str], stem: str, tail: str, limits: NameLimits, *, under: str = "", room: int = 0, seed: str
) -> str:
    """``folders/stem+tail`` within ``limits``: each name within ``name_bytes`` (the last with ``room``
    bytes to spare after ``tail``, which is kept whole), and the whole path, placed under ``under``,
    within ``path_bytes``: the longest names are cut first, none below ``MIN_NAME_BYTES``. A cut name
    ends with a hash of ``seed`` (the file's) or of its folder path (a folder's, the same for every
    file in it). A path that cannot be fitted is returned as close as it gets: the write refuses it."""
    texts = [*folders, stem]
    seeds = ["/".join(folders[: i + 1]) for i in range(len(folders))] + [seed]
    after = [0] * len(folders) + [utf8_len(tail) + room]  # bytes a name needs beyond its cut part
    parts = list(texts)
    if limits.name_bytes is not None:
        parts = [_shorten(t, limits.name_bytes - a, s) for t, a, s in zip(texts, after, seeds, strict=True)]
    if limits.path_bytes is not None:
        budget = limits.path_bytes - (utf8_len(under) + 1 if under else 0)
        while (excess := sum(map(utf8_len, parts)) + sum(after) + len(parts) - 1 - budget) > 0:
            i = max(range(len(parts)), key=lambda j: (utf8_len(parts[j]), j))
            if utf8_len(parts[i]) <= MIN_NAME_BYTES:
                break
            parts[i] = _shorten(texts[i], max(MIN_NAME_BYTES, utf8_len(parts[i]) - excess), seeds[i])
    return "/".join([*parts[:-1], parts[-1] + tail])  # not posixpath.join: an S3 key's a//b stays


def fit_path(rel: str, limits: NameLimits, room: int = 0, under: str = "") -> str:
    """An existing name (an original on its own storage) as it fits ``limits`` under ``under`` with
    ``room`` bytes to spare on its last name: unchanged where it fits, its characters kept."""
    *folders, last = rel.split("/")
    stem, ext = _splitext(last)
    return _fit(folders, stem, ext, limits, under=under, room=room, seed=rel)


def portable_path(name: str, limits: NameLimits | None = None, room: int = 0, under: str = "") -> str:
    """A source name made portable (``_clean``) and fitted (``fit_path``): where a copy of an original
    goes on another storage (a read-only source's failed files, in the destination's quarantine/)."""
    clean = _clean(name)
    *folders, last = clean.split("/")
    stem, ext = _splitext(last)
    return _fit(folders, stem.rstrip(". ") or "_", ext, limits or DEFAULT_LIMITS, under=under, room=room, seed=name)


def plan_named(
    pairs: Iterable[tuple[str, str]],
    extension: str,
    fixed: Mapping[str, str] | None = None,
    limits: NameLimits | None = None,
    under: str = "",
) -> dict[str, str]:
    """``(key, relative name)`` pairs -> ``{key: unique output name}``; two keys may share a name
    (``x/a.jpg`` and ``y/a.jpg`` given as files): each still gets an output of its own. Clashes
    (``a.jpg`` and ``a.png`` both -> ``a.png``, or ``a//b.jpg`` and ``a/b.jpg``) are resolved by
    adding the source extension, then a number, to the later one, case-insensitively. ``fixed``
    (key -> stem, planned earlier) is kept as it is and planned around (cut only where ``limits``
    require it). Names are portable and fit ``limits`` (default ``DEFAULT_LIMITS``) under ``under``
    (the folder they are written to: ``<run_prefix>/outputs``), with room for the longest companion."""
    limits = limits or DEFAULT_LIMITS
    room = max(0, COMPANION_ROOM - utf8_len(extension))

    def fitted(key: str, stem: str, tail: str) -> str:
        *folders, last = stem.split("/")
        return _fit(folders, last, tail + extension, limits, under=under, room=room, seed=key)

    plan = {key: fitted(key, stem, "") for key, stem in (fixed or {}).items()}
    used = {name.lower() for name in plan.values()}
    for key, name in pairs:
        if key in plan:
            continue
        stem, src_ext = _splitext(_clean(name))
        stem = posixpath.join(posixpath.dirname(stem), posixpath.basename(stem).rstrip(". ") or "_")
        candidate = fitted(name, stem, "")
        if candidate.lower() in used:
            candidate = fitted(name, stem, f"_{src_ext.lstrip('.').lower() or 'noext'}")
            n = 2
            while candidate.lower() in used:
                candidate = fitted(name, stem, f"_{n}")
                n += 1
        used.add(candidate.lower())
        plan[key] = candidate
    return plan


def plan_outputs(
    names: Iterable[str],
    extension: str,
    fixed: Mapping[str, str] | None = None,
    limits: NameLimits | None = None,
    under: str = "",
) -> dict[str, str]:
    """Each relative input name -> a unique output name with ``extension``; ``fixed`` (name -> stem)
    holds the names planned earlier for the run, which stay and are planned around. ``limits`` and
    ``under``: the destination's (``Storage.name_limits()``) and the folder the outputs go to."""
    return plan_named([(n, n) for n in dict.fromkeys(names)], extension, fixed, limits, under)


def plan_stems(names: Iterable[str], limits: NameLimits | None = None) -> dict[str, str]:
    """Output names without an extension (the format is the job's): what ``STEM_KEY`` carries."""
    return plan_outputs(names, "", limits=limits)


def with_stems(files: list[dict], limits: NameLimits | None = None) -> list[dict]:
    """Copies of the files' XCom dicts, each with its stem planned over all of them."""
    files = [dict(f) for f in files]
    stems = plan_stems((f["path"] for f in files), limits)
    for f in files:
        f[STEM_KEY] = stems[f["path"]]
    return files


def stems_of(files: Iterable[dict]) -> dict[str, str]:
    """The stems planned for the run, read back from the files' XCom dicts (path -> stem)."""
    return {f["path"]: f[STEM_KEY] for f in files if f.get(STEM_KEY)}


def versioned_name(rel: str, info: FileInfo, limits: NameLimits | None = None, room: int = 0) -> str:
    """``rel`` with this version's suffix (``a.jpg`` -> ``a~1f2e3d4c.jpg``), cut where ``limits``
    require it (``room``: bytes to spare on the name, a note's); idempotent."""
    tag = f"~{info.version_id[:8]}"
    *folders, last = rel.split("/")
    stem, ext = _splitext(last)
    if stem.endswith(tag):
        return rel
    return _fit(folders, stem, tag + ext, limits or NameLimits(None, None), room=room, seed=rel)


def unique_name(storage: Storage, rel: str, info: FileInfo, room: int = 0) -> str:
    """``rel`` (fitted to the storage's limits, ``room`` bytes to spare) if nothing is there yet, else
    the versioned name: never overwrites, and a retry of the same version picks the same name."""
    limits = storage.name_limits()
    rel = fit_path(rel, limits, room)
    return rel if not storage.exists(rel) else versioned_name(rel, info, limits, room)


def fallback_name(base: str, rel: str, info: FileInfo) -> str:
    """Where an original goes when its storage refuses even its fitted name (a share with tighter
    limits than it declares): ``<base>/<version id><ext>``, short and this version's own."""
    ext = _splitext(posixpath.basename(rel))[1]
    return posixpath.join(base, info.version_id + (_component(ext) if ext else ""))


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
