"""One storage interface over a local folder, an S3 bucket/prefix and an SFTP directory.

Addressed the Airflow way: a location plus a connection id. ``s3://bucket/prefix`` goes through the
amazon provider's ``S3Hook``, ``sftp:///abs/dir`` through the sftp provider's ``SFTPHook``, anything
else is a local folder. The hooks own connections and credentials (Airflow connections, e.g. env
``AIRFLOW_CONN_*``); nothing here logs a secret. Every path handed out or taken in is relative to the
root and checked, so a remote name such as ``../../x`` or ``/etc/passwd`` can never escape it.

Writes are atomic: local and SFTP write a temp name then rename; S3 objects appear whole on PUT.
Moves never overwrite (``FileExistsError``) and, given the version seen at detection, move only that
version (``SourceChanged`` otherwise). Every remote operation has a timeout (``[matting] io_timeout_s``).
One SFTP connection per Storage, and its requests are serialised: paramiko's client must not be
used from two threads at once (the engine reads on one thread while it writes on another).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import posixpath
import shutil
import stat
import threading
import uuid
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from pathlib import Path

from matting import limits
from matting.atomic import atomic_open, atomic_write_bytes
from matting.errors import MattingError, ShortRead, SourceChanged, is_permanent, s3_error_code

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
        import hashlib

        return hashlib.sha1(f"{self.path}|{self.version}".encode()).hexdigest()[:16]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> FileInfo:
        return cls(path=d["path"], size=int(d["size"]), mtime=d.get("mtime"), version=str(d["version"]))

    def same_version(self, other: FileInfo | None) -> bool:
        return other is not None and other.size == self.size and other.version == self.version


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
    """list / stat / read / write (atomic) / move (never overwriting) / delete, with root-relative posix
    paths. A context manager: ``close()`` releases connections."""

    kind = "abstract"

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
        return str(atomic_write_bytes(self._full(rel), data))

    def write_file(self, rel: str, local_path: str | os.PathLike) -> str:
        target = self._full(rel)
        with open(local_path, "rb") as src, atomic_open(target) as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        return str(target)

    def move(self, rel: str, dest_rel: str, expect: FileInfo | None = None) -> None:
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


def verbatim_relpath(rel: str) -> str:
    """An S3 key below the prefix, used exactly as listed (``a//b.jpg`` and ``./c.jpg`` are keys of
    their own); refused only where it would escape a local or SFTP destination."""
    if not rel or rel.startswith("/") or "\x00" in rel or any(p == ".." for p in rel.split("/")):
        raise UnsafePath(f"refusing key {rel!r}: empty, absolute or it would leave the root")
    return rel


class S3Storage(Storage):
    """Objects under ``s3://bucket/prefix`` through the amazon provider's S3Hook.

    botocore retries in its *standard* mode (``[matting] s3_max_attempts``, default 5 attempts, exponential
    backoff with jitter, on throttling such as SlowDown, 5xx, timeouts and connection errors); each retry
    is logged. Standard rather than adaptive: adaptive's client-side rate limiter helps many clients
    hammering one prefix, but it slows every later request of the process after one throttle.
    Timeouts: ``[matting] io_timeout_s`` for connect and for each read of a response."""

    kind = "s3"
    SOURCE_TAG = "matting-source-etag"  # set on moved copies: an interrupted move can be finished

    def __init__(self, bucket: str, prefix: str = "", conn_id: str = "aws_default") -> None:
        self.bucket, self.prefix, self.conn_id = bucket, prefix.strip("/"), conn_id
        self._client = None

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix} (connection {self.conn_id})"

    def sub(self, rel_dir: str) -> S3Storage:
        return S3Storage(self.bucket, self._key(rel_dir), self.conn_id)

    def relpath(self, rel: str) -> str:
        return verbatim_relpath(rel)

    @property
    def client(self):
        if self._client is None:
            from airflow.providers.amazon.aws.hooks.s3 import S3Hook
            from botocore.config import Config

            timeout = limits.io_timeout_s()
            self.max_attempts = limits.s3_max_attempts()
            config = Config(
                retries={"mode": "standard", "total_max_attempts": self.max_attempts},  # the first request included
                connect_timeout=timeout,
                read_timeout=timeout,
                signature_version="s3v4",  # presigned review links too (SigV2 is refused by newer regions)
            )
            self._client = S3Hook(aws_conn_id=self.conn_id, config=config).get_conn()
            self._client.meta.events.register("needs-retry.s3", self._log_retry)
        return self._client

    def _log_retry(self, response=None, attempts=None, caught_exception=None, operation=None, **_) -> None:
        """Say in the task log what botocore is about to retry (it says nothing above DEBUG)."""
        status = (response or (None, {}))[1].get("ResponseMetadata", {}).get("HTTPStatusCode") if response else None
        if caught_exception is not None or (status and (status >= 500 or status == 429)):
            code = (response or (None, {}))[1].get("Error", {}).get("Code") if response else None
            why = f"{type(caught_exception).__name__}: {caught_exception}" if caught_exception else f"{status} {code}"
            name = getattr(operation, "name", "request")
            log.warning(
                "S3 %s on %s failed (attempt %s/%d): %s", name, self.describe(), attempts, self.max_attempts, why
            )

    def _key(self, rel: str) -> str:
        rel = verbatim_relpath(rel)
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def _list_under(self, base: str, delimiter: bool) -> tuple[list[FileInfo], list[str]]:
        kwargs = {"Bucket": self.bucket, "Prefix": base}
        if delimiter:
            kwargs["Delimiter"] = "/"
        infos, dirs = [], []
        root = f"{self.prefix}/" if self.prefix else ""
        for page in self.client.get_paginator("list_objects_v2").paginate(**kwargs):
            dirs.extend(p["Prefix"] for p in page.get("CommonPrefixes", []))
            for obj in page.get("Contents", []):
                key = obj["Key"]
                if key.endswith("/"):
                    continue
                rel = key[len(root) :]
                infos.append(FileInfo(rel, int(obj["Size"]), obj["LastModified"].timestamp(), obj["ETag"].strip('"')))
        return infos, dirs

    def list(self, recursive: bool = True, skip_dirs: tuple[str, ...] = ()) -> list[FileInfo]:
        base = f"{self.prefix}/" if self.prefix else ""
        if recursive and not skip_dirs:
            return self._checked(self._list_under(base, delimiter=False)[0])
        infos, dirs = self._list_under(base, delimiter=True)  # top level, then each folder not skipped
        if recursive:
            for d in dirs:
                if d[len(base) :].rstrip("/") not in skip_dirs:
                    infos.extend(self._list_under(d, delimiter=False)[0])
        return self._checked(infos)

    def _head(self, key: str) -> dict | None:
        from botocore.exceptions import ClientError

        try:
            return self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if s3_error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def stat(self, rel: str) -> FileInfo | None:
        head = self._head(self._key(rel))
        if head is None:
            return None
        return FileInfo(rel, int(head["ContentLength"]), head["LastModified"].timestamp(), head["ETag"].strip('"'))

    def _read(self, rel: str) -> bytes:
        from botocore.exceptions import ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(rel))["Body"].read()
        except ClientError as exc:
            if s3_error_code(exc) in ("NoSuchKey", "404"):
                raise FileNotFoundError(f"{rel}: not in {self.describe()}") from exc
            raise

    def copy(self, rel: str, dest_rel: str, expect_sha256: str, expect_version: str | None = None) -> bool:
        """Server-side: the bytes never leave S3. With ``expect_version`` (the ETag recorded with the
        sha256) the copy is conditioned on it in the same request; without, the bytes are checked."""
        if expect_version is None:
            return super().copy(rel, dest_rel, expect_sha256)
        from botocore.exceptions import ClientError

        try:
            self.client.copy_object(
                Bucket=self.bucket,
                Key=self._key(dest_rel),
                CopySource={"Bucket": self.bucket, "Key": self._key(rel)},
                CopySourceIfMatch=f'"{expect_version}"',
                ChecksumAlgorithm="CRC32",
            )
        except ClientError as exc:
            code = s3_error_code(exc)
            if code in ("PreconditionFailed", "412"):
                return False
            if code in ("NoSuchKey", "404"):
                raise FileNotFoundError(f"{rel}: not in {self.describe()}") from exc
            raise
        # and checked: a single-part object's copy keeps its ETag (the content's MD5), so a copy of
        # other bytes shows (also where a server ignores the copy condition); the target is this
        # run's own name, rewritten when the photo is processed instead
        head = self._head(self._key(dest_rel))
        return head is not None and head["ETag"].strip('"') == expect_version

    def read(self, rel: str, expect: FileInfo | None = None) -> bytes:
        if expect is None:
            return self._read(rel)
        from botocore.exceptions import ClientError

        try:  # one request: the object only if its ETag is still the detected one
            data = self.client.get_object(Bucket=self.bucket, Key=self._key(rel), IfMatch=expect.version)["Body"].read()
        except ClientError as exc:
            code = s3_error_code(exc)
            if code in ("PreconditionFailed", "412"):
                raise SourceChanged(f"{rel}: replaced since it was detected; left for the next run") from exc
            if code in ("NoSuchKey", "404"):
                raise FileNotFoundError(f"{rel}: gone from {self.describe()}") from exc
            raise
        if len(data) != expect.size:  # the ETag matched: the same object, cut short in transit
            raise ShortRead(f"{rel}: read {len(data)} of its {expect.size} bytes from {self.describe()}")
        return data

    def write(self, rel: str, data: bytes) -> str:
        key = self._key(rel)
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data)  # visible only once complete
        return f"s3://{self.bucket}/{key}"

    def write_file(self, rel: str, local_path: str | os.PathLike) -> str:
        key = self._key(rel)
        self.client.upload_file(str(local_path), self.bucket, key)  # multipart above 8 MB
        return f"s3://{self.bucket}/{key}"

    def move(self, rel: str, dest_rel: str, expect: FileInfo | None = None) -> None:
        src, dst = self._key(rel), self._key(dest_rel)
        head = self._head(src)
        if head is None:
            raise FileNotFoundError(f"{rel}: gone from {self.describe()}")
        tag = head["ETag"].strip('"')
        if expect is not None and tag != expect.version:
            raise SourceChanged(f"{rel}: replaced since it was detected; left for the next run")
        there = self._head(dst)
        if there is not None:
            if there.get("Metadata", {}).get(self.SOURCE_TAG) == tag:
                self._delete_version(src, tag)  # copied, not yet deleted: finish the move
                return
            raise FileExistsError(f"{dest_rel} already exists in {self.describe()}; not overwriting")
        extra = {"ContentType": head["ContentType"]} if head.get("ContentType") else {}
        self.client.copy_object(
            Bucket=self.bucket,
            Key=dst,
            CopySource={"Bucket": self.bucket, "Key": src},
            CopySourceIfMatch=head["ETag"],
            IfNoneMatch="*",
            MetadataDirective="REPLACE",
            Metadata={**head.get("Metadata", {}), self.SOURCE_TAG: tag},
            # a fresh whole-object checksum for the copy: MinIO and moto keep a multipart upload's
            # composite checksum on a copy, which then fails botocore's check on every read
            ChecksumAlgorithm="CRC32",
            **extra,
        )
        self._delete_version(src, tag)

    def _delete_version(self, key: str, etag: str) -> None:
        """Delete ``key`` only while it is still that version: a re-upload under the name survives."""
        from botocore.exceptions import ClientError

        try:
            self.client.delete_object(Bucket=self.bucket, Key=key, IfMatch=f'"{etag}"')
        except ClientError as exc:
            if s3_error_code(exc) not in ("PreconditionFailed", "412"):
                raise
            log.warning("kept s3://%s/%s: replaced while it was being moved", self.bucket, key)

    def delete(self, rel: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(rel))

    def share_url(self, rel: str, expires_s: int) -> str | None:
        expires = max(1, min(int(expires_s), 7 * 24 * 3600))  # SigV4 presigned URLs last 7 days at most
        return self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self._key(rel)}, ExpiresIn=expires
        )

    def close(self) -> None:
        self._client = None


class SftpStorage(Storage):
    """A directory on an SFTP server through the sftp provider's SFTPHook.

    One connection, its requests serialised by a lock (paramiko's SFTPClient is not thread-safe:
    two threads on one channel can each swallow the other's reply and wait forever). Connect,
    banner and auth are bounded by ``[matting] io_timeout_s``, and so is every request on the channel;
    a dropped or stalled connection is replaced once per operation, then the error propagates."""

    kind = "sftp"

    def __init__(self, root: str, conn_id: str = "sftp_default") -> None:
        self.root, self.conn_id = root.rstrip("/") or "/", conn_id
        self._hook = None
        self._lock = threading.RLock()

    def describe(self) -> str:
        return f"sftp://{self.root} (connection {self.conn_id})"

    def sub(self, rel_dir: str) -> SftpStorage:
        return SftpStorage(self._full(rel_dir), self.conn_id)

    def _sftp(self, fresh: bool = False):
        from airflow.providers.sftp.hooks.sftp import SFTPHook

        if fresh:
            self.close()
        if self._hook is None:
            timeout = limits.io_timeout_s()
            self._hook = SFTPHook(
                ssh_conn_id=self.conn_id,
                use_managed_conn=False,
                conn_timeout=max(1, int(timeout)),
                banner_timeout=timeout,
                auth_timeout=max(1, int(timeout)),
            )
            client = self._hook.get_conn()
            client.get_channel().settimeout(timeout)  # every request: a stalled server raises
            return client
        return self._hook.get_conn()

    def _call(self, fn):
        """Run ``fn(sftp_client)`` under the lock; on a dropped/stalled connection reconnect once."""
        from paramiko.ssh_exception import SSHException

        with self._lock:
            try:
                return fn(self._sftp())
            except (EOFError, OSError, SSHException) as exc:
                if isinstance(exc, (FileNotFoundError, PermissionError, FileExistsError)) or is_permanent(exc):
                    raise  # a missing file, or a login that will fail again: reconnecting cannot help
                log.warning(
                    "SFTP connection to %s lost (%s: %s); reconnecting", self.describe(), type(exc).__name__, exc
                )
                return fn(self._sftp(fresh=True))

    def _full(self, rel: str) -> str:
        return posixpath.join(self.root, safe_relpath(rel))

    def close(self) -> None:
        with self._lock:
            if self._hook is not None:
                with contextlib.suppress(Exception):
                    self._hook.close_conn()
                ssh = getattr(self._hook, "client", None)  # the SSH session under the SFTP channel
                if ssh is not None:
                    with contextlib.suppress(Exception):
                        ssh.close()
                self._hook = None

    @staticmethod
    def _info(rel: str, attrs) -> FileInfo:
        return FileInfo(rel, int(attrs.st_size or 0), float(attrs.st_mtime or 0), f"{attrs.st_size}-{attrs.st_mtime}")

    def list(self, recursive: bool = True, skip_dirs: tuple[str, ...] = ()) -> list[FileInfo]:
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
                        if recursive and not (rel_dir == "" and e.filename in skip_dirs):
                            stack.append(rel)
                    elif stat.S_ISREG(e.st_mode or 0):
                        infos.append(self._info(rel, e))
            return infos

        return self._checked(self._call(walk))

    def stat(self, rel: str) -> FileInfo | None:
        def check(sftp) -> FileInfo | None:
            try:
                attrs = sftp.stat(self._full(rel))
            except FileNotFoundError:
                return None
            return self._info(safe_relpath(rel), attrs) if stat.S_ISREG(attrs.st_mode or 0) else None

        return self._call(check)

    def _read(self, rel: str) -> bytes:
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

    def _put(self, rel: str, fill) -> str:
        """Write through a temp name, then rename it over the target (atomic where the server has
        OpenSSH's posix-rename; elsewhere remove + rename)."""
        target = self._full(rel)
        tmp = posixpath.join(posixpath.dirname(target), f".{posixpath.basename(target)}.tmp-{uuid.uuid4().hex[:8]}")

        def put(sftp) -> str:
            self._makedirs(sftp, posixpath.dirname(target))
            try:
                with sftp.open(tmp, "wb") as fh:
                    fh.set_pipelined(True)
                    fill(fh)
                try:
                    sftp.posix_rename(tmp, target)
                except OSError:
                    with contextlib.suppress(FileNotFoundError):
                        sftp.remove(target)
                    sftp.rename(tmp, target)
            except BaseException:
                with contextlib.suppress(Exception):
                    sftp.remove(tmp)
                raise
            return target

        return self._call(put)

    def write(self, rel: str, data: bytes) -> str:
        return self._put(rel, lambda fh: fh.write(data))

    def write_file(self, rel: str, local_path: str | os.PathLike) -> str:
        def fill(fh) -> None:
            with open(local_path, "rb") as src:
                shutil.copyfileobj(src, fh, 1 << 20)

        return self._put(rel, fill)

    def move(self, rel: str, dest_rel: str, expect: FileInfo | None = None) -> None:
        src, dst = self._full(rel), self._full(dest_rel)

        def mv(sftp) -> None:
            try:
                now = self._info(rel, sftp.stat(src))
            except FileNotFoundError:
                raise FileNotFoundError(f"{rel}: gone from {self.describe()}") from None
            if expect is not None and not expect.same_version(now):
                raise SourceChanged(f"{rel}: changed since it was detected; left for the next run")
            try:
                sftp.stat(dst)
            except FileNotFoundError:
                pass
            else:
                raise FileExistsError(f"{dest_rel} already exists in {self.describe()}; not overwriting")
            self._makedirs(sftp, posixpath.dirname(dst))
            sftp.rename(src, dst)  # SFTP v3 rename: fails if the target exists (no posix-rename needed)

        self._call(mv)

    def delete(self, rel: str) -> None:
        def rm(sftp) -> None:
            with contextlib.suppress(FileNotFoundError):
                sftp.remove(self._full(rel))

        self._call(rm)


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
