"""The results pages' core: gallery items from real manifests, paths that cannot leave the run's
folder or the source, bounded pages, thumbnails made once."""

from __future__ import annotations

import io
import json

import pytest
from matting.results.run import RunResults, Where, cached_thumbnail, counts, items_from_manifest, page_of, thumbnail
from matting.storage import LocalStorage
from PIL import Image

PREFIX = "2026/11/24/manual__1"


def _jpeg(color=(200, 30, 30), size=(300, 200)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "JPEG")
    return buf.getvalue()


def _png_cutout() -> bytes:
    img = Image.new("RGBA", (200, 300), (0, 0, 0, 0))
    img.paste((20, 120, 20, 255), (50, 50, 150, 250))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _matting_manifest() -> dict:
    ok = {"source": "a.jpg", "status": "ok", "outputs": [f"{PREFIX}/outputs/a.png"], "moved_to": "processed/a.jpg"}
    bad = {
        "source": "b.jpg",
        "status": "failed",
        "outputs": [],
        "error_type": "truncated_image",
        "error": "image file is truncated",
        "moved_to": "quarantine/b.jpg",
    }
    escape = {"source": "../../etc/passwd", "status": "ok", "outputs": ["../../../etc/shadow"], "moved_to": None}
    return {"files": [ok, bad, escape], "zip": "outputs.zip"}


def test_items_from_a_matting_manifest_keep_paths_inside():
    items = items_from_manifest(_matting_manifest(), PREFIX)
    assert [(i.name, i.status) for i in items] == [("a.jpg", "ok"), ("b.jpg", "failed"), ("../../etc/passwd", "ok")]
    assert items[0].before == "processed/a.jpg" and items[0].after == "outputs/a.png"
    assert items[1].reason == "truncated_image: image file is truncated" and items[1].after is None
    assert items[1].before == "quarantine/b.jpg"
    assert items[2].before is None and items[2].after is None  # a manifest cannot point a URL outside


def test_items_from_an_id_photo_manifest():
    rules = [{"rule": "head_ratio", "value": 0.76, "band": [0.71, 0.8], "passed": True, "message": ""}]
    manifest = {
        "photos": [
            {"source": "p.jpg", "passed": True, "output": "p.jpg", "rules": rules, "reasons": []},
            {"source": "q.jpg", "passed": False, "output": "review/q.jpg", "rules": rules, "reasons": ["mouth open"]},
            {"source": "r.jpg", "passed": False, "rejected": "no_face", "reasons": ["no face found"]},
        ]
    }
    items = items_from_manifest(manifest, PREFIX)
    assert [i.status for i in items] == ["ok", "held", "refused"]
    assert items[1].reason == "mouth open" and items[1].after == "review/q.jpg" and items[1].rules == rules
    assert counts(items) == {"files": 3, "ok": 1, "held": 1, "refused": 1}


def test_pages_are_bounded_and_clamped():
    items = list(range(100))
    assert page_of(items, 1, 24) == (list(range(24)), 5)
    assert page_of(items, 99, 24)[0] == list(range(96, 100))  # past the end: the last page
    shown, pages = page_of(items, 1, 10_000)
    assert len(shown) == 96 and pages == 2  # per_page capped


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW__MATTING__UI_CACHE_DIR", str(tmp_path / "cache"))
    dest, source = LocalStorage(tmp_path / "dest"), LocalStorage(tmp_path / "in")
    dest.write(f"{PREFIX}/outputs/a.png", _png_cutout())
    dest.write(f"{PREFIX}/manifest.json", json.dumps(_matting_manifest()).encode())
    source.write("processed/a.jpg", _jpeg())
    (tmp_path / "etc").mkdir()
    return RunResults(Where(str(tmp_path / "dest"), PREFIX), dest.sub(PREFIX), source), tmp_path


def test_thumbnails_are_made_once_and_show_the_images(run):
    res, tmp = run
    item = res.item(0)
    assert cached_thumbnail(res.where, item.key, "after") is None
    first = thumbnail(res, item, "after")
    assert cached_thumbnail(res.where, item.key, "after") == first  # what the page's image URLs get next time
    before = Image.open(io.BytesIO(thumbnail(res, item, "before")))
    after = Image.open(io.BytesIO(first))
    assert before.size == after.size == (256, 256)
    assert before.getpixel((128, 128))[0] > 150  # the red original, fitted
    assert after.getpixel((128, 128))[1] > 90  # the green cut-out on the checkerboard
    assert len(list((tmp / "cache").iterdir())) == 2
    (tmp / "dest" / PREFIX / "outputs" / "a.png").unlink()  # served from the cache from now on
    assert thumbnail(res, item, "after") == first


def test_missing_images_show_a_label_and_are_not_cached(run):
    res, tmp = run
    quarantined = res.item(1)  # its original is not in the source, it has no output
    assert Image.open(io.BytesIO(thumbnail(res, quarantined, "after"))).size == (256, 256)
    assert not (tmp / "cache").exists() or not list((tmp / "cache").iterdir())
    with pytest.raises(KeyError):
        res.item(3)
    with pytest.raises(ValueError):
        thumbnail(res, quarantined, "../../secret")
    assert res.zip_path() is None  # named in the manifest but not there


def test_a_run_whose_archive_did_not_run_shows_what_the_batches_recorded(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW__MATTING__UI_CACHE_DIR", str(tmp_path / "cache"))
    dest = LocalStorage(tmp_path / "dest")
    part = {"started_at": "2026-11-24T08:00:00Z", "files": _matting_manifest()["files"][:2]}
    dest.write(f"{PREFIX}/parts/part-0000.json", json.dumps(part).encode())
    dest.write(f"{PREFIX}/outputs/a.png", _png_cutout())
    res = RunResults(Where(str(tmp_path / "dest"), PREFIX), dest.sub(PREFIX), None)
    assert res.partial and [i.name for i in res.items] == ["a.jpg", "b.jpg"]
    assert res.item(0).after == "outputs/a.png" and res.zip_path() is None
    thumbnail(res, res.item(0), "after")
    assert cached_thumbnail(res.where, res.item(0).key, "after") is None  # not archived: may still change, not cached
    dest.write(f"{PREFIX}/manifest.json", json.dumps(_matting_manifest()).encode())
    assert not RunResults(Where(str(tmp_path / "dest"), PREFIX), dest.sub(PREFIX), None).partial


def test_the_rule_table_shows_distance_and_borderline_escaped():
    from matting.results.app import _templates

    html_text = (
        _templates()
        .get_template("macros.html")
        .module.rules_table(
            [
                {
                    "rule": "yaw_deg",
                    "value": 7.1,
                    "band": [-8, 8],
                    "distance": 0.9,
                    "passed": True,
                    "borderline": True,
                    "message": "borderline yaw deg: 7.1 is 0.9 from the limit 8 <b>",
                },
                {
                    "rule": "teeth",
                    "value": 0.04,
                    "band": [0, 0.015],
                    "distance": -0.025,
                    "passed": False,
                    "message": "x",
                },
            ]
        )
    )
    html_text = str(html_text)
    assert '<td class="held">borderline</td>' in html_text and "<td>0.9</td>" in html_text
    assert '<td class="fail">FAIL</td>' in html_text and "<td>-0.025</td>" in html_text
    assert "&lt;b&gt;" in html_text and "<b>" not in html_text


def test_results_asked_for_a_run_must_be_that_runs(tmp_path, monkeypatch):
    """What an XCom points at is shown only when the manifest there names the URL's DAG and run."""
    from matting.results.run import NotThisRun

    monkeypatch.setenv("AIRFLOW__MATTING__UI_CACHE_DIR", str(tmp_path / "cache"))
    dest = LocalStorage(tmp_path / "dest")
    manifest = {**_matting_manifest(), "dag_id": "shop_b", "run_id": "scheduled__1"}
    dest.write(f"{PREFIX}/manifest.json", json.dumps(manifest).encode())
    dest.write(f"{PREFIX}/outputs/a.png", _png_cutout())
    base = Where(str(tmp_path / "dest"), PREFIX)
    own = Where(base.destination, PREFIX, dag_id="shop_b", run_id="scheduled__1")
    assert len(RunResults(own, dest.sub(PREFIX), None).items) == 3
    for dag_id, run_id in (("shop_a", "scheduled__1"), ("shop_b", "scheduled__2")):
        other = Where(base.destination, PREFIX, dag_id=dag_id, run_id=run_id)
        with pytest.raises(NotThisRun, match="belong to DAG 'shop_b' run 'scheduled__1'"):
            RunResults(other, dest.sub(PREFIX), None)
    empty = Where(base.destination, "nothing-here", dag_id="shop_b", run_id="scheduled__1")
    with pytest.raises(NotThisRun, match="no manifest"):
        RunResults(empty, dest.sub("nothing-here"), None)


def test_a_cached_thumbnail_is_only_found_by_the_same_run_and_places(run):
    from dataclasses import replace

    res, _ = run
    item = res.item(0)
    made = thumbnail(res, item, "after")
    assert cached_thumbnail(res.where, item.key, "after") == made
    for other in (
        replace(res.where, dag_id="another_dag", run_id="r"),
        replace(res.where, source="/elsewhere"),
        replace(res.where, source_conn_id="other_conn"),
        replace(res.where, destination_conn_id="other_conn"),
    ):
        assert cached_thumbnail(other, item.key, "after") is None


def test_an_output_saved_under_another_name_shows_both_names():
    """Issue #37: the page names the original (the record's source) and, where the plan had to give
    the output another name (cut to fit, made portable), that name too."""
    long = "photos/" + "n" * 300 + ".jpg"
    cut = "photos/" + "n" * 230 + "-1f2e3d4c.png"
    manifest = {
        "files": [
            {"source": long, "status": "ok", "outputs": [f"{PREFIX}/outputs/{cut}"], "moved_to": f"processed/{long}"},
            {"source": "a.jpg", "status": "ok", "outputs": [f"{PREFIX}/outputs/a.png"], "moved_to": "processed/a.jpg"},
        ],
        "photos": [{"source": "x\\y.jpg", "passed": True, "output": "x_y.jpg", "reasons": []}],
    }
    renamed, same, portrait = items_from_manifest(manifest, PREFIX)
    assert renamed.name == long and renamed.details["saved as"] == cut and renamed.after == f"outputs/{cut}"
    assert "saved as" not in same.details
    assert portrait.name == "x\\y.jpg" and portrait.details["saved as"] == "x_y.jpg"
