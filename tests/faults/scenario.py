"""Fault-injection scenarios: shared inputs, snapshots, and the rows of the table `make faults` prints."""

from __future__ import annotations

from pathlib import Path

from audit import Input

ROOT = Path(__file__).resolve().parents[2]
ROWS: list[dict] = []

GOOD = [ROOT / "include" / "samples" / n for n in ("astronaut.jpg", "coffee.jpg", "rocket.jpg")] + sorted(
    (ROOT / "tests" / "data").glob("*.jpg")
)


def scenario_inputs() -> list[Input]:
    """Eight real photos (in a sub-folder too) and three bad files, as a user drops them."""
    items = [Input(f"{'people/' if 'portrait' in p.name else ''}{p.name}", p.read_bytes(), True) for p in GOOD]
    astro = GOOD[0].read_bytes()
    items += [
        Input("broken.jpg", astro[: len(astro) // 3], False),
        Input("empty.jpg", b"", False),
        Input("notes.jpg", b"meeting notes, not a photo", False),
    ]
    return items


def local_snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def s3_snapshot(client, bucket: str, prefix: str) -> dict[str, bytes]:
    out = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
        for obj in page.get("Contents", []):
            out[obj["Key"][len(prefix) + 1 :]] = client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
    return out
