"""A person's decision on ID photos held for review (no Airflow import): approved photos join the
run's outputs, rejected ones go to ``rejected/`` with the reviewer's note. Moves never overwrite."""

from __future__ import annotations

import json
import posixpath
import re

from matting import layout
from matting.pipeline.manifest import accepted, utc_now
from matting.pipeline.naming import decision_name, report_name
from matting.results.index import publish_manifest
from matting.storage import Storage

REJECT_ALL = "Reject every photo"
DECIDE_LATER = "Decide later (keep them in review/)"


def held_photos(reports: list[dict]) -> list[dict]:
    """The photos strict mode held back (a photo under review/), with why, from the run's reports."""
    held = []
    for report in reports:
        out = report.get("output") or ""
        if (name := layout.in_review(out)) is not None:
            held.append({"photo": name, "source": report.get("source"), "reasons": report["reasons"]})
    return held


MAX_SHOWN_NAME = 120  # characters of a file name the review text shows (the rest: an ellipsis)


def md_literal(text: object, limit: int = MAX_SHOWN_NAME) -> str:
    """``text`` (a file name someone uploaded) as a Markdown code span that shows it verbatim and can
    never become a link, an image, HTML or a new block: control characters (newlines included) become
    ``?``, it is cut to ``limit`` characters, and the fence is one backtick longer than any run of
    backticks inside (CommonMark), padded with a space where the name starts or ends with one."""
    raw = "".join("?" if (ord(c) < 32 or 127 <= ord(c) < 160 or c in "\u2028\u2029") else c for c in str(text))
    if len(raw) > limit:
        raw = raw[: limit - 1] + "\u2026"
    fence = "`" * (max((len(run) for run in re.findall(r"`+", raw)), default=0) + 1)
    pad = " " if raw[:1] in ("`", " ") or raw[-1:] in ("`", " ") or not raw else ""
    return f"{fence}{pad}{raw}{pad}{fence}"


def review_body(held: list[dict], views: dict[str, tuple[str, str]] | None = None, where: str = "") -> str:
    """The review form's Markdown: each held photo with its reasons and, where ``views`` has it
    (photo -> (thumbnail URL, comparison page URL), served by the results pages behind Airflow's
    login), its thumbnail linking to the full-size before/after; else where the photos lie. Every name
    and reason is shown as a literal (``md_literal``): an uploaded file's name is not Markdown."""
    views = views or {}
    lines = [
        "Choose the photos to **approve**: they join the run's outputs. The others go to `rejected/` "
        "with your note. Each was held because:",
        "",
    ]
    for h in held:
        reasons = md_literal("; ".join(str(r) for r in h["reasons"]), limit=1000)
        lines.append(f"- {md_literal(h['photo'])} (from {md_literal(h['source'])}): {reasons}")
        if h["photo"] in views:
            thumb, page = views[h["photo"]]
            # our own URLs: the DAG and run ids in them are percent-quoted (``results_path``)
            lines.append(f"\n  [![held photo]({thumb})]({page}) [before / after, full size]({page})")
    if where and len(views) < len(held):
        lines += ["", f"The photos are in {md_literal(where, limit=500)} (`review/` folder)."]
    return "\n".join(lines)


def settle_review(run: Storage, held: list[dict], chosen: list[str], note: str, reviewer: str | None) -> dict:
    """Apply the reviewer's choice to the run folder and record it in the run's ``manifest.json``
    (so the results pages show what was decided); returns what went where.

    The photos chosen are approved. The others are rejected, unless "decide later" is chosen too
    (the form starts with it selected): then they stay in ``review/``. "Reject every photo" cannot
    be combined with approving one."""
    names = {h["photo"] for h in held}
    if REJECT_ALL in chosen and len(chosen) > 1:
        raise ValueError(f"'{REJECT_ALL}' cannot be combined with approving photos: {chosen}")
    unknown = set(chosen) - names - {REJECT_ALL, DECIDE_LATER}
    if unknown:
        raise ValueError(f"not held for review: {sorted(unknown)}")
    approved = sorted(names & set(chosen))
    rest = sorted(names - set(chosen))
    kept, rejected = (rest, []) if DECIDE_LATER in chosen else ([], rest)
    stamp = utc_now()
    decisions = {}
    for name in approved:
        _move_with_report(run, name, layout.REVIEW, "")
        decisions[name] = {"decision": "approved", "reviewer": reviewer, "note": "", "at": stamp}
    for name in rejected:
        _move_with_report(run, name, layout.REVIEW, layout.REJECTED)
        decision = {"photo": name, "decision": "rejected", "note": note, "reviewer": reviewer, "at": stamp}
        run.write(
            f"{layout.REJECTED}/{decision_name(name)}", json.dumps(decision, indent=1, ensure_ascii=False).encode()
        )
        decisions[name] = {"decision": "rejected", "reviewer": reviewer, "note": note, "at": stamp}
    _record_in_manifest(run, decisions)
    return {"approved": approved, "rejected": rejected, "kept": kept}


def _record_in_manifest(run: Storage, decisions: dict[str, dict]) -> None:
    """Point each decided photo's report at where the photo is now and add the decision; the run's
    counts follow (an approved photo is ok). A rerun finds nothing left in ``review/`` to change."""
    if not decisions or not run.exists(layout.MANIFEST):
        return
    manifest = json.loads(run.read(layout.MANIFEST))
    changed = False
    for report in manifest.get("photos") or []:
        out = str(report.get("output") or "")
        name = layout.in_review(out)
        if name in decisions:
            decision = decisions[name]
            report["output"] = name if decision["decision"] == "approved" else f"{layout.REJECTED}/{name}"
            report["review"] = decision
            changed = True
    if not changed:
        return
    photos = manifest.get("photos") or []
    ok = sum(1 for r in photos if accepted(r))
    manifest["counts"] = {**(manifest.get("counts") or {}), "ok": ok, "failed": len(photos) - ok}
    publish_manifest(run, manifest)  # and the results pages' index, which shows the decisions too


def _move_with_report(run: Storage, name: str, src_dir: str, dest_dir: str) -> None:
    for rel in (name, report_name(name)):
        src = posixpath.join(src_dir, rel)
        dst = posixpath.join(dest_dir, rel) if dest_dir else rel
        try:
            run.move(src, dst)
        except FileNotFoundError:
            if not run.exists(dst):  # moved by an earlier attempt of this step, or never there
                raise
