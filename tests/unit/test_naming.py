"""Every name a run gives a file (matting.naming): outputs planned once, originals never overwritten."""

from __future__ import annotations

from matting.naming import (
    decision_name,
    plan_outputs,
    plan_stems,
    report_name,
    sheet_name,
    stems_of,
    unique_name,
    versioned_name,
    with_stems,
)
from matting.storage import FileInfo, LocalStorage


def test_plan_outputs_keeps_names_and_resolves_clashes():
    plan = plan_outputs(["a.jpg", "a.png", "sub/a.jpg", "b.heic", "A.JPG"], ".png")
    assert plan == {
        "a.jpg": "a.png",
        "a.png": "a_png.png",
        "sub/a.jpg": "sub/a.png",
        "b.heic": "b.png",
        "A.JPG": "A_jpg.png",
    }


def test_s3_keys_that_clean_to_one_name_get_outputs_of_their_own():
    plan = plan_outputs(["a//b.jpg", "a/b.jpg", "./c.jpg", "c.jpg"], ".png")
    assert len(set(plan.values())) == 4 and plan["a//b.jpg"] == "a/b.png" and plan["./c.jpg"] == "c.png"


def test_stems_planned_for_the_run_survive_the_trip_through_xcom_and_the_batch():
    """split_batches plans over the whole run; a batch holding only a.png keeps its run-wide name
    (a_png), where a plan of that batch alone would have called it a.png and collided with a.jpg's."""
    files = with_stems([{"path": "a.jpg", "size": 1}, {"path": "a.png", "size": 2}])
    assert [f["output_stem"] for f in files] == ["a", "a_png"] and files[1]["size"] == 2
    second_batch = files[1:]
    assert plan_outputs(["a.png"], ".png", fixed=stems_of(second_batch)) == {"a.png": "a_png.png"}
    assert plan_outputs(["a.png"], ".png") == {"a.png": "a.png"}  # what a batch alone would pick


def test_a_file_without_a_planned_stem_is_planned_around_the_planned_ones():
    """A batch mixing planned files and one without a stem (an older XCom, a hand-built list): the
    unplanned one never takes a name the run already gave another file."""
    fixed = {"x.jpg": "a"}  # planned: x.jpg writes a.png
    plan = plan_outputs(["x.jpg", "a.jpg"], ".png", fixed=fixed)
    assert plan == {"x.jpg": "a.png", "a.jpg": "a_jpg.png"}
    assert plan_stems(["x.jpg", "X.jpg"]) == {"x.jpg": "x", "X.jpg": "X_jpg"}  # case-insensitive filesystems


def test_an_original_gets_its_own_name_unless_taken_then_its_versioned_one(tmp_path):
    store = LocalStorage(tmp_path)
    info = FileInfo("a.jpg", 3, 1.0, "3-1")
    assert unique_name(store, "processed/a.jpg", info) == "processed/a.jpg"
    store.write("processed/a.jpg", b"old")
    taken = unique_name(store, "processed/a.jpg", info)
    assert taken == versioned_name("processed/a.jpg", info) and taken.startswith("processed/a~")
    assert taken.endswith(".jpg") and versioned_name(taken, info) == taken  # idempotent: a retry picks it again
    other = FileInfo("a.jpg", 4, 2.0, "4-2")
    assert versioned_name("processed/a.jpg", other) != taken  # another version, another name


def test_the_files_beside_an_output_share_its_stem():
    assert report_name("sub/b.jpg") == "sub/b.report.json"
    assert sheet_name("sub/b.jpg", "4x6") == "sub/b.sheet-4x6.jpg"
    assert decision_name("sub/b.png") == "sub/b.review.json"
    assert report_name("v1.2/b.jpg") == "v1.2/b.report.json"  # a dot in a folder is not an extension
