"""Issue #36: the results pages cost the page, not the run. A run of 50k photos is archived by the
real ``close_run`` (which writes the paged index beside the manifest); one page, the filters' counts
and one photo's image then read a few small files and never the manifest, and show exactly what the
full parse of the manifest shows. Runs from before the index, runs still in progress (merged once per
change of their parts) and an index that names another run are covered too."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict

import pytest
from fastapi.testclient import TestClient
from helpers import write_batch_parts
from matting.pipeline.archive import close_run
from matting.results import app as ui
from matting.results import run as results
from matting.results.gallery import VIEWS
from matting.results.index import INDEX, publish_manifest
from matting.results.run import NotThisRun, RunResults, Where, items_from_manifest, page_of
from matting.storage import LocalStorage

PREFIX = "2026/12/02/big"
DAG, RUN = "matting_scheduled", "scheduled__2026-12-02"
N = 50_000
MAX_FILES_A_PAGE = 8  # index, manifest stat, at most two chunks, the quarantine's chunk, the zip's stat


class Counting(LocalStorage):
    """A run folder that records every request made to it (reads by name, and stats / listings)."""

    def __init__(self, root, log=None) -> None:
        super().__init__(root)
        self.log = log if log is not None else []

    def sub(self, rel_dir):
        return Counting(super().sub(rel_dir).root, self.log)

    def _read(self, rel):
        self.log.append(("read", rel))
        return super()._read(rel)

    def stat(self, rel):
        self.log.append(("stat", rel))
        return super().stat(rel)

    def list(self, recursive=True, skip_dirs=()):
        self.log.append(("list", str(self.root)))
        return super().list(recursive, skip_dirs)


@pytest.fixture(scope="module")
def big_run(tmp_path_factory):
    """A 50k-photo run archived by the real archive step (parts, then close_run)."""
    root = tmp_path_factory.mktemp("big") / "archive"
    run = LocalStorage(root / PREFIX)
    write_batch_parts(run, N, prefix=PREFIX, dag_id=DAG, run_id=RUN)
    close_run(run, None, make_zip=False, make_sheet=False)
    manifest = json.loads(run.read("manifest.json"))
    return root, manifest, items_from_manifest(manifest, PREFIX)


def _results(root, log=None, **where) -> RunResults:
    return RunResults(Where(str(root), PREFIX, **where), Counting(root / PREFIX, log), None)


def test_a_page_of_a_50k_run_reads_a_few_small_files_and_never_the_manifest(big_run):
    root, _, _ = big_run
    log: list = []
    res = _results(root, log, dag_id=DAG, run_id=RUN)
    shown, page, pages = res.page("all", 1234, 24)
    res.view_counts(), res.counts(), res.view("failed", 0, 200), res.zip_path()
    reads = [rel for op, rel in log if op == "read"]
    assert "manifest.json" not in reads and len(shown) == 24 and (page, pages) == (1234, 2084)
    assert len(log) <= MAX_FILES_A_PAGE, log
    assert sum((root / PREFIX / rel).stat().st_size for rel in reads) < 300_000  # the manifest: ~20 MB


def test_one_photo_by_position_or_by_content_key_reads_one_chunk_and_one_key_shard(big_run):
    root, _, items = big_run
    log: list = []
    res = _results(root, log, dag_id=DAG, run_id=RUN)
    assert asdict(res.item(31_337)) == asdict(items[31_337])
    # a page rendered before a re-archive asks by its old position and the photo's key
    assert asdict(res.item(5, key=items[42_424].key)) == asdict(items[42_424])
    with pytest.raises(KeyError):
        res.item(5, key="0" * 16)
    with pytest.raises(KeyError):
        res.item(N)
    reads = [rel for op, rel in log if op == "read"]
    assert "manifest.json" not in reads and len(log) <= 10, log


def test_pages_filters_and_counts_are_the_full_parses(big_run):
    root, manifest, items = big_run
    res = _results(root)
    assert res.counts() == results.counts(items) and res.counts()["reused"] > 0
    for show, shown in VIEWS.items():
        selected = [i for i in items if shown is None or i.status in shown]
        assert res.view_counts()[show] == len(selected)
        for page, per_page in ((1, 24), (2, 24), (417, 96), (10_000, 24), (3, 7)):
            got, page_now, pages = res.page(show, page, per_page)
            want, want_pages = page_of(selected, page, per_page)
            assert [asdict(i) for i in got] == [asdict(i) for i in want] and pages == want_pages, (show, page)
    assert res.header["job"] == manifest.get("job") and res.header["run_id"] == RUN


def test_the_pages_of_a_50k_run_through_the_app_never_read_the_manifest(big_run, tmp_path, monkeypatch):
    root, _, items = big_run
    monkeypatch.setenv("AIRFLOW__MATTING__UI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(ui, "_where", lambda dag_id, run_id: Where(str(root), PREFIX, dag_id=dag_id, run_id=run_id))
    reads: list[str] = []
    real_read = LocalStorage._read
    monkeypatch.setattr(LocalStorage, "_read", lambda self, rel: reads.append(rel) or real_read(self, rel))
    app = ui.create_app()
    app.dependency_overrides[ui.current_user] = lambda: object()
    app.dependency_overrides[ui.may_read_run] = lambda: None
    site = TestClient(app, root_path="/matting")
    page = site.get(f"/runs/{DAG}/{RUN}?show=failed&page=3")
    assert page.status_code == 200 and "failed / refused (5000)" in page.text and "all (50000)" in page.text
    third = [i for i in items if i.status == "failed"][48:72]
    assert all(f'id="item-{i.index}"' in page.text for i in third)
    assert site.get(f"/runs/{DAG}/{RUN}/thumb/{third[0].index}/after.jpg?v={third[0].key}").status_code == 200
    assert site.get(f"/runs/{DAG}/{RUN}/photo/{third[0].index}").status_code == 200
    assert "manifest.json" not in reads and len(reads) <= 12, reads


def test_a_run_from_before_the_index_still_opens(big_run, tmp_path):
    root, _, _ = big_run
    old = tmp_path / "old"
    shutil.copytree(root / PREFIX, old / PREFIX, ignore=shutil.ignore_patterns("results"))
    log: list = []
    res = _results(old, log, dag_id=DAG, run_id=RUN)
    assert ("read", "manifest.json") in log and res.view_counts() == {"all": N, "failed": N // 10, "held": 0}
    assert res.item(7).name == "in/000007.jpg"


def test_an_index_not_made_from_the_manifest_there_is_not_used(tmp_path):
    run = LocalStorage(tmp_path / PREFIX)
    write_batch_parts(run, 30, prefix=PREFIX, dag_id=DAG, run_id=RUN)
    close_run(run, None, make_zip=False, make_sheet=False)
    manifest = json.loads(run.read("manifest.json"))
    manifest["files"] = manifest["files"][:10]  # rewritten by a writer that knows no index
    run.write("manifest.json", json.dumps(manifest).encode())
    res = _results(tmp_path, dag_id=DAG, run_id=RUN)
    assert res.total == 10 and res.page("all", 2, 24)[0][-1].name == "in/000009.jpg"


def test_an_index_naming_another_run_is_refused(tmp_path):
    run = LocalStorage(tmp_path / PREFIX)
    write_batch_parts(run, 30, prefix=PREFIX, dag_id=DAG, run_id=RUN)
    close_run(run, None, make_zip=False, make_sheet=False)
    assert _results(tmp_path, dag_id=DAG, run_id=RUN).total == 30
    with pytest.raises(NotThisRun, match=f"belong to DAG '{DAG}' run '{RUN}'"):
        _results(tmp_path, dag_id=DAG, run_id="scheduled__other")
    # an index edited to name another run than its manifest (and the same version): its word is checked
    index = json.loads(run.read(INDEX))
    run.write(INDEX, json.dumps({**index, "run_id": "someone_else"}).encode())
    with pytest.raises(NotThisRun, match="run 'someone_else'"):
        _results(tmp_path, dag_id=DAG, run_id=RUN)
    # another run's index copied in: not made from this manifest, so the manifest (this run's) decides
    other = LocalStorage(tmp_path / "other")
    write_batch_parts(other, 5, prefix="other", dag_id=DAG, run_id="scheduled__other")
    close_run(other, None, make_zip=False, make_sheet=False)
    shutil.rmtree(tmp_path / PREFIX / "results")
    shutil.copytree(tmp_path / "other" / "results", tmp_path / PREFIX / "results")
    assert _results(tmp_path, dag_id=DAG, run_id=RUN).total == 30


def test_id_photos_held_and_reviewed_keep_the_index_in_step(tmp_path):
    """The ID-photo step writes the manifest and its index; a review rewrites both."""
    from matting.idphoto.review import held_photos, settle_review
    from matting.pipeline.naming import report_name

    run = LocalStorage(tmp_path / PREFIX)
    photos = []
    for i in range(450):
        if i % 3 == 0:
            photos.append({"source": f"p{i:04d}.jpg", "output": f"p{i:04d}.jpg", "passed": True, "reasons": []})
        elif i % 3 == 1:
            photos.append({"source": f"p{i:04d}.jpg", "output": f"review/p{i:04d}.jpg", "reasons": ["mouth open"]})
            run.write(f"review/p{i:04d}.jpg", b"x")
            run.write(f"review/{report_name(f'p{i:04d}.jpg')}", b"{}")
        else:
            photos.append({"source": f"p{i:04d}.jpg", "rejected": "no_face", "reasons": ["no face found"]})
    publish_manifest(run, {"dag_id": DAG, "run_id": RUN, "photos": photos, "counts": {}})

    def same_as_full_parse():
        res = _results(tmp_path, dag_id=DAG, run_id=RUN)
        items = items_from_manifest(json.loads(run.read("manifest.json")), PREFIX)
        for show, shown in VIEWS.items():
            selected = [i for i in items if shown is None or i.status in shown]
            for page in (1, 2, 7):
                assert [asdict(i) for i in res.page(show, page, 24)[0]] == [
                    asdict(i) for i in page_of(selected, page, 24)[0]
                ]
        assert res.counts() == results.counts(items)
        return res

    assert same_as_full_parse().view_counts() == {"all": 450, "failed": 150, "held": 150}
    held = held_photos(photos)
    settle_review(run, held, [held[0]["photo"], held[1]["photo"]], "retake", "hr-clerk")
    after = same_as_full_parse()
    assert after.view_counts() == {"all": 450, "failed": 298, "held": 0}
    assert after.item(1).details["review"].startswith("approved by hr-clerk")


def test_a_run_in_progress_is_merged_once_and_again_only_when_a_part_changes(tmp_path, monkeypatch):
    calls = []
    real = results.merge_parts
    monkeypatch.setattr(results, "merge_parts", lambda run, listing=None: calls.append(1) or real(run, listing))
    run = LocalStorage(tmp_path / PREFIX)
    write_batch_parts(run, 1200, prefix=PREFIX, dag_id=DAG, run_id=RUN)
    for _ in range(3):
        log: list = []
        res = _results(tmp_path, log, dag_id=DAG, run_id=RUN)
        assert res.partial and res.total == 1200 and res.page("failed", 2, 24)[0][0].name == "in/000243.jpg"
    assert len(calls) == 1
    assert [op for op, _ in log].count("read") == 1 and [op for op, _ in log].count("list") == 1  # index; parts/
    part = json.loads(run.read("parts/part-0002.json"))
    part["files"] = part["files"][:100]  # a batch rewrote its part
    run.write("parts/part-0002.json", json.dumps(part).encode())
    assert _results(tmp_path, dag_id=DAG, run_id=RUN).total == 1100 and len(calls) == 2
    assert _results(tmp_path, dag_id=DAG, run_id=RUN).total == 1100 and len(calls) == 2
    with pytest.raises(NotThisRun):  # the cache answers only the run that the parts name
        _results(tmp_path, dag_id=DAG, run_id="scheduled__other")
