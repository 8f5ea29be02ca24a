"""The ledger of a source that keeps its files: a check costs a bounded number of storage requests
whatever the history (markers folded into a few immutable segments), markers written by earlier
versions still count, and a fold or merge interrupted at any step, or racing a check, loses no id.

Requests are counted by wrapping the storage (every list, read, write and delete that reaches it),
on a local folder, on S3 through moto's server and on SFTP through a real sshd."""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid

import pytest
from matting.storage import FileInfo, LocalStorage, S3Storage, SftpStorage
from matting.storage import ledger as ledger_mod
from matting.storage.ledger import Ledger, LedgerCorrupt


def _info(n: int) -> FileInfo:
    return FileInfo(f"kiosk/{n // 100}/photo-{n}.jpg", 1000 + n, 0.0, f"etag-{n}")


def _counting(storage, counts: dict, fail=None):
    """The storage (and every folder below it) with each request counted per kind; ``fail(kind, rel)``
    may raise to inject a fault before a request reaches the storage."""

    class Counting(type(storage)):
        def _tap(self, kind, rel=""):
            counts[kind] = counts.get(kind, 0) + 1
            if fail is not None:
                fail(kind, rel)

        def list(self, recursive=True, skip_dirs=()):
            self._tap("list")
            return super().list(recursive, skip_dirs)

        def read(self, rel, expect=None):
            self._tap("read", rel)
            return super().read(rel, expect)

        def write(self, rel, data):
            self._tap("write", rel)
            return super().write(rel, data)

        def delete(self, rel):
            self._tap("delete", rel)
            return super().delete(rel)

        def sub(self, rel_dir):
            child = super().sub(rel_dir)
            child.__class__ = Counting
            return child

    storage.__class__ = Counting
    return storage


def _history(ledger: Ledger, n: int, start: int = 0) -> set[str]:
    """``n`` photos settled over runs of 100, each run folding as the pipeline does."""
    ids = set()
    for k in range(start, start + n):
        ledger.mark(_info(k), run_id=f"run-{k // 100}")
        ids.add(_info(k).version_id)
        if k % 100 == 99:
            ledger.fold()
    return ids


@pytest.fixture(autouse=True)
def _fresh_cache():
    ledger_mod._segments.clear()
    yield
    ledger_mod._segments.clear()


def _requests(counts: dict) -> int:
    return sum(counts.values())


def test_a_check_costs_the_same_at_1k_and_at_10k_settled_photos(tmp_path, monkeypatch):
    """The same number of requests per check at 1,000 and 10,000 settled photos (a fresh process:
    listing + each segment once; a later check in the same process: the two listings only). The
    history is built in seconds here, as if over days: merged-away segments are retired at once."""
    monkeypatch.setattr(ledger_mod, "RETIRE_AFTER_S", 0.0)
    costs = {}
    for n in (1000, 10000):
        counts: dict = {}
        storage = _counting(LocalStorage(tmp_path / str(n)), counts)
        expected = _history(Ledger(storage), n)
        ledger_mod._segments.clear()  # a new process
        counts.clear()
        assert Ledger(storage).ids() == expected
        fresh = _requests(counts)
        counts.clear()
        assert Ledger(storage).ids() == expected
        costs[n] = (fresh, _requests(counts))
        top = [p for p in (tmp_path / str(n) / "_ledger").iterdir() if p.is_file()]
        assert len(top) < ledger_mod.FOLD_AT  # the markers not yet folded
        segments = list((tmp_path / str(n) / "_ledger" / "index").iterdir())
        assert len(segments) <= ledger_mod.MAX_SEGMENTS
    assert costs[1000][1] == costs[10000][1] == 2, costs
    assert costs[10000][0] <= 2 + ledger_mod.MAX_SEGMENTS, costs


def test_markers_of_earlier_versions_count_and_are_folded_with_their_documents(tmp_path):
    """0.x wrote one ``_ledger/<id>.json`` per photo and never removed it: those are read as they
    are, folded by the next run that marks one, and their documents kept in the archive."""
    dest = LocalStorage(tmp_path)
    old = {}
    for k in range(300):
        info = _info(k)
        doc = {"source": info.path, "size": info.size, "version": info.version, "status": "ok", "at": "2026-01-01"}
        (tmp_path / "_ledger").mkdir(exist_ok=True)
        (tmp_path / "_ledger" / f"{info.version_id}.json").write_text(json.dumps(doc))
        old[info.version_id] = doc
    ledger = Ledger(dest)
    assert ledger.ids() == set(old)
    ledger.mark(_info(300), status="quarantined")
    assert ledger.fold() == 301
    assert not [p for p in (tmp_path / "_ledger").iterdir() if p.is_file()]
    assert Ledger(dest).ids() == set(old) | {_info(300).version_id}
    archived = {}
    for f in (tmp_path / "_ledger" / "archive").iterdir():
        for line in f.read_text().splitlines():
            doc = json.loads(line)
            archived[doc.pop("id")] = doc
    assert {k: archived[k] for k in old} == old
    assert archived[_info(300).version_id]["status"] == "quarantined"


@pytest.mark.parametrize("step", ["fold", "merge"])
def test_a_fold_or_merge_interrupted_at_any_request_loses_no_id(tmp_path, monkeypatch, step):
    """The storage fails at the k-th write or delete of a fold (or of a merge), for every k: after
    each failure a check still sees every id; the next fold finishes the work."""
    monkeypatch.setattr(ledger_mod, "MAX_SEGMENTS", 2)
    monkeypatch.setattr(ledger_mod, "RETIRE_AFTER_S", 0.0)
    k = 0
    while True:
        k += 1
        root = tmp_path / f"{step}-{k}"
        calls = itertools.count(1)
        armed = threading.Event()

        def fail(kind, rel, k=k, calls=calls, armed=armed):
            if armed.is_set() and kind in ("write", "delete") and next(calls) == k:
                raise ConnectionResetError(f"injected: {kind} {rel}")

        storage = _counting(LocalStorage(root), {}, fail)
        ledger = Ledger(storage)
        settled = {_info(n).version_id for n in range(60)}
        for n in range(60 if step == "fold" else 40):
            ledger.mark(_info(n))
            if step == "merge" and n % 20 == 19:
                ledger.fold(at_least=1)  # two segments: the next fold merges
        if step == "merge":
            for n in range(40, 60):
                ledger.mark(_info(n))
        armed.set()
        try:
            ledger.fold(at_least=1)
        except ConnectionResetError:
            ledger_mod._segments.clear()
            assert Ledger(LocalStorage(root)).ids() == settled, f"lost ids after failing request {k}"
            armed.clear()
            Ledger(LocalStorage(root)).fold(at_least=1)
            ledger_mod._segments.clear()
            assert Ledger(LocalStorage(root)).ids() == settled
            assert not [p for p in (root / "_ledger").iterdir() if p.is_file()], "markers left after a clean fold"
            assert len(list((root / "_ledger" / "index").iterdir())) <= 2 + 2  # live + retired next time
            continue
        assert k > 3  # the fold made several writes and deletes, each of which was failed once
        break


def test_a_check_racing_folds_and_merges_sees_every_id_marked_before_it(tmp_path, monkeypatch):
    """Tasks marking and folding (small folds, many merges, merged-away segments retired after 1 s)
    while checks run: every check's ids include everything marked before the check started. (With
    the parts of a merge deleted at once, listings that are not snapshots lost ids here.)"""
    monkeypatch.setattr(ledger_mod, "MAX_SEGMENTS", 3)
    monkeypatch.setattr(ledger_mod, "RETIRE_AFTER_S", 1.0)
    storage = LocalStorage(tmp_path)
    marked: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()
    errors: list[str] = []
    checks = [0]

    def writer(w):
        ledger = Ledger(LocalStorage(tmp_path))
        for n in range(w * 1000, w * 1000 + 400):
            ledger.mark(_info(n))
            with lock:
                marked.append(_info(n).version_id)
            if n % 7 == 0:
                ledger.fold(at_least=5)

    def checker():
        while not stop.is_set():
            with lock:
                before = set(marked)
            seen = Ledger(storage).ids()
            checks[0] += 1
            if not before <= seen:
                errors.append(f"{len(before - seen)} id(s) missing")

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(3)]
    checkers = [threading.Thread(target=checker) for _ in range(2)]
    for t in threads + checkers:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    for t in checkers:
        t.join()
    assert checks[0] > 50 and not errors, (checks, errors[:3])
    assert Ledger(storage).ids() == set(marked)
    ledger = Ledger(storage)
    for extra in (9998, 9999):  # two later runs, each past the retirement age of the last one's merges
        time.sleep(1.1)
        ledger.mark(_info(extra))
        ledger.fold(at_least=1)
    assert Ledger(storage).ids() == set(marked) | {_info(9998).version_id, _info(9999).version_id}
    # bounded: the live segments plus the two parts of at most one merge not yet retired
    assert len(list((tmp_path / "_ledger" / "index").iterdir())) <= 3 + 2


def test_a_damaged_segment_fails_the_check_instead_of_forgetting_its_photos(tmp_path):
    ledger = Ledger(LocalStorage(tmp_path))
    _history(ledger, 300)
    (segment,) = [p for p in (tmp_path / "_ledger" / "index").iterdir()][:1]
    segment.write_text(segment.read_text()[:-18])  # one id cut off
    ledger_mod._segments.clear()
    with pytest.raises(LedgerCorrupt):
        Ledger(LocalStorage(tmp_path)).ids()


@pytest.mark.parametrize("kind", ["s3", "sftp"])
def test_on_real_servers_a_check_is_a_few_requests_after_1000_photos(kind, request, monkeypatch):
    """S3 (moto's server) and SFTP (OpenSSH): 1,000 settled photos, then a check from a fresh process
    makes at most 2 listings + one read per segment, and a later check the 2 listings; every folder of
    the ledger goes over the one SSH connection (SFTP) or the one boto3 client (S3)."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    from airflow.providers.sftp.hooks.sftp import SFTPHook

    hooks = []
    for hook in (S3Hook, SFTPHook):
        real_init = hook.__init__

        def counted(self, *args, real_init=real_init, **kwargs):
            hooks.append(self)
            real_init(self, *args, **kwargs)

        monkeypatch.setattr(hook, "__init__", counted)
    if kind == "s3":
        conn = request.getfixturevalue("s3_conn")
        server = request.getfixturevalue("s3_server")
        bucket = f"ledger-{uuid.uuid4().hex[:8]}"
        server.client().create_bucket(Bucket=bucket)
        make = lambda: S3Storage(bucket, "dest", conn)  # noqa: E731
    else:
        conn = request.getfixturevalue("sftp_conn")
        sshd = request.getfixturevalue("sshd")
        root = sshd.root / uuid.uuid4().hex[:8]
        root.mkdir()
        make = lambda: SftpStorage(str(root), conn)  # noqa: E731
    counts: dict = {}
    storage = _counting(make(), counts)
    try:
        expected = _history(Ledger(storage), 1000)
        assert len(hooks) == 1  # root, _ledger and index share one connection (one client)
        ledger_mod._segments.clear()
        counts.clear()
        assert Ledger(storage).ids() == expected
        assert counts["list"] == 2 and counts.get("read", 0) <= ledger_mod.MAX_SEGMENTS, counts
        counts.clear()
        assert Ledger(storage).ids() == expected
        assert counts == {"list": 2}, counts
    finally:
        storage.close()


def test_a_check_answers_membership_from_the_segments_without_merging_them(tmp_path):
    """``ids()`` is a set view over the markers and the cached segments: a check asks ``in`` of it
    and no set of the whole history is built per check (that CPU grew with history: ~13 ms at 100k);
    read as a set (``==``, ``len``, iteration) it is exactly the settled ids, duplicates counted once."""
    dest = LocalStorage(tmp_path)
    ledger = Ledger(dest)
    for k in range(650):
        ledger.mark(_info(k))
        if k in (299, 599):
            ledger.fold()  # two segments; 600-649 stay markers
    ledger.mark(_info(5))  # marked again after its segment was written (a retried run): counted once
    expected = {_info(k).version_id for k in range(650)}
    ids = Ledger(dest).ids()
    assert len(list((tmp_path / "_ledger" / "index").iterdir())) == 2
    assert all(_info(k).version_id in ids for k in (0, 5, 299, 300, 599, 600, 649))
    assert _info(650).version_id not in ids and "" not in ids and None not in ids
    assert ids == expected and expected == ids and len(ids) == 650 and set(ids) == expected
    assert ids._union is not None  # built by the set reads above, not by the membership tests
    fresh = Ledger(dest).ids()
    assert _info(649).version_id in fresh and _info(0).version_id in fresh and fresh._union is None
