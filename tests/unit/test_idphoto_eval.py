"""Every case of the ID-photo evaluation set gets the passport office's verdict, refused by the rule
that should refuse it; and the output-side checks on synthetic mattes."""

from __future__ import annotations

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
        {"source": "c.jpg", "output": "c.jpg", "reasons": []},  # passed: not held
        {"source": "d.jpg", "reasons": ["no face found"]},  # rejected: no photo to approve
    ]
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
    import json

    assert json.loads(run.read("rejected/b.review.json"))["note"] == "retake, please"
    assert settle_review(run, held, ["a.jpg"], "retake, please", "hr-clerk")["approved"] == ["a.jpg"]  # rerun: no-op


def test_review_form_shows_a_thumbnail_where_the_storage_gives_a_url():
    from matting.idphoto.review import review_body

    held = [
        {"photo": "a.jpg", "source": "in/a.jpg", "reasons": ["a hand covers part of the face"]},
        {"photo": "b.jpg", "source": "in/b.jpg", "reasons": ["eyes closed or nearly closed"]},
    ]
    body = review_body(held, {"a.jpg": "https://bucket.example/run/review/a.jpg?X-Amz-Signature=s"}, "s3://bucket/run")
    a_line = body.index("`a.jpg`")
    thumb = body.index("![a.jpg](https://bucket.example/run/review/a.jpg?X-Amz-Signature=s)")
    assert a_line < thumb < body.index("`b.jpg`")  # under its own photo's line
    assert "a hand covers part of the face" in body and "eyes closed" in body
    assert body.count("![") == 1  # b.jpg has no URL: no broken image
    assert "`s3://bucket/run` (`review/` folder)" in body  # and the reviewer is told where it is
    assert "review/` folder" not in review_body(held[:1], {"a.jpg": "https://x/a.jpg"}, "s3://bucket/run")


def test_a_portrait_that_does_not_match_its_checksum_is_refused(tmp_path, monkeypatch):
    from idphoto import portraits

    monkeypatch.setattr(portraits, "CACHE", tmp_path / "cache")
    source, _, who = portraits.PORTRAITS["grace_hopper.jpg"]
    monkeypatch.setitem(portraits.PORTRAITS, "grace_hopper.jpg", (source, "0" * 64, who))
    with pytest.raises(portraits.FetchError, match="sha256"):
        portraits.portrait("grace_hopper.jpg")
    assert not (tmp_path / "cache").exists()  # nothing unverified kept
