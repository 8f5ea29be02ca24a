"""Objects under ``s3://bucket/prefix`` as a Storage, through the amazon provider's S3Hook."""

from __future__ import annotations

import functools
import logging
import os
import threading

from matting import settings
from matting.errors import ShortRead, SourceChanged, s3_error_code
from matting.storage.base import FileInfo, Storage, UnsafePath

log = logging.getLogger("matting.storage")


def aws_config(read_timeout_s: float | None = None, **options):
    """The botocore client settings of every AWS client here (S3, SQS): connect and read timeouts of
    ``[matting] io_timeout_s`` (``read_timeout_s`` where a call holds the line open, a long poll) and
    ``[matting] s3_max_attempts`` requests in botocore's standard retry mode, the first one included
    (the one layer that retries a request; see docs/nothing-lost.md)."""
    from botocore.config import Config

    timeout = settings.value("io_timeout_s")
    return Config(
        retries={"mode": "standard", "total_max_attempts": settings.value("s3_max_attempts")},
        connect_timeout=timeout,
        read_timeout=timeout if read_timeout_s is None else read_timeout_s,
        **options,
    )


def verbatim_relpath(rel: str) -> str:
    """An S3 key below the prefix, used exactly as listed (``a//b.jpg`` and ``./c.jpg`` are keys of
    their own); refused only where it would escape a local or SFTP destination."""
    if not rel or rel.startswith("/") or "\x00" in rel or any(p == ".." for p in rel.split("/")):
        raise UnsafePath(f"refusing key {rel!r}: empty, absolute or it would leave the root")
    return rel


class _Client:
    """One boto3 client (made on first use), shared by a storage and its sub-folders: a sub-folder
    (the ledger's, the cache's, a run's) costs no new client, credentials lookup or connection pool.
    boto3 clients are thread-safe; the lock only guards making it."""

    def __init__(self) -> None:
        self.client = None
        self.max_attempts = 0
        self.lock = threading.Lock()


def _log_retry(
    bucket: str,
    shared: _Client,
    response=None,
    attempts=None,
    caught_exception=None,
    operation=None,
    request_dict=None,
    **_,
) -> None:
    """Say in the task log what botocore is about to retry (it says nothing above DEBUG)."""
    status = (response or (None, {}))[1].get("ResponseMetadata", {}).get("HTTPStatusCode") if response else None
    if caught_exception is not None or (status and (status >= 500 or status == 429)):
        code = (response or (None, {}))[1].get("Error", {}).get("Code") if response else None
        why = f"{type(caught_exception).__name__}: {caught_exception}" if caught_exception else f"{status} {code}"
        name = getattr(operation, "name", "request")
        path = (request_dict or {}).get("url_path") or "/"  # the key (path-style: the bucket, then the key)
        log.warning(
            "S3 %s on s3://%s (%s) failed (attempt %s/%d): %s", name, bucket, path, attempts, shared.max_attempts, why
        )


class S3Storage(Storage):
    """Objects under ``s3://bucket/prefix`` through the amazon provider's S3Hook.

    botocore retries in its *standard* mode (``[matting] s3_max_attempts``, default 5 attempts, exponential
    backoff with jitter, on throttling such as SlowDown, 5xx, timeouts and connection errors); each retry
    is logged. Standard rather than adaptive: adaptive's client-side rate limiter helps many clients
    hammering one prefix, but it slows every later request of the process after one throttle.
    Timeouts: ``[matting] io_timeout_s`` for connect and for each read of a response."""

    kind = "s3"
    shows_partial_writes = False  # an object is listed only once its upload completed
    max_name_bytes = None  # a key is one name: "/" in it is a character, any part may be long
    max_path_bytes = 1024  # the whole key, prefix included (S3 answers KeyTooLongError)
    SOURCE_TAG = "matting-source-etag"  # set on moved copies: an interrupted move can be finished

    def __init__(
        self, bucket: str, prefix: str = "", conn_id: str = "aws_default", _shared: _Client | None = None
    ) -> None:
        self.bucket, self.prefix, self.conn_id = bucket, prefix.strip("/"), conn_id
        self._shared = _shared or _Client()

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix} (connection {self.conn_id})"

    def sub(self, rel_dir: str) -> S3Storage:
        return S3Storage(self.bucket, self._key(rel_dir), self.conn_id, self._shared)

    def relpath(self, rel: str) -> str:
        return verbatim_relpath(rel)

    def _root_bytes(self) -> int:
        return len(self.prefix.encode()) + 1 if self.prefix else 0

    @property
    def client(self):
        shared = self._shared
        with shared.lock:
            if shared.client is None:
                from airflow.providers.amazon.aws.hooks.s3 import S3Hook

                config = aws_config(signature_version="s3v4")  # presigned URLs too (SigV2 is refused by newer regions)
                shared.max_attempts = config.retries["total_max_attempts"]  # for the retry log lines
                client = S3Hook(aws_conn_id=self.conn_id, config=config).get_conn()
                client.meta.events.register("needs-retry.s3", functools.partial(_log_retry, self.bucket, shared))
                shared.client = client
            return shared.client

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
            with self._naming(dest_rel):
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
        with self._naming(rel):
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data)  # visible only once complete
        return f"s3://{self.bucket}/{key}"

    def write_file(self, rel: str, local_path: str | os.PathLike) -> str:
        key = self._key(rel)
        with self._naming(rel):
            self.client.upload_file(str(local_path), self.bucket, key)  # multipart above 8 MB
        return f"s3://{self.bucket}/{key}"

    def move(self, rel: str, dest_rel: str, expect: FileInfo | None = None) -> None:
        with self._naming(dest_rel):
            self._move(rel, dest_rel, expect)

    def _move(self, rel: str, dest_rel: str, expect: FileInfo | None) -> None:
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
        """Drop the client, which this folder shares with its parent, its sub-folders and theirs (as an
        SFTP folder shares its connection): the next request of any of them makes a new one."""
        self._shared.client = None
