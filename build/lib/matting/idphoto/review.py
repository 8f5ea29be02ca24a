"""A person's decision on ID photos held for review (no Airflow import): approved photos join the
run's outputs, rejected ones go to ``rejected/`` with the reviewer's note. Moves never overwrite."""

from __future__ import annotations

import json
import posixpath

from matting.manifest import utc_now
from matting.storage import Storage

REJECT_ALL = "Reject every photo"
DECIDE_LATER = "Decide later (keep them in review/)"


def held_photos(reports: list[dict]) -> list[dict]:
    """The photos strict mode held back (a photo under review/), with why, from the run's reports."""
    held = []
    for report in reports:
        out = report.get("output") or ""
        if out.startswith("review/"):
            held.append({"photo": out[len("review/") :], "source": report.get("source"), "reasons": report["reasons"]})
    return held


def review_body(held: list[dict], links: dict[str, str] | None = None, where: str = "") -> str:
    """The review form's Markdown: each held photo with its reasons, and a thumbnail where the run's
    storage gives the browser a URL (``links``: photo -> URL, e.g. S3 presigned); else where it lies."""
    links = links or {}
    lines = [
        "Choose the photos to **approve**: they join the run's outputs. The others go to `rejected/` "
        "with your note. Each was held because:",
        "",
    ]
    for h in held:
        lines.append(f"- `{h['photo']}` (from `{h['source']}`): {'; '.join(h['reasons'])}")
        url = links.get(h["photo"])
        if url:
            lines.append(f"\n  [![{h['photo']}]({url})]({url})")
    if where and len(links) < len(held):
        lines += ["", f"The photos are in `{where}` (`review/` folder)."]
    return "\n".join(lines)


def settle_review(run: Storage, held: list[dict], chosen: list[str], note: str, reviewer: str | None) -> dict:
    """Apply the reviewer's choice to the run folder; returns what went where."""
    names = {h["photo"] for h in held}
    if DECIDE_LATER in chosen:
        return {"approved": [], "rejected": [], "kept": sorted(names)}
    if REJECT_ALL in chosen and len(chosen) > 1:
        raise ValueError(f"'{REJECT_ALL}' cannot be combined with approving photos: {chosen}")
    unknown = set(chosen) - names - {REJECT_ALL}
    if unknown:
        raise ValueError(f"not held for review: {sorted(unknown)}")
    approved = sorted(names & set(chosen))
    rejected = sorted(names - set(chosen))
    stamp = utc_now()
    for name in approved:
        _move_with_report(run, name, "review", "")
    for name in rejected:
        _move_with_report(run, name, "review", "rejected")
        stem = posixpath.splitext(name)[0]
        decision = {"photo": name, "decision": "rejected", "note": note, "reviewer": reviewer, "at": stamp}
        run.write(f"rejected/{stem}.review.json", json.dumps(decision, indent=1, ensure_ascii=False).encode())
    return {"approved": approved, "rejected": rejected, "kept": []}


def _move_with_report(run: Storage, name: str, src_dir: str, dest_dir: str) -> None:
    stem = posixpath.splitext(name)[0]
    for rel in (name, f"{stem}.report.json"):
        src = posixpath.join(src_dir, rel)
        dst = posixpath.join(dest_dir, rel) if dest_dir else rel
        try:
            run.move(src, dst)
        except FileNotFoundError:
            if not run.exists(dst):  # moved by an earlier attempt of this step, or never there
                raise
