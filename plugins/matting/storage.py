"""One storage interface over a local folder, an S3 bucket/prefix and an SFTP directory.

Addressed the Airflow way: a location plus a connection id. ``s3://bucket/prefix`` goes through the
amazon provider's ``S3Hook``, ``sftp:///abs/dir`` through the sftp provider's ``SFTPHook``, anything
else is a local folder. The hooks own connections and credentials (Airflow connections, e.g. env
``AIRFLOW_CONN_*``); nothing here logs a secret. Every path handed out or taken in is relative to the
root and checked, so a remote name such as ``../../x`` or ``/etc/passwd`` can never escape it.

Writes are atomic: local and SFTP write a temp name then rename; S3 objects appear whole on PUT.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import posixpath
import stat
import time
import uuid
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from pathlib import Path

from matting.atomic import atomic_write_bytes
from matting.errors import MattingError

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
    def ledger_key(self) -> str:
        return f"{self.path}|{self.size}|{self.version}"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> FileInfo:
        return cls(path=d["path"], size=int(d["size"]), mtime=d.get("mtime"), version=str(d["version"]))


def safe_relpath(rel: str) -> str:
    """Normalise a path relative to a root; refuse absolute paths and any '..' escape."""
    if not rel or rel.startswith(("/", "\\")) or (len(rel) > 1 and rel[1] == ":"):
        raise UnsafePath(f"refusing path {rel!r}: absolute or empty")
    parts = rel.replace("\\", "/").split("/")
    if any(p == ".." for p in parts) or "\x00" in rel:
        raise UnsafePath(f"refusing path {rel!r}: it would leave the root")
    clean = posixpath.normpath("/".join(p for p in parts if p not in ("", ".")))
    if clean in (".", "") or clean.startswith(".."):
        raise UnsafePath(f"refusing path {rel!r}")
    return clean


class Storage(ABC):
    """list / read / write (atomic) / move / delete, all with root-relative posix paths."""

    kind = "abstract"

    @abstractmethod
    def list(self, recursive: bool = True) -> list[FileInfo]: ...

    @abstractmethod
    def read(self, rel: str) -> bytes: ...

    @abstractmethod
    def write(self, rel: str, data: bytes) -> str: ...

    @abstractmethod
    def move(self, rel: str, dest_rel: str) -> None: ...

    @abstractmethod
    def delete(self, rel: str) -> None: ...

    @abstractmethod
    def exists(self, rel: str) -> bool: ...

    @abstractmethod
    def describe(self) -> str: ...

    @abstractmethod
    def sub(self, rel_dir: str) -> Storage:
        """The same backend and connection, rooted at a sub-folder."""

    def _checked(self, infos: list[FileInfo]) -> list[FileInfo]:
        """Drop (with a warning) any listed name that would escape the root."""
        out = []
        for info in infos:
            try:
                out.append(FileInfo(safe_relpath(info.path), info.size, info.mtime, info.version))
            except UnsafePath as exc:
                log.warning("ignoring listed name on %s: %s", self.describe(), exc)
        return sorted(out, key=lambda f: f.path)


class LocalStorage(Storage):
    kind = "local"

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def describe(self) -> str:
        return f"file://{self.root}"

    def sub(self, rel_dir: str) -> LocalStorage:
        return LocalStorage(self.root / safe_relpath(rel_dir))

    def _full(self, rel: str) -> Path:
        return self.root / safe_relpath(rel)

    def list(self, recursive: bool = True) -> list[FileInfo]:
        infos = []
        if not self.root.is_dir():
            return []
        for dirpath, dirs, files in os.walk(self.root):
            if not recursive:
                dirs[:] = []
            dirs.sort()
            for name in files:
                full = Path(dirpath) / name
                try:
                    st = full.lstat()
                except FileNotFoundError:  # vanished between walk and stat
                    continue
                if not stat.S_ISREG(st.st_mode):
                    continue
                rel = full.relative_to(self.root).as_posix()
                infos.append(FileInfo(rel, st.st_size, st.st_mtime, f"{st.st_size}-{st.st_mtime_ns}"))
        return self._checked(infos)

    def read(self, rel: str) -> bytes:
        return self._full(rel).read_bytes()

    def write(self, rel: str, data: bytes) -> str:
        return str(atomic_write_bytes(self._full(rel), data))

    def move(self, rel: str, dest_rel: str) -> None:
        dest = self._full(dest_rel)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self._full(rel), dest)

    def delete(self, rel: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._full(rel).unlink()

    def exists(self, rel: str) -> bool:
        return self._full(rel).is_file()


class S3Storage(Storage):
    kind = "s3"

    def __init__(self, bucket: str, prefix: str = "", conn_id: str = "aws_default") -> None:
        self.bucket, self.prefix, self.conn_id = bucket, prefix.strip("/"), conn_id
        self._client = None

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix} (connection {self.conn_id})"

    def sub(self, rel_dir: str) -> S3Storage:
        return S3Storage(self.bucket, self._key(rel_dir), self.conn_id)

    RETRIES = 3

    @property
    def client(self):
        if self._client is None:
            from airflow.providers.amazon.aws.hooks.s3 import S3Hook
            from botocore.config import Config

            # botocore's silent retries are off: _retry() retries and says so in the task log
            config = Config(retries={"total_max_attempts": 1}, connect_timeout=10, read_timeout=60)
            self._client = S3Hook(aws_conn_id=self.conn_id, config=config).get_conn()
        return self._client

    def _retry(self, what: str, fn):
        """Retry throttling, 5xx and connection errors with backoff, logging each failure."""
        from botocore.exceptions import ClientError
        from botocore.exceptions import ConnectionError as BotoConnectionError

        for attempt in range(1, self.RETRIES + 1):
            try:
                return fn()
            except (ClientError, BotoConnectionError) as exc:
                status = getattr(exc, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
                transient = isinstance(exc, BotoConnectionError) or status >= 500 or status == 429
                if not transient or attempt == self.RETRIES:
                    raise
                log.warning(
                    "S3 %s on %s failed (attempt %d/%d): %s; retrying",
                    what,
                    self.describe(),
                    attempt,
                    self.RETRIES,
                    exc,
                )
                time.sleep(0.5 * 2 ** (attempt - 1))
        raise AssertionError("unreachable")

    def _key(self, rel: str) -> str:
        rel = safe_relpath(rel)
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def list(self, recursive: bool = True) -> list[FileInfo]:
        base = f"{self.prefix}/" if self.prefix else ""
        kwargs = {"Bucket": self.bucket, "Prefix": base}
        if not recursive:
            kwargs["Delimiter"] = "/"

        def listing() -> list[FileInfo]:
            infos = []
            for page in self.client.get_paginator("list_objects_v2").paginate(**kwargs):
                for obj in page.get("Contents", []):
                    key = obj["Key"]
                    if key.endswith("/"):
                        continue
                    infos.append(
                        FileInfo(
                            key[len(base) :], int(obj["Size"]), obj["LastModified"].timestamp(), obj["ETag"].strip('"')
                        )
                    )
            return infos

        return self._checked(self._retry("listing", listing))

    def read(self, rel: str) -> bytes:
        key = self._key(rel)
        return self._retry("read", lambda: self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def write(self, rel: str, data: bytes) -> str:
        key = self._key(rel)
        self.client.upload_fileobj(io.BytesIO(data), self.bucket, key)  # visible only once complete
        return f"s3://{self.bucket}/{key}"

    def move(self, rel: str, dest_rel: str) -> None:
        src, dst = self._key(rel), self._key(dest_rel)
        self.client.copy({"Bucket": self.bucket, "Key": src}, self.bucket, dst)  # copy, then delete
        self.client.delete_object(Bucket=self.bucket, Key=src)

    def delete(self, rel: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(rel))

    def exists(self, rel: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(rel))
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise


class SftpStorage(Storage):
    kind = "sftp"

    def __init__(self, root: str, conn_id: str = "sftp_default") -> None:
        self.root, self.conn_id = root.rstrip("/") or "/", conn_id
        self._hook = None

    def describe(self) -> str:
        return f"sftp://{self.root} (connection {self.conn_id})"

    def sub(self, rel_dir: str) -> SftpStorage:
        return SftpStorage(self._full(rel_dir), self.conn_id)

    def _sftp(self, fresh: bool = False):
        from airflow.providers.sftp.hooks.sftp import SFTPHook

        if fresh and self._hook is not None:
            with contextlib.suppress(Exception):
                self._hook.close_conn()
            self._hook = None
        if self._hook is None:
            self._hook = SFTPHook(ssh_conn_id=self.conn_id, use_managed_conn=False)
        return self._hook.get_conn()

    def _call(self, fn):
        """Run ``fn(sftp_client)``; on a dropped connection (server restart) reconnect once."""
        try:
            return fn(self._sftp())
        except (EOFError, OSError) as exc:
            if isinstance(exc, (FileNotFoundError, PermissionError)):
                raise
            log.warning("SFTP connection to %s lost (%s); reconnecting", self.describe(), exc)
            return fn(self._sftp(fresh=True))

    def _full(self, rel: str) -> str:
        return posixpath.join(self.root, safe_relpath(rel))

    def close(self) -> None:
        if self._hook is not None:
            with contextlib.suppress(Exception):
                self._hook.close_conn()
            self._hook = None

    def list(self, recursive: bool = True) -> list[FileInfo]:
        def walk(sftp) -> list[FileInfo]:
            infos: list[FileInfo] = []
            stack = [""]
            while stack:
                rel_dir = stack.pop()
                try:
                    entries = sftp.listdir_attr(posixpath.join(self.root, rel_dir) if rel_dir else self.root)
                except FileNotFoundError:
                    continue
                for e in entries:
                    rel = posixpath.join(rel_dir, e.filename) if rel_dir else e.filename
                    if stat.S_ISDIR(e.st_mode or 0):
                        if recursive:
                            stack.append(rel)
                    elif stat.S_ISREG(e.st_mode or 0):
                        infos.append(
                            FileInfo(rel, int(e.st_size or 0), float(e.st_mtime or 0), f"{e.st_size}-{e.st_mtime}")
                        )
            return infos

        return self._checked(self._call(walk))

    def read(self, rel: str) -> bytes:
        def get(sftp) -> bytes:
            with sftp.open(self._full(rel), "rb") as fh:
                fh.prefetch()
                return fh.read()

        return self._call(get)

    def _makedirs(self, sftp, directory: str) -> None:
        parts, path = directory.strip("/").split("/"), ""
        for part in parts:
            path += "/" + part
            try:
                sftp.stat(path)
            except FileNotFoundError:
                sftp.mkdir(path)

    def write(self, rel: str, data: bytes) -> str:
        target = self._full(rel)
        tmp = posixpath.join(posixpath.dirname(target), f".{posixpath.basename(target)}.tmp-{uuid.uuid4().hex[:8]}")

        def put(sftp) -> str:
            self._makedirs(sftp, posixpath.dirname(target))
            with sftp.open(tmp, "wb") as fh:
                fh.set_pipelined(True)
                fh.write(data)
            try:
                sftp.posix_rename(tmp, target)  # atomic replace (OpenSSH extension)
            except OSError:
                with contextlib.suppress(FileNotFoundError):
                    sftp.remove(target)
                sftp.rename(tmp, target)
            return target

        return self._call(put)

    def move(self, rel: str, dest_rel: str) -> None:
        src, dst = self._full(rel), self._full(dest_rel)

        def mv(sftp) -> None:
            self._makedirs(sftp, posixpath.dirname(dst))
            sftp.posix_rename(src, dst)

        self._call(mv)

    def delete(self, rel: str) -> None:
        def rm(sftp) -> None:
            with contextlib.suppress(FileNotFoundError):
                sftp.remove(self._full(rel))

        self._call(rm)

    def exists(self, rel: str) -> bool:
        def check(sftp) -> bool:
            try:
                return stat.S_ISREG(sftp.stat(self._full(rel)).st_mode or 0)
            except FileNotFoundError:
                return False

        return self._call(check)


def open_storage(location: str, conn_id: str | None = None) -> Storage:
    """``s3://bucket/prefix`` | ``sftp:///abs/dir`` | ``file:///abs/dir`` or a plain local path."""
    if location.startswith("s3://"):
        bucket, _, prefix = location[5:].partition("/")
        return S3Storage(bucket, prefix, conn_id or "aws_default")
    if location.startswith("sftp://"):
        path = location[7:]
        if not path.startswith("/"):  # sftp://host/path: the host comes from the connection
            path = "/" + path.partition("/")[2]
        return SftpStorage(path, conn_id or "sftp_default")
    if location.startswith("file://"):
        location = location[7:]
    return LocalStorage(location)
