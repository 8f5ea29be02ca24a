"""The audit every fault scenario ends with: each input is exactly one of
{output + processed original, quarantined with a true reason, untouched for the next run}, and each
output in the destination is exactly one input's (never shared by two, never one without its record
once the run is finished).

Inputs are identified by content (sha256) and original path, so a re-upload under the same name is a
separate input. Works on any pair of storages through plain {path: bytes} snapshots."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

CONTENT_ERRORS = {
    "empty_file",
    "not_an_image",
    "truncated_image",
    "corrupt_image",
    "image_too_large",
    "file_too_large",
    "unwritable_name",  # a name the destination cannot hold: the photo's own problem (issue #37)
}


@dataclass
class Input:
    path: str
    data: bytes
    good: bool
    superseded: bool = False  # overwritten later by the test's own re-upload: its original is gone by design
    expect: str | None = None  # a bad input's true reason (error code), where the scenario knows it

    @property
    def sha(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class Audit:
    outcome: dict[str, str] = field(default_factory=dict)  # "path@sha8" -> done|quarantined|untouched|lost|...
    problems: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)  # outputs no record claims (a write the run never recorded)

    def count(self, what: str) -> int:
        return sum(1 for o in self.outcome.values() if o == what)

    @property
    def lost(self) -> int:
        return self.count("lost")

    @property
    def duplicated(self) -> int:
        return self.count("duplicated")

    @property
    def good_quarantined(self) -> int:
        return self.count("good quarantined")

    def assert_clean(self, *, finished: bool) -> None:
        """Nothing lost, duplicated or wrongly quarantined; ``finished``: nothing left untouched either."""
        bad = [f"{k}: {v}" for k, v in self.outcome.items() if v in ("lost", "duplicated", "good quarantined")]
        assert not bad and not self.problems, "\n".join(bad + self.problems)
        if finished:
            left = [k for k, v in self.outcome.items() if v == "untouched"]
            assert not left, f"left untouched after the final attempt: {left}"
            assert not self.orphans, f"outputs no photo's record claims after the final attempt: {self.orphans}"


def _records(dest: dict[str, bytes]) -> list[dict]:
    return [json.loads(v) for k, v in dest.items() if "/records/" in k and k.endswith(".json")]


def audit(inputs: list[Input], source: dict[str, bytes], dest: dict[str, bytes], kept: bool = False) -> Audit:
    """``source``/``dest``: every file now under the source and destination roots. ``kept``: a
    read-only source, where originals stay and failed ones are copied to the destination's quarantine/."""
    result = Audit()
    records = _records(dest)
    claims: dict[str, int] = {}  # output -> how many ok records name it
    for r in records:
        if r.get("status") == "ok":
            for out in r.get("outputs") or []:
                claims[out] = claims.get(out, 0) + 1
    result.orphans = sorted(p for p in dest if "/outputs/" in p and p not in claims)
    by_sha: dict[str, list[str]] = {}
    for path, data in source.items():
        by_sha.setdefault(hashlib.sha256(data).hexdigest(), []).append(path)
    for item in inputs:
        key = f"{item.path}@{item.sha[:8]}"
        mine = [
            r
            for r in records
            if r["source"] == item.path
            and (
                r.get("source_sha256") == item.sha
                or (r.get("source_sha256") is None and r["source_size"] == len(item.data))
            )
        ]
        where = by_sha.get(item.sha, [])
        at_home = item.path in where and not kept
        moved = [p for p in where if p != item.path]
        if len(mine) > 1:
            result.outcome[key] = "duplicated"
            continue
        if not mine:
            if at_home or (kept and item.path in where):
                result.outcome[key] = "untouched"
            elif item.superseded:
                result.outcome[key] = "superseded"
            else:
                result.outcome[key] = "lost"
                result.problems.append(f"{key}: no record and not in the source any more ({where})")
            continue
        rec = mine[0]
        if rec["status"] == "ok":
            out = rec["outputs"][0] if rec["outputs"] else None
            if not out or out not in dest or not dest[out]:
                result.outcome[key] = "lost"
                result.problems.append(f"{key}: recorded ok but its output {out!r} is missing")
            elif claims[out] > 1:  # two photos, one output: one of them is lost
                result.outcome[key] = "lost"
                result.problems.append(f"{key}: its output {out!r} is also another photo's")
            elif kept:
                result.outcome[key] = "done" if item.path in where else ("superseded" if item.superseded else "lost")
            elif len(moved) == 1 and moved[0].startswith("processed/") and not at_home:
                result.outcome[key] = "done"
            elif at_home and not moved and rec.get("moved_to"):  # killed between record and move
                result.outcome[key] = "untouched"  # the record names its target; the retry moves it
            elif item.superseded and not where:
                result.outcome[key] = "done (original superseded)"
            else:
                result.outcome[key] = "duplicated" if len(where) > 1 else "lost"
                result.problems.append(f"{key}: ok, original found at {where}")
            continue
        # failed: a true content reason, a copy of the original in quarantine/ and a note saying why
        if rec["error_type"] not in CONTENT_ERRORS:  # blamed on the file for a fault that was not its own
            result.outcome[key] = "good quarantined" if item.good else "lost"
            result.problems.append(f"{key}: settled as failed for a non-content reason: {rec['error_type']}")
            continue
        if not kept and at_home and not [p for p in where if p.startswith("quarantine/")]:
            result.outcome[key] = "untouched"  # recorded as failed, killed before the move: the retry moves it
            continue
        store = dest if kept else source
        copies = [p for p in (by_sha.get(item.sha, []) if not kept else []) if p.startswith("quarantine/")]
        if kept:
            copies = [
                p for p, d in dest.items() if p.startswith("quarantine/") and hashlib.sha256(d).hexdigest() == item.sha
            ]
            if rec["error_type"] == "file_too_large":
                copies = [
                    p[: -len(".error.json")]
                    for p in dest
                    if p.startswith("quarantine/")
                    and p.endswith(".error.json")
                    and json.loads(dest[p])["source"] == item.path
                ]
        notes = [json.loads(store[c + ".error.json"]) for c in copies if c + ".error.json" in store]
        if len(copies) != 1 or len(notes) != 1:
            result.outcome[key] = "duplicated" if len(copies) > 1 else "lost"
            result.problems.append(f"{key}: quarantined copies {copies}, notes {len(notes)}")
        elif notes[0]["error_type"] != rec["error_type"]:
            result.outcome[key] = "lost"
            result.problems.append(f"{key}: note says {notes[0]['error_type']}, record {rec['error_type']}")
        elif item.expect and rec["error_type"] != item.expect:
            result.outcome[key] = "good quarantined" if item.good else "lost"
            result.problems.append(f"{key}: quarantined as {rec['error_type']}, its true reason is {item.expect}")
        else:
            result.outcome[key] = "good quarantined" if item.good else "quarantined"
    return result
