"""Every name a run gives a file (matting.pipeline.naming): outputs planned once, originals never overwritten."""

from __future__ import annotations

import re

import pytest
from matting.idphoto.sheet import SHEETS_IN
from matting.pipeline.naming import (
    COMPANION_ROOM,
    NOTE_SUFFIX,
    cut_utf8,
    decision_name,
    fit_path,
    plan_outputs,
    plan_stems,
    portable_path,
    report_name,
    sheet_name,
    stems_of,
    unique_name,
    versioned_name,
    with_stems,
)
from matting.storage import FileInfo, LocalStorage, S3Storage
from matting.storage.atomic import temp_name
from matting.storage.base import NameLimits


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


# --- names a destination can hold (issue #37) ----------------------------------------------------

LOCAL = NameLimits(name_bytes=255, path_bytes=None)
UNDER = "2026/12/03/scheduled__2026-12-03T07_00_00_00_00/outputs"


def _nbytes(text: str) -> int:
    return len(text.encode())


def _companions(out: str) -> list[str]:
    return [out, report_name(out), decision_name(out), *(sheet_name(out, size) for size in SHEETS_IN)]


def test_a_name_too_long_for_the_destination_is_cut_and_keeps_room_for_its_companions():
    key = "photos/" + "n" * 300 + ".jpg"
    out = plan_outputs([key], ".png", limits=LOCAL, under=UNDER)[key]
    folder, name = out.split("/")
    assert folder == "photos" and name.startswith("n" * 200) and re.fullmatch(r"n+-[0-9a-f]{8}\.png", name)
    assert all(_nbytes(c.rsplit("/", 1)[1]) <= 255 for c in _companions(out))  # report, sheets, decision
    assert max(_nbytes(c.rsplit("/", 1)[1]) for c in _companions(out)) == 255  # and no shorter than needed
    short = "photos/" + "n" * 200 + ".jpg"
    assert plan_outputs([short], ".png", limits=LOCAL)[short] == "photos/" + "n" * 200 + ".png"  # fits: kept


def test_the_companion_room_covers_every_print_sheet():
    assert all(len(sheet_name("", size)) <= COMPANION_ROOM for size in SHEETS_IN)


def test_a_multibyte_name_is_cut_between_characters():
    key = "folder/" + "é" * 130 + ".jpg"  # 260 bytes: over a folder's 255
    out = plan_outputs([key], ".png", limits=LOCAL, under=UNDER)[key]
    name = out.split("/")[1]
    stem = name[: -len("-12345678.png")]
    assert set(stem) == {"é"} and name.encode().decode() == name
    assert _nbytes(report_name(name)) <= 255 and _nbytes(sheet_name(name, "5x7")) >= 254  # all but a half é
    assert cut_utf8("aé" * 3, 2) == "a" and cut_utf8("éé", 3) == "é" and cut_utf8("ab", 9) == "ab"


def test_shortened_names_stay_unique_also_without_regard_to_case():
    long = "n" * 300
    keys = [f"{long}a.jpg", f"{long}b.jpg", f"{long}.jpg", f"{long}.png", f"{long.upper()}.jpg"]
    plan = plan_outputs(keys, ".png", limits=LOCAL)
    assert len({v.lower() for v in plan.values()}) == len(keys)
    assert all(_nbytes(v) + COMPANION_ROOM - 4 <= 255 for v in plan.values())
    # a name planned earlier that a new one would shorten to: the clash is resolved, still within limits
    first = plan[keys[0]]
    again = plan_outputs([keys[0]], ".png", fixed={"other.jpg": first[:-4]}, limits=LOCAL)[keys[0]]
    assert again != first and again.lower() != first.lower() and again.endswith("_jpg.png")
    assert _nbytes(again) + COMPANION_ROOM - 4 <= 255


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("x\\..\\y.jpg", "x_.._y.png"),  # a Windows-style name is one file, never folders
        ('a:b*c?d"e<f>g|h.jpg', "a_b_c_d_e_f_g_h.png"),
        ("tab\there\nnew\rline\x7f\x00.jpg", "tab_here_new_line__.png"),
        ("dots.../spaces  /end. .jpg", "dots/spaces/end.png"),
        (".../. ./x.jpg", "_/_/x.png"),  # nothing left of a folder's name: never empty, . or ..
        ("a//./b/../c.jpg", "a/b/c.png"),
    ],
)
def test_names_that_are_not_portable_get_safe_names(key, expected):
    out = plan_outputs([key], ".png")[key]
    assert out == expected
    assert all(p not in ("", ".", "..") and p == p.rstrip(". ") for p in out.split("/"))


def test_plans_are_deterministic_and_the_run_wide_stems_survive_the_batch():
    keys = ["photos/" + "n" * 300 + ".jpg", "folder/" + "é" * 130 + ".jpg", "a:b.jpg", "a_b.jpg", "x\\y.jpg"]
    first = plan_outputs(keys, ".png", limits=LOCAL, under=UNDER)
    assert plan_outputs(keys, ".png", limits=LOCAL, under=UNDER) == first  # a retried batch: the same names
    files = with_stems([{"path": k} for k in keys])  # split_batches: before the destination is known
    batch = plan_outputs(keys[1:2], ".png", fixed=stems_of(files[1:2]), limits=LOCAL, under=UNDER)
    assert batch == {keys[1]: first[keys[1]]}
    assert {k: s + ".png" for k, s in stems_of(files).items()} == first
    assert first["a:b.jpg"] == "a_b.png" and first["a_b.jpg"] == "a_b_jpg.png"  # clashes after sanitising


def test_the_path_budget_of_an_s3_key_counts_the_prefix_and_the_run_folder():
    s3 = S3Storage("bucket", "archive/out").name_limits()
    assert s3 == NameLimits(name_bytes=None, path_bytes=1024 - len("archive/out/"))
    single = "n" * 300 + ".jpg"  # S3 has no limit per name: kept whole
    assert plan_outputs([single], ".png", limits=s3, under=UNDER)[single] == "n" * 300 + ".png"
    deep = "/".join(f"{i}" * 120 for i in range(8)) + "/" + "é" * 100 + ".jpg"  # 1,172 bytes
    out = plan_outputs([deep], ".png", limits=s3, under=UNDER)[deep]
    longest = max(_nbytes(c) for c in _companions(out))
    assert _nbytes(UNDER) + 1 + longest <= s3.path_bytes < _nbytes(UNDER) + 1 + longest + 10
    assert out.count("/") == 8 and out.endswith(".png")
    # the run folder is what the caller says it is: a longer one leaves less to the name
    longer = plan_outputs([deep], ".png", limits=s3, under="my_dag/" + UNDER)[deep]
    assert _nbytes(longer) == _nbytes(out) - len("my_dag/")


def test_an_original_moved_within_its_source_fits_it_with_its_version_and_its_note(tmp_path):
    store = LocalStorage(tmp_path)
    name = "n" * 246 + ".jpg"  # 250 bytes: a file a folder can hold
    store.write(name, b"abc")
    info = store.stat(name)
    assert unique_name(store, f"processed/{name}", info) == f"processed/{name}"  # fits: its own name
    store.write(f"processed/{name}", b"old")
    taken = unique_name(store, f"processed/{name}", info)
    assert taken.startswith("processed/nnn") and re.search(r"-[0-9a-f]{8}~[0-9a-f]{8}\.jpg$", taken)
    assert _nbytes(taken.split("/")[1]) == 255 and versioned_name(taken, info, store.name_limits()) == taken
    quarantined = unique_name(store, f"quarantine/{name}", info, room=len(NOTE_SUFFIX))
    assert _nbytes(quarantined.split("/")[1] + NOTE_SUFFIX) <= 255
    store.move(name, quarantined, expect=info)  # the real folder takes it, and its note beside it
    store.write(quarantined + NOTE_SUFFIX, b"{}")
    assert store.read(quarantined) == b"abc"


def test_a_copy_of_an_original_on_another_storage_is_portable(tmp_path):
    name = "in/" + "é" * 130 + "\\x:y.jpg"
    rel = portable_path(name, LocalStorage(tmp_path).name_limits(), room=len(NOTE_SUFFIX), under="quarantine")
    assert rel.startswith("in/éé") and "\\" not in rel and ":" not in rel and rel.endswith(".jpg")
    assert _nbytes(rel.split("/")[1] + NOTE_SUFFIX) <= 255


def test_temp_names_of_writes_fit_beside_a_name_at_the_limit():
    for name in ("n" * 255, "é" * 127 + "n"):
        tmp = temp_name(name, "12345678")
        assert _nbytes(tmp) <= 255 and tmp.startswith(".") and tmp.endswith(".tmp-12345678")
        assert tmp.encode().decode() == tmp


def test_an_original_s3_key_keeps_its_own_name_when_it_fits():
    s3 = S3Storage("bucket", "in").name_limits()
    info = FileInfo("a//b.jpg", 1, 1.0, "etag")
    assert fit_path("processed/a//b.jpg", s3) == "processed/a//b.jpg"  # a key of its own, not a/b.jpg
    assert versioned_name("processed/a//b.jpg", info, s3).startswith("processed/a//b~")
