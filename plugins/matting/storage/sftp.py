"""A directory on an SFTP server as a Storage, through the sftp provider's SFTPHook."""

from __future__ import annotations

import contextlib
import logging
import os
import posixpath
import shutil
import stat
import threading
import uuid

from matting import settings
from matting.errors import SourceChanged, is_permanent
from matting.storage.atomic import temp_name
from matting.storage.base import FileInfo, Storage, safe_relpath

log = logging.getLogger("matting.storage")


class _Link:
    """One SSH connection (opened on first use) and its lock, shared by a storage and its sub-folders."""

    def __init__(self) -> None:
        self.hook = None
        self.lock = threading.RLock()


class SftpStorage(Storage):
    """A directory on an SFTP server through the sftp provider's SFTPHook.

    One connection, its requests serialised by a lock (paramiko's SFTPClient is not thread-safe:
    two threads on one channel can each swallow the other's reply and wait forever). Connect,
    banner and auth are bounded by ``[matting] io_timeout_s``, and so is every request on the channel;
    a dropped or stalled connection is replaced once per operation, then the error propagates.

    Names: the server's filesystem decides; declared as a Linux one's (255 bytes a name, 4,095 a path
    with the root), the base class's ``max_name_bytes`` / ``max_path_bytes``. OpenSSH answers a name
    it cannot hold with "Bad message", which is refused as ``UnwritableName``, never reconnected for."""

    kind = "sftp"
    max_name_bytes = 255  # the server's filesystem decides: declared as a Linux one's
    max_path_bytes = 4095

    def __init__(self, root: str, conn_id: str = "sftp_default", _link: _Link | None = None) -> None:
        self.root, self.conn_id = root.rstrip("/") or "/", conn_id
        self._link = _link or _Link()

    def describe(self) -> str:
        return f"sftp://{self.root} (connection {self.conn_id})"

    def sub(self, rel_dir: str) -> SftpStorage:
        """A folder below, over the same SSH connection (closing either drops it for both; the next
        request reconnects): a check or a run opens one connection per server, not one per folder."""
        return SftpStorage(self._full(rel_dir), self.conn_id, self._link)

    def _root_bytes(self) -> int:
        return 1 if self.root == "/" else len(self.root.encode()) + 1

    def _sftp(self, fresh: bool = False):
        from airflow.providers.sftp.hooks.sftp import SFTPHook

        if fresh:
            self.close()
        if self._link.hook is None:
            timeout = settings.value("io_timeout_s")
            self._link.hook = SFTPHook(
                ssh_conn_id=self.conn_id,
                use_managed_conn=False,
                conn_timeout=max(1, int(timeout)),
                banner_timeout=timeout,
                auth_timeout=max(1, int(timeout)),
            )
            client = self._link.hook.get_conn()
            client.get_channel().settimeout(timeout)  # every request: a stalled server raises
            return client
        return self._link.hook.get_conn()

    def _call(self, fn):
        """Run ``fn(sftp_client)`` under the lock; on a dropped/stalled connection reconnect once."""
        from paramiko.ssh_exception import SSHException

        with self._link.lock:
            try:
                return fn(self._sftp())
            except (EOFError, OSError, SSHException) as exc:
                if isinstance(exc, (FileNotFoundError, PermissionError, FileExistsError)) or is_permanent(exc):
                    raise  # a missing file, a login or a name that fails again: reconnecting cannot help
                log.warning(
                    "SFTP connection to %s lost (%s: %s); reconnecting", self.describe(), type(exc).__name__, exc
                )
                return fn(self._sftp(fresh=True))

    def _full(self, rel: str) -> str:
        return posixpath.join(self.root, safe_relpath(rel))

    def close(self) -> None:
        with self._link.lock:
            if self._link.hook is not None:
                with contextlib.suppress(Exception):
                    self._link.hook.close_conn()
                ssh = getattr(self._link.hook, "client", None)  # the SSH session under the SFTP channel
                if ssh is not None:
                    with contextlib.suppress(Exception):
                        ssh.close()
                self._link.hook = None

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
        tmp = posixpath.join(posixpath.dirname(target), temp_name(posixpath.basename(target), uuid.uuid4().hex[:8]))

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

        with self._naming(rel):
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

        with self._naming(dest_rel):
            self._call(mv)

    def delete(self, rel: str) -> None:
        def rm(sftp) -> None:
            with contextlib.suppress(FileNotFoundError):
                sftp.remove(self._full(rel))

        self._call(rm)
