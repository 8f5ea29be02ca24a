"""S3 upload notifications -> the files a run should process (no Airflow import).

Delivery is at least once: the same notification can arrive twice, late, or after its object was
processed and moved away, and two uploads under one name produce two notifications. So a
notification only *names a candidate*; what a run processes is decided against the bucket itself:
the object must still be there with the notified ETag (else: gone, or superseded by a newer
upload that has its own notification), pass the source's filters, and not be in the ledger.
Every notification ends in exactly one of those outcomes, logged and counted.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from urllib.parse import unquote_plus

from matting.pipeline.detection import ScanOptions, wanted
from matting.storage import FileInfo, Storage

log = logging.getLogger("matting.pipeline.events")


class PoisonMessage(ValueError):
    """A queue message that is not an S3 notification: it can never succeed, so it is dead-lettered."""


@dataclass(frozen=True)
class Upload:
    """One ObjectCreated record: where, and which version (ETag) the notification was about."""

    bucket: str
    key: str
    etag: str
    size: int
    sequencer: str = ""

    def to_dict(self) -> dict:
        return {
            "bucket": self.bucket,
            "key": self.key,
            "etag": self.etag,
            "size": self.size,
            "sequencer": self.sequencer,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Upload:
        return cls(
            str(d["bucket"]), str(d["key"]), str(d["etag"]), int(d.get("size") or 0), str(d.get("sequencer") or "")
        )


def parse_notification(body: str) -> list[Upload]:
    """The uploads an SQS message body announces: S3's own JSON, or the same wrapped by SNS. A test
    event (sent when notifications are configured) or a non-create event announces nothing (``[]``);
    anything else raises ``PoisonMessage``."""
    try:
        doc = json.loads(body)
    except (TypeError, ValueError) as exc:
        raise PoisonMessage(f"not JSON: {str(body)[:80]!r}") from exc
    if isinstance(doc, dict) and doc.get("Type") == "Notification" and isinstance(doc.get("Message"), str):
        return parse_notification(doc["Message"])  # S3 -> SNS -> SQS
    if not isinstance(doc, dict):
        raise PoisonMessage(f"not an S3 notification: {str(body)[:80]!r}")
    if doc.get("Event") == "s3:TestEvent":
        return []
    records = doc.get("Records")
    if not isinstance(records, list):
        raise PoisonMessage(f"no Records in {str(body)[:80]!r}")
    uploads = []
    for rec in records:
        try:
            if not str(rec["eventName"]).startswith("ObjectCreated:"):
                continue
            obj = rec["s3"]["object"]
            uploads.append(
                Upload(
                    bucket=str(rec["s3"]["bucket"]["name"]),
                    key=unquote_plus(str(obj["key"])),  # S3 URL-encodes keys in notifications
                    etag=str(obj.get("eTag") or obj.get("etag") or "").strip('"'),
                    size=int(obj.get("size") or 0),
                    sequencer=str(obj.get("sequencer") or ""),
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise PoisonMessage(f"malformed S3 record: {exc!r}") from exc
    return uploads


def uploads_in_events(extras: list[dict]) -> tuple[int, list[Upload]]:
    """The uploads that asset events (``extra`` of each, as ``S3UploadsTrigger`` made them) announce,
    and how many distinct SQS messages they came from. An event read twice (it triggered this run and
    is also among the recent events) or a message delivered twice counts once, by SQS message id."""
    seen: set[str] = set()
    uploads: list[Upload] = []
    for extra in extras:
        payload = (extra or {}).get("payload") or {}
        message_id = str(payload.get("message_id") or "")
        if message_id and message_id in seen:
            continue
        seen.add(message_id)
        uploads += [Upload.from_dict(u) for u in payload.get("uploads") or []]
    return len(seen), uploads


@dataclass
class Selection:
    files: list[FileInfo] = field(default_factory=list)
    skipped: dict[str, list[str]] = field(default_factory=dict)  # reason -> keys

    def skip(self, reason: str, key: str) -> None:
        self.skipped.setdefault(reason, []).append(key)

    def summary(self) -> str:
        parts = [f"to process={len(self.files)}"] + [f"{r}={len(k)}" for r, k in sorted(self.skipped.items())]
        return " ".join(parts)


def select_uploads(
    uploads: list[Upload],
    source: Storage,
    bucket: str,
    prefix: str,
    ledger_ids: AbstractSet[str] = frozenset(),
    opts: ScanOptions | None = None,
) -> Selection:
    """Decide, against the bucket, what each announced upload means for this run (see the module)."""
    opts = opts or ScanOptions(settle_seconds=0)
    root = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
    out = Selection()
    seen: set[tuple[str, str, str]] = set()
    for up in uploads:
        where = f"s3://{up.bucket}/{up.key}"
        if (up.bucket, up.key, up.etag) in seen:
            out.skip("duplicate notification", where)
            continue
        seen.add((up.bucket, up.key, up.etag))
        if up.bucket != bucket or not up.key.startswith(root):
            out.skip("outside the source", where)
            continue
        rel = up.key[len(root) :]
        announced = FileInfo(rel, up.size, None, up.etag)
        if not wanted(announced, opts):
            out.skip("filtered out", where)
            continue
        if announced.version_id in ledger_ids:  # no call to the bucket for what is done
            out.skip("already processed", where)
            continue
        info = source.stat(rel)
        if info is None:
            out.skip("gone (deleted or moved away)", where)
        elif info.version != up.etag:
            out.skip("superseded by a newer upload", where)
        else:
            out.files.append(info)
    for reason, keys in sorted(out.skipped.items()):
        for key in keys[:20]:
            log.info("notification %s: %s", key, reason)
        if len(keys) > 20:
            log.info("... and %d more: %s", len(keys) - 20, reason)
    return out
