"""The deferrable twin of the new-file sensors: waits in the triggerer, runs the sensors' own check."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from matting.errors import is_permanent
from matting.pipeline.detection import NewFilesCheck, ScanOptions


class NewFilesTrigger(BaseTrigger):
    """Polls a location until new settled files appear, then fires once with the batch.

    The check is the sensor's own (``NewFilesCheck``), run in a worker thread so the triggerer's
    event loop never blocks, over one connection kept for the whole wait. A transient failure
    (server down, a timeout, a 5xx) is logged and retried at the next interval; a permanent one
    (bad credentials, unknown connection, missing bucket, unsafe path) ends the wait with an error
    event, and the sensor fails the task with it.

    :param location: folder, ``s3://bucket/prefix`` or ``sftp:///dir`` to watch.
    :param conn_id: Airflow connection for S3 or SFTP (None: the default for the scheme).
    :param scan_options: ``ScanOptions.to_dict()`` of the sensor (filters, settle time, batch cap).
    :param ledger_location: destination whose ledger lists what was processed (read-only sources).
    :param ledger_conn_id: connection for the ledger's destination.
    :param poll_interval: seconds between checks."""

    def __init__(
        self,
        location: str,
        conn_id: str | None,
        scan_options: dict,
        ledger_location: str | None = None,
        ledger_conn_id: str | None = None,
        poll_interval: float = 30.0,
    ) -> None:
        super().__init__()
        self.location, self.conn_id = location, conn_id
        self.scan_options = scan_options
        self.ledger_location, self.ledger_conn_id = ledger_location, ledger_conn_id
        self.poll_interval = poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "matting.triggers.new_files.NewFilesTrigger",
            {
                "location": self.location,
                "conn_id": self.conn_id,
                "scan_options": self.scan_options,
                "ledger_location": self.ledger_location,
                "ledger_conn_id": self.ledger_conn_id,
                "poll_interval": self.poll_interval,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        opts = ScanOptions.from_dict(self.scan_options)
        check = NewFilesCheck(self.location, self.conn_id, opts, self.ledger_location, self.ledger_conn_id)
        try:
            while True:
                try:
                    result, where = await asyncio.to_thread(check)
                except Exception as exc:
                    if is_permanent(exc):  # no retry can fix it: fail the task now, say why
                        self.log.error("check of %s failed for good: %s: %s", self.location, type(exc).__name__, exc)
                        yield TriggerEvent(
                            {"status": "error", "error_type": type(exc).__name__, "message": str(exc)[:2000]}
                        )
                        return
                    self.log.warning(  # the server is down or slow: the next check may succeed
                        "check of %s failed: %s: %s; retrying in %.0fs",
                        self.location,
                        type(exc).__name__,
                        exc,
                        self.poll_interval,
                    )
                else:
                    self.log.info("checked %s: %s", where, result.summary())
                    if result.new:
                        yield TriggerEvent({"status": "found", "files": result.to_xcom(), "summary": result.summary()})
                        return
                await asyncio.sleep(self.poll_interval)
        finally:
            await asyncio.to_thread(check.close)
