"""New-file sensors for a local folder, an S3 prefix and an SFTP directory.

They hand on the batch as a small XCom (path, size, mtime, version per file; never bytes), bounded
by ``max_files``. ``deferrable=True`` waits in the triggerer (``NewFilesTrigger``) running the same
check; ``mode="reschedule"`` frees the worker slot between pokes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue

from matting.detection import DEFAULT_EXCLUDE, ScanOptions, ScanResult, check_for_new_files
from matting.triggers.new_files import NewFilesTrigger


class NewFilesSensor(BaseSensorOperator):
    """Waits for new, settled image files under ``location`` (see ``matting.storage.open_storage``).

    "New" means not processed yet: either the pipeline moves finished files out of the incoming
    root (the default excludes ``processed/``, ``quarantine/``, ``review/``), or, for read-only
    sources, ``ledger_location`` names the destination whose ledger lists processed files."""

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
        deferrable: bool = False,
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
