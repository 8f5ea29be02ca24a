"""Every case of the ID-photo evaluation set gets the passport office's verdict, refused by the rule
that should refuse it; and the output-side checks on synthetic mattes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from idphoto.eval_set import CASES, run_case
from matting.idphoto.measure import shoulders, stray_share


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_verdict_matches_the_passport_office(case, id_engine):
    result = run_case(case, id_engine)
    if case.accept:  # certified, or held for a person when a value sits within its noise of a limit
        assert result["verdict"] in ("accept", "review"), (case.why, result["reasons"])
    else:  # never certified, never merely held: refused by the rule that should refuse it
        assert result["verdict"] == "refuse", (case.why, result["reasons"])
        assert set(case.caught_by) & set(result["failed"]), (case.caught_by, result["failed"])
    if result["verdict"] != "accept":
        assert result["reasons"] and all(result["reasons"])  # a plain-language reason, always
    if case.person != "Hopper":  # the only covered head: no other case, refused or not, is called a hat
        assert "head_covering" not in result["failed"] + result["borderline"], (result["values"], result["reasons"])


def test_a_piece_of_someone_else_left_by_the_matte_is_counted():
    alpha = np.zeros((400, 300), np.uint8)
    alpha[120:400, 60:240] = 255  # the subject, head and shoulders
    assert stray_share(alpha) == (0.0, 0)
    alpha[300:360, 0:25] = 255  # another person's elbow at the edge, not joined to the subject
    share, pieces = stray_share(alpha)
    assert pieces == 1 and share == pytest.approx(60 * 25 / alpha.size)


def test_shoulders_present_and_their_line():
    alpha = np.zeros((400, 300), np.uint8)
    alpha[40:260, 90:210] = 255  # a head only
    share, _ = shoulders(alpha, chin_y=250)
    assert share == 0.0
    alpha[300:, 10:290] = 255  # shoulders across the bottom
    share, tilt = shoulders(alpha, chin_y=250)
    assert share > 0.9 and tilt == 0.0


def test_review_decisions_move_photos_and_never_lose_one(tmp_path):
    from matting.idphoto.review import DECIDE_LATER, REJECT_ALL, held_photos, settle_review
    from matting.storage import LocalStorage

    run = LocalStorage(tmp_path)
    reports = [
        {"source": "a.jpg", "output": "review/a.jpg", "reasons": ["mouth open"]},
        {"source": "b.jpg", "output": "review/b.jpg", "reasons": ["eyes closed"]},
        {"source": "c.jpg", "output": "c.jpg", "passed": True, "reasons": []},  # passed: not held
        {"source": "d.jpg", "reasons": ["no face found"]},  # rejected: no photo to approve
    ]
    run.write("manifest.json", json.dumps({"photos": reports, "counts": {"files": 4, "ok": 1, "failed": 3}}).encode())
    held = held_photos(reports)
    assert [h["photo"] for h in held] == ["a.jpg", "b.jpg"]
    for name in ("a", "b"):
        run.write(f"review/{name}.jpg", name.encode())
        run.write(f"review/{name}.report.json", b"{}")
    assert settle_review(run, held, [DECIDE_LATER], "", None)["kept"] == ["a.jpg", "b.jpg"]
    with pytest.raises(ValueError):
        settle_review(run, held, [REJECT_ALL, "a.jpg"], "", "x")
    with pytest.raises(ValueError):
        settle_review(run, held, ["z.jpg"], "", "x")
    assert run.exists("review/a.jpg") and run.exists("review/b.jpg")  # refused answers moved nothing
    out = settle_review(run, held, ["a.jpg"], "retake, please", "hr-clerk")
    assert out == {"approved": ["a.jpg"], "rejected": ["b.jpg"], "kept": []}
    assert run.read("a.jpg") == b"a" and run.read("rejected/b.jpg") == b"b" and not run.exists("review/a.jpg")
    assert json.loads(run.read("rejected/b.review.json"))["note"] == "retake, please"
    manifest = json.loads(run.read("manifest.json"))  # the results page shows what was decided
    by_source = {r["source"]: r for r in manifest["photos"]}
    assert by_source["a.jpg"]["output"] == "a.jpg" and by_source["a.jpg"]["review"]["decision"] == "approved"
    assert by_source["b.jpg"]["output"] == "rejected/b.jpg" and by_source["b.jpg"]["review"]["note"] == "retake, please"
    assert manifest["counts"] == {"files": 4, "ok": 2, "failed": 2}
    from matting.results.run import items_from_manifest

    status = {i.name: i.status for i in items_from_manifest(manifest, "")}
    assert status == {"a.jpg": "ok", "b.jpg": "refused", "c.jpg": "ok", "d.jpg": "refused"}
    assert settle_review(run, held, ["a.jpg"], "retake, please", "hr-clerk")["approved"] == ["a.jpg"]  # rerun: no-op
    assert json.loads(run.read("manifest.json")) == manifest


def test_a_photo_picked_with_decide_later_still_selected_is_approved_and_the_rest_kept(tmp_path):
    """The form starts with "decide later" selected; a reviewer who adds one photo approves it."""
    from matting.idphoto.review import DECIDE_LATER, held_photos, settle_review
    from matting.storage import LocalStorage

    run = LocalStorage(tmp_path)
    reports = [{"source": f"{n}.jpg", "output": f"review/{n}.jpg", "reasons": ["x"]} for n in ("a", "b")]
    for name in ("a", "b"):
        run.write(f"review/{name}.jpg", name.encode())
        run.write(f"review/{name}.report.json", b"{}")
    out = settle_review(run, held_photos(reports), [DECIDE_LATER, "a.jpg"], "", "hr-clerk")
    assert out == {"approved": ["a.jpg"], "rejected": [], "kept": ["b.jpg"]}
    assert run.exists("a.jpg") and run.exists("review/b.jpg") and not run.exists("rejected")


def test_review_form_shows_every_held_photo_served_by_the_results_pages():
    from matting.idphoto.review import held_photos, review_body
    from matting.results.run import held_views, items_from_manifest

    reports = [
        {"source": "in/ok.jpg", "output": "ok.jpg", "passed": True, "reasons": []},
        {
            "source": "in/a.jpg",
            "output": "review/a.jpg",
            "passed": False,
            "reasons": ["a hand covers part of the face"],
        },
        {"source": "in/b.jpg", "output": "review/b.jpg", "passed": False, "reasons": ["eyes closed or nearly closed"]},
    ]
    held = held_photos(reports)
    items = items_from_manifest({"photos": reports}, "2026/12/02/run")
    views = held_views(items, "/matting/runs/id_photo_batch/manual__1")
    assert set(views) == {"a.jpg", "b.jpg"}  # whatever the storage: no presigned URL needed
    body = review_body(held, views, "sftp:///srv/id/2026/12/02/run")
    a_line, b_line = body.index("`a.jpg`"), body.index("`b.jpg`")
    thumb_a = body.index(f"![held photo](/matting/runs/id_photo_batch/manual__1/thumb/1/after.jpg?v={items[1].key})")
    assert a_line < thumb_a < b_line  # under its own photo's line
    assert "(/matting/runs/id_photo_batch/manual__1/photo/2)" in body[b_line:]  # full size before/after
    assert "a hand covers part of the face" in body and "eyes closed" in body
    assert body.count("![") == 2 and "review/` folder" not in body
    # a photo the manifest does not list (cannot be shown): the reviewer is told where it lies
    partial = review_body(held, {"a.jpg": views["a.jpg"]}, "sftp:///srv/id/2026/12/02/run")
    assert "`sftp:///srv/id/2026/12/02/run` (`review/` folder)" in partial


def test_a_portrait_that_does_not_match_its_checksum_is_refused(tmp_path, monkeypatch):
    from idphoto import portraits

    monkeypatch.setattr(portraits, "CACHE", tmp_path / "cache")
    source, _, who = portraits.PORTRAITS["grace_hopper.jpg"]
    monkeypatch.setitem(portraits.PORTRAITS, "grace_hopper.jpg", (source, "0" * 64, who))
    with pytest.raises(portraits.FetchError, match="sha256"):
        portraits.portrait("grace_hopper.jpg")
    assert not (tmp_path / "cache").exists()  # nothing unverified kept


def test_a_piece_of_the_old_backdrop_is_counted_and_the_outline_is_not():
    from matting.idphoto.person import remnant_share

    alpha = np.zeros((600, 600), np.uint8)
    alpha[150:, 150:450] = 255  # the subject as the matte keeps it
    person = np.zeros((600, 600), np.float32)
    person[150:, 153:447] = 1.0  # the person network's outline, 3 px inside the matte's on each side
    assert remnant_share(alpha, person) == (0.0, 0)  # the two outlines disagree by a sliver: nothing
    alpha[420:520, 0:150] = 255  # a 150 x 100 stripe of the backdrop joined to the shoulder
    share, pieces = remnant_share(alpha, person)
    assert pieces == 1 and share == pytest.approx(150 * 100 / alpha.size, rel=0.05)
