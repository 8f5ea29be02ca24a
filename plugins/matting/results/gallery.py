"""A run's manifest entries as the results pages show them: one ``Item`` per input, with every path it
names checked (outputs inside the run's folder, originals inside the source). Pure core, no Airflow
import: the full parse (``items_from_manifest``) and the paged index (``matting.results.index``) derive
their items here, entry by entry, so both show the same cards."""

from __future__ import annotations

import hashlib
import json
import posixpath
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from matting import layout
from matting.pipeline.manifest import accepted
from matting.storage import UnsafePath, safe_relpath

# the page's filters: which statuses each one shows (None: all)
VIEWS: dict[str, tuple[str, ...] | None] = {"all": None, "failed": ("failed", "refused"), "held": ("held",)}


@dataclass
class Item:
    """One input of the run as the gallery shows it."""

    index: int
    name: str
    status: str  # ok | failed | held (ID photo waiting for review) | refused (ID photo)
    reason: str = ""  # quarantine or refusal reason, as recorded
    before: str | None = None  # path in the source (the moved original), checked
    after: str | None = None  # path under the run folder, checked
    rules: list[dict] = field(default_factory=list)  # ID photos: the report's rule table
    details: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        """What identifies this item's images whatever its position: name, both paths and status."""
        raw = json.dumps([self.name, self.before, self.after, self.status])
        return hashlib.sha256(raw.encode()).hexdigest()[:16]

    def views(self) -> list[str]:
        """The filters that show this item."""
        return [name for name, shown in VIEWS.items() if shown is None or self.status in shown]


def _inside_run(rel: str | None, run_prefix: str) -> str | None:
    """``rel`` relative to the run folder when it lies inside it, else None (never a path out)."""
    if not rel:
        return None
    try:
        clean = safe_relpath(rel)
    except UnsafePath:
        return None
    if run_prefix and clean.startswith(run_prefix + "/"):
        clean = clean[len(run_prefix) + 1 :]
    return clean if not clean.startswith("../") else None


def _in_source(rel: str | None) -> str | None:
    if not rel:
        return None
    try:
        return safe_relpath(rel)
    except UnsafePath:
        return None


def _saved_as(source: str, after: str | None) -> dict:
    """``{"saved as": name}`` where the output's name is not the source's (cut to fit the destination,
    made portable, or a clash resolved), so the page shows both; else nothing."""
    if not after:
        return {}
    name = (
        after.split("/", 1)[1]
        if after.startswith(tuple(f"{d}/" for d in (layout.OUTPUTS, layout.REVIEW, layout.REJECTED)))
        else after
    )
    same = posixpath.splitext(name)[0] == posixpath.splitext(source)[0]
    return {} if same else {"saved as": name}


def file_item(i: int, f: dict, run_prefix: str) -> Item:
    """A background-removal record (``files[i]``) as an item."""
    reason = f"{f.get('error_type')}: {f.get('error')}" if f.get("status") != "ok" else ""
    outputs = f.get("outputs") or []
    item = Item(
        index=i,
        name=str(f.get("source", "")),
        status="ok" if f.get("status") == "ok" else "failed",
        reason=reason,
        before=_in_source(f.get("moved_to") or f.get("source")),
        after=_inside_run(outputs[0], run_prefix) if outputs else None,
        details={
            k: f.get(k) for k in ("model", "moved_to", "kept_reason", "width", "height", "reused_from") if f.get(k)
        },
    )
    item.details.update(_saved_as(item.name, item.after))
    return item


def photo_item(i: int, r: dict) -> Item:
    """An ID-photo report (``photos[i]``) as an item."""
    out = r.get("output")
    review = r.get("review") if isinstance(r.get("review"), dict) else {}
    if accepted(r):
        status = "ok"
    elif out and layout.in_review(str(out)) is not None:
        status = "held"
    else:
        status = "refused"
    reasons = r.get("reasons") or []
    details = {k: r.get(k) for k in ("spec", "spec_title", "head_ratio", "file_kb") if r.get(k) is not None}
    if review:
        by = f" by {review['reviewer']}" if review.get("reviewer") else ""
        note = f": {review['note']}" if review.get("note") else ""
        details["review"] = f"{review.get('decision')}{by} at {review.get('at')}{note}"
    item = Item(
        index=i,
        name=str(r.get("source", "")),
        status=status,
        reason="; ".join(str(x) for x in reasons) or str(r.get("rejected") or ""),
        before=_in_source(r.get("source")),
        after=_inside_run(out, ""),
        rules=[x for x in r.get("rules") or [] if isinstance(x, dict)],
        details=details,
    )
    item.details.update(_saved_as(item.name, item.after))
    return item


KINDS = ("files", "photos")  # a manifest's lists of entries, in the order the gallery shows them


def entry_item(kind: str, i: int, entry: dict, run_prefix: str) -> Item:
    return file_item(i, entry, run_prefix) if kind == "files" else photo_item(i, entry)


def manifest_entries(manifest: dict) -> Iterator[tuple[str, int, dict]]:
    """``(kind, index, entry)`` for every input the manifest records, in gallery order."""
    for kind in KINDS:
        for i, entry in enumerate(manifest.get(kind) or []):
            yield kind, i, entry


def items_from_manifest(manifest: dict, run_prefix: str) -> list[Item]:
    """Gallery items for a background-removal manifest (``files``) or an ID-photo one (``photos``)."""
    return [entry_item(kind, i, entry, run_prefix) for kind, i, entry in manifest_entries(manifest)]


class Tally:
    """The run's counts as the page shows them, item by item: files, per status, and reused."""

    def __init__(self) -> None:
        self.out: dict[str, int] = {"files": 0}
        self.reused = 0

    def add(self, item: Item) -> None:
        self.out["files"] += 1
        self.out[item.status] = self.out.get(item.status, 0) + 1
        self.reused += bool(item.details.get("reused_from"))

    def result(self) -> dict[str, int]:
        # reused: copies from the result cache, among the ok ones
        return {**self.out, "reused": self.reused} if self.reused else dict(self.out)


def counts(items: Iterable[Item]) -> dict[str, int]:
    tally = Tally()
    for item in items:
        tally.add(item)
    return tally.result()
