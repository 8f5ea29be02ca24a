"""The results pages' core over every backend: a run written to S3 (moto) or SFTP (OpenSSH) shows
its photos from there, as it does from a folder."""

from __future__ import annotations

import io
import json
import uuid

import pytest
from matting.results.run import RunResults, Where, thumbnail
from matting.storage import open_storage
from PIL import Image

PREFIX = "2026/11/24/run-1"


def _jpeg(colour) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (320, 240), colour).save(buf, "JPEG")
    return buf.getvalue()


@pytest.fixture(params=["s3", "sftp"])
def where(request, tmp_path, monkeypatch):
    if request.param == "s3":
        server = request.getfixturevalue("s3_server")
        monkeypatch.setenv("AIRFLOW_CONN_AWS_RESULTS", server.conn_uri)
        bucket = f"r-{uuid.uuid4().hex[:10]}"
        server.client().create_bucket(Bucket=bucket)
        return Where(f"s3://{bucket}/archive", PREFIX, "aws_results", f"s3://{bucket}/incoming", "aws_results")
    sshd = request.getfixturevalue("sshd")
    monkeypatch.setenv("AIRFLOW_CONN_SFTP_RESULTS", sshd.conn_uri)
    root = sshd.root / uuid.uuid4().hex[:10]
    return Where(f"sftp://{root}/archive", PREFIX, "sftp_results", f"sftp://{root}/incoming", "sftp_results")


def test_a_runs_photos_come_from_its_own_storage(where, tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW__MATTING__UI_CACHE_DIR", str(tmp_path / "cache"))
    manifest = {
        "files": [
            {"source": "a.jpg", "status": "ok", "outputs": [f"{PREFIX}/outputs/a.jpg"], "moved_to": "processed/a.jpg"}
        ]
    }
    with (
        open_storage(where.destination, where.destination_conn_id) as dest,
        open_storage(where.source, where.source_conn_id) as source,
    ):
        dest.write(f"{PREFIX}/manifest.json", json.dumps(manifest).encode())
        dest.write(f"{PREFIX}/outputs/a.jpg", _jpeg((20, 160, 20)))
        source.write("processed/a.jpg", _jpeg((200, 20, 20)))
        results = RunResults(where, dest.sub(PREFIX), source)
        item = results.item(0)
        before = Image.open(io.BytesIO(thumbnail(results, item, "before")))
        after = Image.open(io.BytesIO(thumbnail(results, item, "after")))
    assert before.getpixel((128, 128))[0] > 150 and after.getpixel((128, 128))[1] > 120
