"""Fault-injection scenarios: shared inputs, snapshots, and the rows of the table `make faults` prints."""

from __future__ import annotations

import io
from pathlib import Path

from audit import Input
from PIL import Image

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


def _variant(path: Path, quality: int) -> bytes:
    """The photo re-encoded: the same picture as other bytes (the audit tells inputs apart by content)."""
    buf = io.BytesIO()
    Image.open(path).convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


LONG_ASCII = "photos/" + "n" * 300 + ".jpg"  # a 304-byte name: no folder or SFTP server holds it
LONG_UTF8 = "folder/" + "é" * 130 + ".jpg"  # 130 characters, 264 bytes
NEAR_ASCII = "n" * 247 + ".jpg"  # 251 bytes: a folder holds it, not its .error.json or version suffix
NEAR_UTF8 = "dir/" + "é" * 125 + ".jpg"  # 254 bytes
# an S3 key of 1,018 bytes (1,021 with the source's in/): processed/<it> would pass S3's 1,024
DEEP_KEY = ("d" * 240 + "/") * 4 + "n" * 50 + ".jpg"


def name_inputs(kind: str) -> list[Input]:
    """Photos under names a destination may not hold as they are (issue #37), each only where it can
    exist: a folder or an OpenSSH server holds 255 bytes a name, an S3 key 1,024 bytes in all (and
    moto's server refuses a newline in a key, which S3 itself takes). Two names become one when made
    portable (``a:b.jpg``, ``a_b.jpg``); two files are not images (one is quarantined under a long name)."""
    names = [NEAR_ASCII, NEAR_UTF8, "x\\..\\y.jpg", "a:b.jpg", "a_b.jpg", "tab\tbell\x07del\x7f.jpg"]
    names += ["dots.../spaces  /end. .jpg"]
    bad = ["q" * 247 + ".jpg"]
    if kind == "s3":
        names += [LONG_ASCII, LONG_UTF8, DEEP_KEY]
        bad += ["q" * 300 + ".jpg"]
    else:
        names += ["new\nline.jpg"]
    photos = [_variant(GOOD[i % len(GOOD)], 90 - i) for i in range(len(names))]
    items = [Input(name, data, True) for name, data in zip(names, photos, strict=True)]
    items += [Input(name, f"not a photo {i}".encode(), False, expect="not_an_image") for i, name in enumerate(bad)]
    return items


def local_snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def s3_snapshot(client, bucket: str, prefix: str) -> dict[str, bytes]:
    out = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
        for obj in page.get("Contents", []):
            out[obj["Key"][len(prefix) + 1 :]] = client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
    return out
