"""S3 notifications parsed as S3 (and SNS) send them; what is not one is a poison message."""

from __future__ import annotations

import json

import pytest
from matting.events import PoisonMessage, Upload, parse_notification


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
