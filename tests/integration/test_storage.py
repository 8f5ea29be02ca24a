"""The storage layer against real servers: a local folder, moto's S3 over HTTP, OpenSSH's sftp."""

from __future__ import annotations

import os
import time
import uuid

import pytest
from matting.errors import SourceChanged, UnwritableName
from matting.storage import LocalStorage, S3Storage, SftpStorage, UnsafePath, open_storage, safe_relpath


class Backend:
    """A storage under test plus a way to drop files into it from outside (as an uploader would)."""

    def __init__(self, storage, put, native_path):
        self.storage, self.put, self.native_path = storage, put, native_path


@pytest.fixture(params=["local", "s3", "sftp"])
def backend(request, tmp_path):
    if request.param == "local":
        root = tmp_path / "incoming"
        root.mkdir()

        def put(rel, data):
            p = root / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)

        yield Backend(LocalStorage(root), put, lambda rel: root / rel)
    elif request.param == "s3":
        conn = request.getfixturevalue("s3_conn")
        server = request.getfixturevalue("s3_server")
        bucket = f"b-{uuid.uuid4().hex[:10]}"
        client = server.client()
        client.create_bucket(Bucket=bucket)
        yield Backend(
            S3Storage(bucket, "incoming", conn),
            lambda rel, data: client.put_object(Bucket=bucket, Key=f"incoming/{rel}", Body=data),
            None,
        )
    else:
        conn = request.getfixturevalue("sftp_conn")
        sshd = request.getfixturevalue("sshd")
        root = sshd.root / uuid.uuid4().hex[:10]
        root.mkdir()

        def put(rel, data):
            p = root / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)

        storage = SftpStorage(str(root), conn)
        yield Backend(storage, put, lambda rel: root / rel)
        storage.close()


def test_list_read_write_move_delete(backend):
    s = backend.storage
    backend.put("a.jpg", b"A" * 10)
    backend.put("sub/b.png", b"B" * 20)
    listed = {f.path: f for f in s.list()}
    assert set(listed) == {"a.jpg", "sub/b.png"} and listed["sub/b.png"].size == 20
    assert [f.path for f in s.list(recursive=False)] == ["a.jpg"]
    assert s.read("sub/b.png") == b"B" * 20
    where = s.write("out/c.png", b"C" * 5)
    assert "out/c.png" in where and s.read("out/c.png") == b"C" * 5 and s.exists("out/c.png")
    s.write("out/c.png", b"D" * 7)  # overwrite in place, atomically
    assert s.read("out/c.png") == b"D" * 7
    s.move("a.jpg", "processed/a.jpg")
    assert not s.exists("a.jpg") and s.read("processed/a.jpg") == b"A" * 10
    s.delete("processed/a.jpg")
    assert not s.exists("processed/a.jpg")
    names = {f.path for f in s.list()}
    assert names == {"sub/b.png", "out/c.png"}  # no temp file left anywhere
    assert [f.path for f in s.sub("out").list()] == ["c.png"] and s.sub("out").read("c.png") == b"D" * 7


def test_version_changes_when_content_is_replaced(backend):
    backend.put("x.jpg", b"one")
    v1 = backend.storage.list()[0]
    time.sleep(1.1)  # mtime resolution of some servers is one second
    backend.put("x.jpg", b"other content")
    v2 = backend.storage.list()[0]
    assert v1.version != v2.version and v1.version_id != v2.version_id


@pytest.mark.parametrize("bad", ["../x", "a/../../x", "/etc/passwd", "..", "", "a/\x00b"])
def test_unsafe_paths_are_refused(bad, tmp_path):
    with pytest.raises(UnsafePath):
        safe_relpath(bad)
    with pytest.raises(UnsafePath):
        LocalStorage(tmp_path).write(bad, b"x")


def test_traversal_names_from_a_listing_are_dropped(s3_server, s3_conn):
    """Only S3 keys can carry '..' segments (filesystems resolve them): a hostile key is never handed out."""
    client = s3_server.client()
    client.create_bucket(Bucket="hostile")
    client.put_object(Bucket="hostile", Key="incoming/ok.jpg", Body=b"1")
    client.put_object(Bucket="hostile", Key="incoming/../../escape.jpg", Body=b"2")
    assert [f.path for f in S3Storage("hostile", "incoming", s3_conn).list()] == ["ok.jpg"]


def test_open_storage_locations(tmp_path):
    assert isinstance(open_storage(str(tmp_path)), LocalStorage)
    assert isinstance(open_storage(f"file://{tmp_path}"), LocalStorage)
    s3 = open_storage("s3://bucket/in/coming", "aws_x")
    assert (s3.bucket, s3.prefix, s3.conn_id) == ("bucket", "in/coming", "aws_x")
    sftp = open_storage("sftp:///data/incoming")
    assert (sftp.root, sftp.conn_id) == ("/data/incoming", "sftp_default")


def test_sftp_survives_a_server_restart(sshd, sftp_conn):
    root = sshd.root / "restart"
    root.mkdir(exist_ok=True)
    (root / "a.jpg").write_bytes(b"x")
    s = SftpStorage(str(root), sftp_conn)
    assert [f.path for f in s.list()] == ["a.jpg"]
    sshd.restart()
    (root / "b.jpg").write_bytes(b"y")
    assert [f.path for f in s.list()] == ["a.jpg", "b.jpg"]  # reconnected once, transparently
    s.close()
    assert os.path.exists(sshd.workdir / "sshd.log")


def test_move_never_overwrites_and_moves_only_the_detected_version(backend):
    s = backend.storage
    backend.put("x.jpg", b"new upload")
    backend.put("processed/x.jpg", b"an older original")
    detected = s.stat("x.jpg")
    assert detected is not None and detected.size == len(b"new upload")
    with pytest.raises(FileExistsError):
        s.move("x.jpg", "processed/x.jpg", expect=detected)
    assert s.read("processed/x.jpg") == b"an older original" and s.read("x.jpg") == b"new upload"
    time.sleep(1.1)  # mtime resolution of some servers is one second
    backend.put("x.jpg", b"replaced after detection")
    with pytest.raises(SourceChanged):
        s.move("x.jpg", "processed/x2.jpg", expect=detected)
    with pytest.raises(SourceChanged):
        s.read("x.jpg", expect=detected)
    assert s.read("x.jpg") == b"replaced after detection" and not s.exists("processed/x2.jpg")
    now = s.stat("x.jpg")
    s.move("x.jpg", "processed/x2.jpg", expect=now)
    with pytest.raises(FileNotFoundError):  # a retry after the move finished: nothing to move
        s.move("x.jpg", "processed/x2.jpg", expect=now)
    assert s.read("processed/x2.jpg") == b"replaced after detection"


def test_s3_move_interrupted_between_copy_and_delete_is_finished(s3_server, s3_conn):
    client = s3_server.client()
    client.create_bucket(Bucket="half-moved")
    client.put_object(Bucket="half-moved", Key="in/a.jpg", Body=b"photo")
    s = S3Storage("half-moved", "in", s3_conn)
    info = s.stat("a.jpg")
    client.copy_object(  # what the killed task had done: the tagged copy, no delete yet
        Bucket="half-moved",
        Key="in/processed/a.jpg",
        CopySource={"Bucket": "half-moved", "Key": "in/a.jpg"},
        MetadataDirective="REPLACE",
        Metadata={S3Storage.SOURCE_TAG: info.version},
    )
    s.move("a.jpg", "processed/a.jpg", expect=info)
    assert not s.exists("a.jpg") and s.read("processed/a.jpg") == b"photo"


def test_s3_a_multipart_upload_reads_back_after_the_move(s3_server, s3_conn):
    """boto3 uploads big files in parts; the object then carries a composite checksum. S3 gives a
    copy a whole-object checksum, but MinIO and moto copy the composite one, which botocore then
    rejects on every read of the moved original (the contact sheet reads it): the move asks for a
    fresh checksum."""
    import io

    from boto3.s3.transfer import TransferConfig

    client = s3_server.client()
    client.create_bucket(Bucket="multipart-move")
    data = b"\xff\xd8" + os.urandom(6 * 1024 * 1024)
    parts = TransferConfig(multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024)
    client.upload_fileobj(io.BytesIO(data), "multipart-move", "in/big.jpg", Config=parts)
    s = S3Storage("multipart-move", "in", s3_conn)
    info = s.stat("big.jpg")
    assert info.version.endswith("-2")  # really uploaded in two parts
    s.move("big.jpg", "processed/big.jpg", expect=info)
    assert s.read("processed/big.jpg") == data


def test_share_url_lets_a_browser_fetch_the_photo_where_the_backend_has_urls(backend):
    """The review form's thumbnails: S3 hands out a presigned GET that a browser opens without
    credentials; folders and SFTP have no URL a browser could open (None, never a guess). (moto does
    not check signatures, so what a tampered URL gets is AWS's business, not tested here.)"""
    import urllib.request

    backend.storage.write("run-1/review/a.jpg", b"photo-a")
    url = backend.storage.sub("run-1").share_url("review/a.jpg", 600)
    if backend.storage.kind != "s3":
        assert url is None
        return
    assert "X-Amz-Expires=600" in url and "/incoming/run-1/review/a.jpg" in url
    with urllib.request.urlopen(url, timeout=10) as resp:  # no credentials: the signature is the grant
        assert resp.read() == b"photo-a"


def test_the_capabilities_say_what_an_uploader_in_progress_looks_like(backend, tmp_path):
    """``shows_partial_writes`` is what the pipeline's upload grace rests on: checked against each
    server, not declared. A file still being written (an open handle on a folder or over SFTP, a
    multipart upload not yet completed on S3) is listed where the flag says so, and never otherwise.
    ``local_path`` is a real path only for a folder."""
    s = backend.storage
    if backend.native_path is not None:  # a folder (local, or the directory sshd serves)
        with open(backend.native_path("uploading.jpg"), "wb") as fh:
            fh.write(b"\xff\xd8\xff" + b"0" * 100)
            fh.flush()
            listed = [f.path for f in s.list()]
    else:
        client = s.client
        key = s._key("uploading.jpg")
        upload = client.create_multipart_upload(Bucket=s.bucket, Key=key)
        client.upload_part(
            Bucket=s.bucket, Key=key, UploadId=upload["UploadId"], PartNumber=1, Body=b"\xff\xd8\xff" + b"0" * 100
        )
        listed = [f.path for f in s.list()]
        client.abort_multipart_upload(Bucket=s.bucket, Key=key, UploadId=upload["UploadId"])
    assert ("uploading.jpg" in listed) == s.shows_partial_writes
    backend.put("done.jpg", b"D" * 3)
    path = s.local_path("done.jpg")
    assert (path is not None) == isinstance(s, LocalStorage)
    if path is not None:
        assert path.read_bytes() == b"D" * 3


def test_the_name_limits_are_what_each_server_holds(backend):
    """``max_name_bytes`` / ``max_path_bytes`` checked against each real server, not only declared: a
    name at the limit is written (atomically: its temp name fits too), listed, read and moved; one
    byte more is refused as ``UnwritableName`` before any request, and nothing is left behind. A
    folder or an OpenSSH server refuses it by itself too (the declaration lifted): the same error."""
    s = backend.storage
    limits = s.name_limits()
    if limits.name_bytes is not None:  # a folder, an SFTP server: per name
        at_limit, over = "n" * (limits.name_bytes - 4) + ".jpg", "n" * (limits.name_bytes - 3) + ".jpg"
    else:  # S3: the whole key, prefix included
        at_limit = "d/" + "n" * (limits.path_bytes - 6) + ".jpg"
        over = "d/" + "n" * (limits.path_bytes - 5) + ".jpg"
    assert len(at_limit.encode()) + 1 == len(over.encode())
    s.write(at_limit, b"A")
    assert [f.path for f in s.list()] == [at_limit] and s.read(at_limit) == b"A"
    s.move(at_limit, at_limit[:-5] + "m.jpg")
    with pytest.raises(UnwritableName, match="holds"):
        s.write(over, b"B")
    with pytest.raises(UnwritableName):
        s.move(at_limit[:-5] + "m.jpg", over)
    assert [f.path for f in s.list()] == [at_limit[:-5] + "m.jpg"]
    if backend.native_path is None:
        return  # moto holds any key length; S3 itself answers KeyTooLongError (tests/unit/test_errors.py)
    undeclared = type(s)(s.root, *([s.conn_id] if isinstance(s, SftpStorage) else []))
    undeclared.max_name_bytes = None
    with pytest.raises(UnwritableName, match="cannot hold this name"):
        undeclared.write(over, b"B")
    with pytest.raises(UnwritableName, match="cannot hold this name"):
        undeclared.move(at_limit[:-5] + "m.jpg", over)
    assert [f.path for f in s.list()] == [at_limit[:-5] + "m.jpg"]
    if isinstance(undeclared, SftpStorage):
        undeclared.close()


def test_windows_style_names_are_one_file_each(backend):
    """``\\``, ``:`` and control characters are characters of a name on a folder, an OpenSSH server and
    S3: listed as themselves, read and moved, never split into folders or refused as a drive."""
    names = ["x\\..\\y.jpg", "a:b.jpg", "tab\there.jpg"]
    for i, name in enumerate(names):
        backend.put(name, bytes([i]))
    s = backend.storage
    assert sorted(f.path for f in s.list()) == sorted(names)
    assert [s.read(n) for n in names] == [b"\x00", b"\x01", b"\x02"]
    s.move("x\\..\\y.jpg", "processed/x\\..\\y.jpg")
    assert s.read("processed/x\\..\\y.jpg") == b"\x00" and not s.exists("y.jpg")


def test_open_write_publishes_on_success_and_nothing_on_failure(backend):
    """``open_write`` (the archive's zip goes through it): the content appears atomically when the
    block ends, never half-written when it raises, on every backend."""
    import zipfile

    st = backend.storage
    with st.open_write("run/outputs.zip") as fh, zipfile.ZipFile(fh, "w") as zf:
        zf.writestr("a.png", b"a" * 1000)
        zf.writestr("b.png", b"b" * 1000)
        assert st.stat("run/outputs.zip") is None  # not visible while it is being written
    assert st.stat("run/outputs.zip").size > 2000
    with pytest.raises(OSError, match="the source vanished"):
        with st.open_write("run/other.zip") as fh:
            fh.write(b"half a zip")
            raise OSError("the source vanished")
    assert st.stat("run/other.zip") is None
    assert [i.path for i in st.list("run")] == ["run/outputs.zip"]  # no temp file left in the run folder


def test_a_local_zip_is_written_once_in_place(tmp_path, monkeypatch):
    """Local folders write the archive's zip in place (a temp file beside it, renamed): no second copy
    of its bytes through the system temp folder (free space for one zip, not two)."""
    import tempfile

    from matting.pipeline.archive import write_zip

    mkstemp = tempfile.mkstemp

    def beside_the_target_only(*a, **k):
        if k.get("dir") is None:
            raise AssertionError("the zip went through the system temp folder")
        return mkstemp(*a, **k)

    monkeypatch.setattr(tempfile, "mkstemp", beside_the_target_only)
    st = LocalStorage(tmp_path)
    st.write("outputs/a.png", b"x" * 5000)
    write_zip(st, ["outputs/a.png"])
    import zipfile

    with zipfile.ZipFile(tmp_path / "outputs.zip") as zf:
        assert zf.read("outputs/a.png") == b"x" * 5000
