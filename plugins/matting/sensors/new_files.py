"""New-file sensors for a local folder, an S3 prefix and an SFTP directory.

They hand on the batch as a small XCom (path, size, mtime, version per file; never bytes), bounded
by ``max_files``. ``deferrable=True`` waits in the triggerer (``NewFilesTrigger``) running the same
check; ``mode="reschedule"`` frees the worker slot between pokes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.configuration import conf
from airflow.sdk import BaseSensorOperator, PokeReturnValue

from matting.errors import AccessError
from matting.operators.base import LocationAccess
from matting.pipeline.detection import DEFAULT_EXCLUDE, ScanOptions, ScanResult, check_for_new_files
from matting.triggers.new_files import NewFilesTrigger


class NewFilesSensor(LocationAccess, BaseSensorOperator):
    """Waits for new, settled image files under ``location`` (see ``matting.storage.open_storage``).

    "New" means not processed yet: either the pipeline moves finished files out of the incoming
    root (the default excludes ``processed/``, ``quarantine/``, ``review/``), or, for read-only
    sources, ``ledger_location`` names the destination whose ledger lists processed files.

    Errors: a transient one (server down, timeout, 5xx) that outlives the client's own retries is
    retried at the trigger's next check in deferrable mode, and fails the poke's attempt (Airflow's
    task retries take over) in poke mode; a permanent one (bad credentials, unknown connection,
    missing bucket, unsafe path) fails the task at once, also with ``soft_fail=True`` (only a timeout
    is soft), in both modes.

    :param location: folder, ``s3://bucket/prefix`` or ``sftp:///dir`` (templated).
    :param conn_id: Airflow connection for S3 or SFTP; default ``aws_default`` / ``sftp_default``.
    :param include: glob(s) a file's relative path must match (default every file).
    :param exclude: glob(s) to leave out (default the pipeline's own folders and temp names).
    :param regex: a regular expression the relative path must match, besides the globs.
    :param recursive: look into sub-folders.
    :param settle_seconds: a file counts once its size and mtime have not changed for this long
        (uploads in progress are left alone); S3 objects appear whole, so 0 there.
    :param max_files: at most this many files per batch (the XCom stays small).
    :param images_only: only files with an image extension.
    :param ledger_location: destination whose ledger lists processed versions (read-only sources).
    :param ledger_conn_id: connection for the ledger's destination.
    :param deferrable: wait in the triggerer instead of a worker slot; default from
        ``[operators] default_deferrable``.

    Like every operator here, the sensor checks ``location``, ``ledger_location`` and their connection
    ids against the DAG's allow-list before it lists anything (``matting.operators.base.LocationAccess``).
    """

    template_fields: Sequence[str] = (
        "location",
        "conn_id",
        "include",
        "exclude",
        "regex",
        "ledger_location",
        "ledger_conn_id",
    )
    default_conn_id: str | None = None
    default_settle_seconds: float = 10.0

    def __init__(
        self,
        *,
        location: str,
        conn_id: str | None = None,
        include: Sequence[str] | str = ("*",),
        exclude: Sequence[str] | str = DEFAULT_EXCLUDE,
        regex: str | None = None,
        recursive: bool = True,
        settle_seconds: float | None = None,
        max_files: int = 100,
        images_only: bool = True,
        ledger_location: str | None = None,
        ledger_conn_id: str | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.location = location
        self.conn_id = conn_id or self.default_conn_id
        self.include, self.exclude, self.regex = include, exclude, regex
        self.recursive, self.max_files, self.images_only = recursive, max_files, images_only
        self.settle_seconds = self.default_settle_seconds if settle_seconds is None else settle_seconds
        self.ledger_location, self.ledger_conn_id = ledger_location, ledger_conn_id
        self.deferrable = deferrable
        self.keep_declared()

    def scan_options(self) -> ScanOptions:
        return ScanOptions.from_dict(
            {
                "include": self.include,
                "exclude": self.exclude,
                "regex": self.regex,
                "recursive": self.recursive,
                "settle_seconds": self.settle_seconds,
                "max_files": self.max_files,
                "images_only": self.images_only,
            }
        )

    def check(self) -> ScanResult:
        result, where = check_for_new_files(
            self.location, self.conn_id, self.scan_options(), self.ledger_location, self.ledger_conn_id
        )
        self.log.info("checked %s: %s", where, result.summary())
        return result

    def poke(self, context: Any) -> PokeReturnValue:
        result = self.check()
        return PokeReturnValue(is_done=bool(result.new), xcom_value=result.to_xcom() if result.new else None)

    def execute(self, context: Any) -> Any:
        self.check_access(
            ("location", self.location, "conn_id", self.conn_id),
            ("ledger_location", self.ledger_location or None, "ledger_conn_id", self.ledger_conn_id),
        )
        if not self.deferrable:
            return super().execute(context)
        result = self.check()  # found at once: no need to defer
        if result.new:
            return result.to_xcom()
        self.defer(
            trigger=NewFilesTrigger(
                location=self.location,
                conn_id=self.conn_id,
                scan_options=self.scan_options().to_dict(),
                ledger_location=self.ledger_location,
                ledger_conn_id=self.ledger_conn_id,
                poll_interval=float(self.poke_interval),
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=float(self.timeout)) if self.timeout else None,
        )

    def execute_complete(self, context: Any, event: dict[str, Any]) -> list[dict]:
        if event.get("status") == "error":  # not an AirflowException: soft_fail must not skip it
            raise AccessError(f"cannot watch {self.location}: {event.get('error_type')}: {event.get('message')}")
        if event.get("status") != "found":
            raise RuntimeError(f"new-file trigger ended without files: {event}")
        self.log.info("trigger found files: %s", event.get("summary"))
        return event["files"]


class LocalNewFilesSensor(NewFilesSensor):
    """New image files in a local (or mounted) folder; settled by size and mtime."""


class S3NewFilesSensor(NewFilesSensor):
    """New objects under ``s3://bucket/prefix``. Objects appear whole, so they count when listed."""

    default_conn_id = "aws_default"
    default_settle_seconds = 0.0


class SftpNewFilesSensor(NewFilesSensor):
    """New files in an SFTP directory (``sftp:///abs/dir``); settled by size and mtime."""

    default_conn_id = "sftp_default"
