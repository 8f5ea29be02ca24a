"""A local folder (or a mounted share) as a Storage: temp name + rename writes, hard-link moves.

Names: 255 bytes per folder or file name and 4,095 for the whole path, root included (Linux NAME_MAX
and PATH_MAX), the base class's ``max_name_bytes`` / ``max_path_bytes``; a share with tighter limits
declares them on a subclass. ``\\`` and ``:`` are ordinary characters of a Linux name."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from matting.storage.atomic import atomic_open, atomic_write_bytes
from matting.storage.base import FileInfo, Storage, safe_relpath


class LocalStorage(Storage):
    kind = "local"
    max_name_bytes = 255  # NAME_MAX of ext4, XFS, btrfs; a share with less declares it on a subclass
    max_path_bytes = 4095  # PATH_MAX less its NUL, the root's own path included

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def describe(self) -> str:
        return f"file://{self.root}"

    def _root_bytes(self) -> int:
        return len(os.fsencode(os.path.abspath(self.root))) + 1

    def local_path(self, rel: str) -> Path:
        return self._full(rel)

    def sub(self, rel_dir: str) -> LocalStorage:
        return LocalStorage(self.root / safe_relpath(rel_dir))

    def _full(self, rel: str) -> Path:
        return self.root / safe_relpath(rel)

    @staticmethod
    def _info(rel: str, st: os.stat_result) -> FileInfo:
        return FileInfo(rel, st.st_size, st.st_mtime, f"{st.st_size}-{st.st_mtime_ns}")

    def list(self, recursive: bool = True, skip_dirs: tuple[str, ...] = ()) -> list[FileInfo]:
        infos = []
        if not self.root.is_dir():
            return []
        for dirpath, dirs, files in os.walk(self.root):
            if not recursive:
                dirs[:] = []
            elif Path(dirpath) == self.root:
                dirs[:] = [d for d in dirs if d not in skip_dirs]
            dirs.sort()
            for name in files:
                full = Path(dirpath) / name
                try:
                    st = full.lstat()
                except FileNotFoundError:  # vanished between walk and stat
                    continue
                if stat.S_ISREG(st.st_mode):
                    infos.append(self._info(full.relative_to(self.root).as_posix(), st))
        return self._checked(infos)

    def stat(self, rel: str) -> FileInfo | None:
        try:
            st = self._full(rel).lstat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return self._info(safe_relpath(rel), st) if stat.S_ISREG(st.st_mode) else None

    def _read(self, rel: str) -> bytes:
        return self._full(rel).read_bytes()

    def write(self, rel: str, data: bytes) -> str:
        with self._naming(rel):
            return str(atomic_write_bytes(self._full(rel), data))

    def write_file(self, rel: str, local_path: str | os.PathLike) -> str:
        target = self._full(rel)
        with self._naming(rel), open(local_path, "rb") as src, atomic_open(target) as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        return str(target)

    @contextlib.contextmanager
    def open_write(self, rel: str) -> Iterator[BinaryIO]:
        """In place: a temp file beside the target, renamed on success (written once, no second copy)."""
        with self._naming(rel), atomic_open(self._full(rel)) as fh:
            yield fh

    def move(self, rel: str, dest_rel: str, expect: FileInfo | None = None) -> None:
        with self._naming(dest_rel):
            self._move(rel, dest_rel, expect)

    def _move(self, rel: str, dest_rel: str, expect: FileInfo | None) -> None:
        src, dest = self._full(rel), self._full(dest_rel)
        if expect is not None:
            self._check_version(rel, expect)
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(src, dest)  # fails if dest exists: never overwrites
        except FileExistsError:
            if src.exists() and os.path.samefile(src, dest):  # linked, not yet unlinked: finish
                src.unlink()
                return
            raise FileExistsError(f"{dest_rel} already exists in {self.describe()}; not overwriting") from None
        except OSError as exc:  # a filesystem without hard links: check, then rename
            if isinstance(exc, FileNotFoundError):
                raise
            if dest.exists():
                raise FileExistsError(f"{dest_rel} already exists in {self.describe()}; not overwriting") from exc
            os.rename(src, dest)
            return
        src.unlink()

    def delete(self, rel: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._full(rel).unlink()
