"""The deferrable twin of the new-file sensors: waits in the triggerer, runs the sensors' own check."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from matting.detection import ScanOptions, check_for_new_files


class NewFilesTrigger(BaseTrigger):
    """Polls a location until new settled files appear, then fires once with the batch.

    The check is the very function the sensor's poke calls (run in a worker thread so the
    triggerer's event loop never blocks); a failed check (server down, a 5xx) is logged and
    retried at the next interval instead of failing the task."""

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
        while True:
            try:
                result, where = await asyncio.to_thread(
                    check_for_new_files, self.location, self.conn_id, opts, self.ledger_location, self.ledger_conn_id
                )
            except Exception as exc:  # keep waiting: the next check may succeed
                self.log.warning(
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
