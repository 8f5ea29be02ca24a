"""Atomic file writes: a temp file in the target folder, fsync, then rename over the final name.

A reader never sees a half-written file under the final name, and a crash leaves only a
``.<name>.tmp-*`` file that the next run ignores (temp names are excluded from listings).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

TEMP_TAIL = ".tmp-"


def temp_name(name: str, token: str = "", limit: int = 255) -> str:
    """The temp name a write uses beside ``name`` (``.<name>.tmp-<token>``), within ``limit`` bytes: a
    name near the filesystem's limit keeps only its start (cut between UTF-8 characters). Without
    ``token``, the prefix ``mkstemp`` completes with 8 random characters."""
    room = limit - 1 - len(TEMP_TAIL) - (len(token) if token else 8)
    start = name.encode("utf-8", "surrogateescape")[:room].decode("utf-8", "ignore")  # a cut character dropped
    return f".{start}{TEMP_TAIL}{token}"


def is_temp_name(name: str) -> bool:
    """True for names that writers use while a file is incomplete (ours and common tools')."""
    base = os.path.basename(name)
    return (
        base.startswith(".")
        or base.endswith((".part", ".filepart", ".tmp", ".crdownload", ".partial"))
        or ".tmp-" in base
    )


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: int = 0o644) -> Iterator[BinaryIO]:
    """Open a temp file beside ``path`` for binary writing; rename it to ``path`` on success."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=temp_name(target.name), dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and return the path."""
    with atomic_open(path) as fh:
        fh.write(data)
    return Path(path)
