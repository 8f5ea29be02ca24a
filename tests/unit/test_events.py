"""S3 notifications parsed as S3 (and SNS) send them; what is not one is a poison message."""

from __future__ import annotations

import json

import pytest
from matting.pipeline.detection import ScanOptions
from matting.pipeline.events import PoisonMessage, Upload, parse_notification, select_uploads, uploads_in_events
from matting.storage import FileInfo, LocalStorage


def _record(key: str, event: str = "ObjectCreated:Put") -> dict:
    return {"eventName": event, "s3": {"bucket": {"name": "in"}, "object": {"key": key, "size": 3, "eTag": "abc"}}}


def test_keys_are_url_decoded_and_only_creates_count():
    body = json.dumps({"Records": [_record("photos%2Fa+b%2Bc.jpg"), _record("photos/x.jpg", "ObjectRemoved:Delete")]})
    assert parse_notification(body) == [Upload("in", "photos/a b+c.jpg", "abc", 3)]


def test_sns_wrapped_and_test_events():
    inner = json.dumps({"Records": [_record("p/1.jpg")]})
    assert parse_notification(json.dumps({"Type": "Notification", "Message": inner}))[0].key == "p/1.jpg"
    assert parse_notification(json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent"})) == []


@pytest.mark.parametrize("body", ["<html>", "[1, 2]", json.dumps({"Records": [{"eventName": "ObjectCreated:Put"}]})])
def test_anything_else_is_poison(body):
    with pytest.raises(PoisonMessage):
        parse_notification(body)


class CountingStorage(LocalStorage):
    """A folder standing in for the bucket (its version plays the ETag), counting the stat calls."""

    def __init__(self, root) -> None:
        super().__init__(root)
        self.stats = 0

    def stat(self, rel):
        self.stats += 1
        return super().stat(rel)


def _bucket(tmp_path, names):
    root = tmp_path / "photos"
    root.mkdir()
    for name in names:
        (root / name).write_bytes(b"\xff\xd8" + name.encode())
    return CountingStorage(root)


def _upload(storage, rel, etag=None):
    info = LocalStorage(storage.root).stat(rel)
    return Upload("in", f"photos/{rel}", etag or info.version, info.size if info else 3)


def test_each_notification_settles_to_exactly_one_outcome(tmp_path):
    storage = _bucket(tmp_path, ["a.jpg", "b.jpg", "done.jpg", "old.jpg", "notes.txt"])
    a, b, done = (_upload(storage, n) for n in ("a.jpg", "b.jpg", "done.jpg"))
    stale = _upload(storage, "old.jpg", etag="an-earlier-etag")
    gone = Upload("in", "photos/gone.jpg", "e1", 3)
    ledger = {FileInfo("done.jpg", done.size, None, done.etag).version_id}
    uploads = [
        a,
        b,
        a,  # redelivered
        done,
        stale,
        gone,
        _upload(storage, "notes.txt"),
        Upload("other", "photos/a.jpg", a.etag, 3),
        Upload("in", "elsewhere/a.jpg", a.etag, 3),
    ]
    sel = select_uploads(uploads, storage, "in", "photos", ledger, ScanOptions(settle_seconds=0))
    assert [f.path for f in sel.files] == ["a.jpg", "b.jpg"]
    assert sel.skipped == {
        "duplicate notification": ["s3://in/photos/a.jpg"],
        "already processed": ["s3://in/photos/done.jpg"],
        "superseded by a newer upload": ["s3://in/photos/old.jpg"],
        "gone (deleted or moved away)": ["s3://in/photos/gone.jpg"],
        "filtered out": ["s3://in/photos/notes.txt"],
        "outside the source": ["s3://other/photos/a.jpg", "s3://in/elsewhere/a.jpg"],
    }
    assert sum(map(len, sel.skipped.values())) + len(sel.files) == len(uploads)
    assert storage.stats == 4  # a, b, old, gone: nothing asked of the bucket for ledgered/filtered ones


def test_events_read_twice_count_once():
    def event(message_id, *keys):
        uploads = [Upload("in", k, "e", 1).to_dict() for k in keys]
        return {"payload": {"message_id": message_id, "uploads": uploads, "receive_count": 1}}

    extras = [event("m1", "p/1.jpg"), event("m2", "p/2.jpg", "p/3.jpg"), event("m1", "p/1.jpg"), {}]
    messages, uploads = uploads_in_events(extras)
    assert [u.key for u in uploads] == ["p/1.jpg", "p/2.jpg", "p/3.jpg"]
    assert messages == 3  # m1, m2 and the event without a message (counted once, yields nothing)
