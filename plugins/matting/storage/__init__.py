"""One storage interface over a local folder, an S3 bucket/prefix and an SFTP directory.

Addressed the Airflow way: a location plus a connection id. ``s3://bucket/prefix`` goes through the
amazon provider's ``S3Hook`` (``matting.storage.s3``), ``sftp:///abs/dir`` through the sftp provider's
``SFTPHook`` (``matting.storage.sftp``), anything else is a local folder (``matting.storage.local``).
The hooks own connections and credentials (Airflow connections, e.g. env ``AIRFLOW_CONN_*``); nothing
here logs a secret. The interface, ``FileInfo`` and the path checks are in ``matting.storage.base``,
the ledger of settled versions in ``matting.storage.ledger``.

Writes are atomic: local and SFTP write a temp name then rename; S3 objects appear whole on PUT.
Moves never overwrite (``FileExistsError``) and, given the version seen at detection, move only that
version (``SourceChanged`` otherwise). Every remote operation has a timeout (``[matting] io_timeout_s``).
One SFTP connection per Storage, and its requests are serialised: paramiko's client must not be
used from two threads at once (the engine reads on one thread while it writes on another).
"""

from __future__ import annotations

from matting.storage.base import FileInfo, Storage, UnsafePath, safe_relpath
from matting.storage.ledger import Ledger
from matting.storage.local import LocalStorage
from matting.storage.s3 import S3Storage, verbatim_relpath
from matting.storage.sftp import SftpStorage

__all__ = [
    "FileInfo",
    "Ledger",
    "LocalStorage",
    "S3Storage",
    "SftpStorage",
    "Storage",
    "UnsafePath",
    "open_storage",
    "safe_relpath",
    "verbatim_relpath",
]


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
