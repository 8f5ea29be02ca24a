"""The results pages rendered by the plugin's FastAPI app, in-process: a run folder on disk, the
auth dependencies replaced by an allow-all user (the live UI test runs them against a real Airflow
and its auth manager). What is checked here is what the pages show: escaping of everything that
comes from a manifest, the filter, the one-photo comparison, a re-sorted manifest never showing one
photo's picture under another's name, and the thumbnail cache's bound."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from fastapi.testclient import TestClient
from matting.results import app as ui
from matting.results import run as results
from matting.results.run import Where
from PIL import Image

PREFIX = "2026/12/02/run-1"
HOSTILE = "<img src=x onerror=alert(1)>.jpg"  # a file name is anything but a slash


def _jpeg(colour, size=(320, 240)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "JPEG")
    return buf.getvalue()


def _write_run(root, files):
    run = root / "archive" / PREFIX
    (run / "outputs").mkdir(parents=True, exist_ok=True)
    (root / "incoming" / "processed").mkdir(parents=True, exist_ok=True)
    entries = []
    for name, status, colour in files:
        stem = name.rsplit(".", 1)[0]
        (root / "incoming" / "processed" / name).write_bytes(_jpeg(colour, (640, 480)))
        entry = {"source": name, "status": status, "moved_to": f"processed/{name}"}
        if status == "ok":
            (run / "outputs" / f"{stem}.jpg").write_bytes(_jpeg(colour, (640, 480)))
            entry["outputs"] = [f"{PREFIX}/outputs/{stem}.jpg"]
        else:
            entry.update(error_type="truncated_image", error="cut <b>short</b>")
        entries.append(entry)
    (run / "manifest.json").write_text(json.dumps({"files": entries, "job": {"model": "u2netp"}}))


@pytest.fixture
def site(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW__MATTING__UI_CACHE_DIR", str(tmp_path / "cache"))
    where = Where(str(tmp_path / "archive"), PREFIX, "", str(tmp_path / "incoming"), "")
    monkeypatch.setattr(ui, "_where", lambda dag_id, run_id: where)
    app = ui.create_app()
    app.dependency_overrides[ui.current_user] = lambda: object()
    app.dependency_overrides[ui.may_read_run] = lambda: None
    client = TestClient(app, root_path="/matting")
    client.root = tmp_path
    return client


RED, GREEN, BLUE = (220, 20, 20), (20, 200, 20), (20, 20, 220)


def test_the_run_page_escapes_what_the_manifest_says_and_filters(site):
    _write_run(site.root, [("a.jpg", "ok", RED), (HOSTILE, "failed", GREEN), ("c.jpg", "ok", BLUE)])
    page = site.get("/runs/matting_scheduled/run-1", headers={"accept": "text/html"})
    assert page.status_code == 200
    assert "<img src=x" not in page.text and "&lt;img src=x onerror=alert(1)&gt;.jpg" in page.text
    assert "cut <b>short</b>" not in page.text and "cut &lt;b&gt;short&lt;/b&gt;" in page.text
    assert page.text.count('alt="before"') == 3 and "all (3)" in page.text and "failed / refused (1)" in page.text
    failed = site.get("/runs/matting_scheduled/run-1?show=failed")
    assert failed.text.count('alt="before"') == 1 and "&lt;img src=x" in failed.text
    held = site.get("/runs/matting_scheduled/run-1?show=held")
    assert held.text.count('alt="before"') == 0 and "No photo in this view" in held.text
    assert site.get("/runs/matting_scheduled/run-1?show=everything").status_code == 422


def test_one_photo_full_size_side_by_side(site):
    _write_run(site.root, [("a.jpg", "ok", RED), ("b.jpg", "ok", GREEN)])
    page = site.get("/runs/matting_scheduled/run-1/photo/1")
    assert page.status_code == 200 and "b.jpg" in page.text and 'href="0"' in page.text  # previous
    key = results.items_from_manifest(
        json.loads((site.root / "archive" / PREFIX / "manifest.json").read_text()), PREFIX
    )[1].key
    image = site.get(f"/runs/matting_scheduled/run-1/image/1/after.jpg?v={key}")
    pic = Image.open(io.BytesIO(image.content))
    assert image.headers["content-type"] == "image/jpeg" and pic.size == (640, 480)  # its own shape, not a tile
    assert np.asarray(pic)[240, 320, 1] > 150
    assert site.get("/runs/matting_scheduled/run-1/photo/2").status_code == 404


def test_a_resorted_manifest_never_shows_one_photos_thumbnail_under_anothers_name(site):
    """Page rendered, thumbnails cached; the run is re-archived with its items in another order."""
    _write_run(site.root, [("a.jpg", "ok", RED), ("b.jpg", "ok", GREEN)])
    page = site.get("/runs/matting_scheduled/run-1").text
    urls = {name: url for url, name in _thumbs(page)}
    for url in urls.values():
        assert site.get(f"/runs/matting_scheduled/{url}").status_code == 200  # now cached
    _write_run(site.root, [("b.jpg", "ok", GREEN), ("a.jpg", "ok", RED)])  # re-sorted
    for name, colour in (("a.jpg", RED), ("b.jpg", GREEN)):
        for page_now in (page, site.get("/runs/matting_scheduled/run-1").text):  # an old tab and a fresh one
            url = dict((n, u) for u, n in _thumbs(page_now))[name]
            pixel = np.asarray(Image.open(io.BytesIO(site.get(f"/runs/matting_scheduled/{url}").content)))[128, 128]
            assert int(np.argmax(pixel)) == int(np.argmax(colour)), (name, url, pixel)


def _thumbs(page: str):
    """(after-thumbnail URL, photo name) per card."""
    import re

    for card in page.split('<div class="card"')[1:]:
        name = re.search(r"<b>([^<]+)</b>", card)[1]
        url = re.search(r'alt="after" src="([^"]+)"', card)[1].replace("&amp;", "&")
        yield url, name


def test_the_thumbnail_cache_stays_within_its_bound(site, monkeypatch):
    _write_run(site.root, [(f"p{i}.jpg", "ok", (i * 20, 100, 100)) for i in range(8)])
    page = site.get("/runs/matting_scheduled/run-1").text
    for url, _ in _thumbs(page):
        assert site.get(f"/runs/matting_scheduled/{url}").status_code == 200
    cache = site.root / "cache"
    sizes = [p.stat().st_size for p in cache.glob("*.jpg")]
    assert len(sizes) == 8
    removed = results.prune_cache(max_bytes=sum(sizes) // 2)
    left = list(cache.glob("*.jpg"))
    assert removed >= 4 and sum(p.stat().st_size for p in left) <= sum(sizes) // 2


def test_a_run_without_results_is_a_page_in_the_tab(site, monkeypatch):
    from fastapi import HTTPException

    def nothing(dag_id, run_id):
        raise HTTPException(404, f"run {run_id} of {dag_id} has no results (yet)")

    monkeypatch.setattr(ui, "_where", nothing)
    page = site.get("/runs/other_dag/manual__1", headers={"accept": "text/html"})
    assert page.status_code == 404 and "No matting results" in page.text and "other_dag" in page.text
    assert site.get("/runs/other_dag/manual__1").json() == {"detail": "run manual__1 of other_dag has no results (yet)"}
