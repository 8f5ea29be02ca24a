"""The storage interface: ``FileInfo``, root-relative checked paths and the ``Storage`` base class.

Every path handed out or taken in is relative to the root and checked, so a remote name such as
``../../x`` or ``/etc/passwd`` can never escape it. Writes are atomic; moves never overwrite
(``FileExistsError``) and, given the version seen at detection, move only that version
(``SourceChanged`` otherwise). What differs between backends and matters to a caller is a
capability (``shows_partial_writes``, ``max_name_bytes`` / ``max_path_bytes``, ``local_path``,
``share_url``), never a check of the kind. A name a backend cannot hold is refused as
``UnwritableName`` (the photo's problem), never retried as a storage failure.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import posixpath
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO

from matting.errors import MattingError, ShortRead, SourceChanged, UnwritableName, name_refused

log = logging.getLogger("matting.storage")


class UnsafePath(MattingError):
    """A relative path that would leave the storage root."""

    code = "unsafe_path"


@dataclass(frozen=True)
class FileInfo:
    """One file under a storage root: relative posix path, size, mtime (epoch s) and a version
    (S3 ETag, or size+mtime elsewhere) that changes whenever the content may have."""

    path: str
    size: int
    mtime: float | None
    version: str

    @property
    def version_id(self) -> str:
        """A short stable id of this path + version (record, ledger and unique-name suffixes)."""
        return hashlib.sha1(f"{self.path}|{self.version}".encode()).hexdigest()[:16]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> FileInfo:
        return cls(path=d["path"], size=int(d["size"]), mtime=d.get("mtime"), version=str(d["version"]))

    def same_version(self, other: FileInfo | None) -> bool:
        return other is not None and other.size == self.size and other.version == self.version


@dataclass(frozen=True)
class NameLimits:
    """The names a storage can hold, in UTF-8 bytes: each folder or file name (``name_bytes``) and the
    whole path below its root (``path_bytes``: what the backend's limit leaves once its root is
    counted). None: no limit of that kind. The naming plan (``matting.pipeline.naming``) fits names to them."""

    name_bytes: int | None = 255
    path_bytes: int | None = None


def utf8_len(text: str) -> int:
    """Bytes of ``text`` as a name on the wire or on disk (a local name's undecodable bytes count one each)."""
    try:
        return len(text.encode("utf-8", "surrogateescape"))
    except UnicodeEncodeError:
        return len(text.encode("utf-8", "surrogatepass"))


def safe_relpath(rel: str) -> str:
    """Normalise a POSIX path relative to a root; refuse absolute paths and any '..' escape. ``\\`` and
    ``:`` are characters of a name here (``a\\b.jpg`` is one file in a Linux folder or on an OpenSSH
    server), never separators or drives: names that cross storages are made portable by the plan."""
    if not rel or rel.startswith("/"):
        raise UnsafePath(f"refusing path {rel!r}: absolute or empty")
    parts = rel.split("/")
    if any(p == ".." for p in parts) or "\x00" in rel:
        raise UnsafePath(f"refusing path {rel!r}: it would leave the root")
    clean = posixpath.normpath("/".join(p for p in parts if p not in ("", ".")))
    if clean in (".", "") or clean.startswith(".."):
        raise UnsafePath(f"refusing path {rel!r}")
    return clean


class Storage(ABC):
    """list / stat / read / write (atomic) / move (never overwriting) / delete, with root-relative posix
    paths. A context manager: ``close()`` releases connections."""

    kind = "abstract"  # a name for messages; what callers may rely on are the capabilities below
    #: a file is listed while it is still being written (a folder, SFTP); S3 shows an object only whole
    shows_partial_writes = True
    #: the longest folder or file name, in UTF-8 bytes: 255 in a Linux folder (NAME_MAX of ext4, XFS,
    #: btrfs) and on an OpenSSH server; None where there is no such limit (S3: a key is one name)
    max_name_bytes: int | None = 255
    #: the longest path, root included, in UTF-8 bytes: 4,095 for a folder or an SFTP server (Linux
    #: PATH_MAX less its NUL), 1,024 for a whole S3 key (prefix included)
    max_path_bytes: int | None = 4095

    @abstractmethod
    def list(self, recursive: bool = True, skip_dirs: tuple[str, ...] = ()) -> list[FileInfo]:
        """Every regular file below the root; ``skip_dirs`` (top-level folder names) are not walked."""

    @abstractmethod
    def stat(self, rel: str) -> FileInfo | None:
        """The file's current size and version, or None when there is no regular file there."""

    @abstractmethod
    def _read(self, rel: str) -> bytes: ...

    def read(self, rel: str, expect: FileInfo | None = None) -> bytes:
        """The file's bytes; with ``expect``, only if it is still that version (else ``SourceChanged``)
        and all of it: fewer bytes than that version holds is ``ShortRead`` (retried), not a file."""
        if expect is None:
            return self._read(rel)
        self._check_version(rel, expect)
        data = self._read(rel)
        if len(data) != expect.size:
            self._check_version(rel, expect)  # it changed while it was read: left for the next run
            raise ShortRead(f"{rel}: read {len(data)} of its {expect.size} bytes from {self.describe()}")
        return data

    @abstractmethod
    def write(self, rel: str, data: bytes) -> str: ...

    @abstractmethod
    def write_file(self, rel: str, local_path: str | os.PathLike) -> str:
        """Write a local file's content (streamed: memory stays flat whatever its size), atomically."""

    @contextlib.contextmanager
    def open_write(self, rel: str) -> Iterator[BinaryIO]:
        """A binary file to stream ``rel``'s content into (seekable: a zip can be written into it),
        published atomically when the block ends without an error, never otherwise. By default a
        local temp file handed to ``write_file`` (S3: multipart, SFTP: streamed); a backend that can
        write in place (local folders) overrides it, so a large file is written once."""
        fd, tmp = tempfile.mkstemp(prefix="matting-write-")
        try:
            with os.fdopen(fd, "w+b") as fh:
                yield fh
            self.write_file(rel, tmp)
        finally:
            os.unlink(tmp)

    @abstractmethod
    def move(self, rel: str, dest_rel: str, expect: FileInfo | None = None) -> None:
        """Move without ever overwriting (``FileExistsError``); with ``expect`` only that version.
        A move interrupted half-way (destination already holds this very file) is finished."""

    @abstractmethod
    def delete(self, rel: str) -> None: ...

    def copy(self, rel: str, dest_rel: str, expect_sha256: str, expect_version: str | None = None) -> bool:
        """Write a copy of ``rel`` as ``dest_rel`` (overwriting: a name of this run's own) if ``rel``
        still holds the bytes of that sha256; False when it changed, ``FileNotFoundError`` when gone.
        Backends with a server-side copy override it (S3)."""
        data = self.read(rel)
        if hashlib.sha256(data).hexdigest() != expect_sha256:
            return False
        self.write(dest_rel, data)
        return True

    def exists(self, rel: str) -> bool:
        return self.stat(rel) is not None

    def _root_bytes(self) -> int:
        """What the root takes of ``max_path_bytes`` (its own path and a separator)."""
        return 0

    def name_limits(self) -> NameLimits:
        """``max_name_bytes`` and what ``max_path_bytes`` leaves below this root: what a name planned
        for this storage must fit (``matting.pipeline.naming``)."""
        path = None if self.max_path_bytes is None else self.max_path_bytes - self._root_bytes()
        return NameLimits(self.max_name_bytes, path)

    def check_name(self, rel: str) -> None:
        """``UnwritableName`` where ``rel`` does not fit ``name_limits()``: refused before any request."""
        limits = self.name_limits()
        if limits.name_bytes is not None:
            long = [p for p in rel.split("/") if utf8_len(p) > limits.name_bytes]
            if long:
                raise UnwritableName(
                    f"{rel}: {self.describe()} holds names of up to {limits.name_bytes} bytes; "
                    f"{long[0][:40]!r}... is {utf8_len(long[0])}"
                )
        if limits.path_bytes is not None and utf8_len(rel) > limits.path_bytes:
            raise UnwritableName(
                f"{rel[:60]}...: {self.describe()} holds paths of up to {limits.path_bytes} bytes below its root; "
                f"this one is {utf8_len(rel)}"
            )

    @contextlib.contextmanager
    def _naming(self, rel: str) -> Iterator[None]:
        """Around a write or move to ``rel``: a name over the limits is refused up front, and a name the
        backend itself refuses (``errors.name_refused``) becomes ``UnwritableName``, never a retry."""
        self.check_name(rel)
        try:
            yield
        except UnwritableName:
            raise
        except Exception as exc:
            if not name_refused(exc):
                raise
            raise UnwritableName(
                f"{rel}: {self.describe()} cannot hold this name ({type(exc).__name__}: {exc})"
            ) from exc

    def local_path(self, rel: str) -> Path | None:
        """The file's path on this machine where the backend is a local folder (to stream it from
        disk), else None."""
        return None

    def share_url(self, rel: str, expires_s: int) -> str | None:
        """A URL a browser can open for ``expires_s`` seconds, where the backend has one (S3: a presigned
        GET); None for folders and SFTP. The URL is a bearer secret: show it, never log it."""
        return None

    @abstractmethod
    def describe(self) -> str: ...

    @abstractmethod
    def sub(self, rel_dir: str) -> Storage:
        """The same backend and connection, rooted at a sub-folder."""

    def close(self) -> None:  # noqa: B027 - a hook: backends with connections override it
        """Release connections (a no-op where there are none)."""

    def __enter__(self) -> Storage:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def relpath(self, rel: str) -> str:
        """The checked form of a root-relative path on this backend."""
        return safe_relpath(rel)

    def _check_version(self, rel: str, expect: FileInfo) -> FileInfo:
        now = self.stat(rel)
        if now is None:
            raise FileNotFoundError(f"{rel}: gone from {self.describe()}")
        if not expect.same_version(now):
            raise SourceChanged(
                f"{rel}: changed since it was detected (size {expect.size} -> {now.size}, "
                f"version {expect.version} -> {now.version}); left for the next run"
            )
        return now

    def _checked(self, infos: list[FileInfo]) -> list[FileInfo]:
        """Drop (with a warning) any listed name that would escape the root."""
        out = []
        for info in infos:
            try:
                out.append(FileInfo(self.relpath(info.path), info.size, info.mtime, info.version))
            except UnsafePath as exc:
                log.warning("ignoring listed name on %s: %s", self.describe(), exc)
        return sorted(out, key=lambda f: f.path)
