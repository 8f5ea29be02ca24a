"""Close a run: one manifest from the batch parts, an optional zip of the outputs, and a contact
sheet of before/after thumbnails. Works on any Storage; no Airflow import."""

from __future__ import annotations

import io
import itertools
import json
import logging
import posixpath
import zipfile
from collections.abc import Iterable, Iterator

import numpy as np
from PIL import Image, ImageDraw

from matting import layout
from matting.images import decode
from matting.pipeline.manifest import compact_json, run_counts, utc_now, write_manifest_stream
from matting.results.index import publish_stream
from matting.storage import FileInfo, Storage
from matting.storage.atomic import is_temp_name

log = logging.getLogger("matting.pipeline.archive")

THUMB = 160
SHEET_COLS = 4
SHEET_MAX_FILES = 48
SHEET_MAX_BYTES = 64 * 1024 * 1024  # a thumbnail is never worth reading a bigger original


class MergedParts:
    """A run's batch parts merged: the manifest's header (everything but its entries, with the parts,
    ``started_at``, ``finished_at`` and the counts) and its entries, sorted by source, each kept as its
    compact JSON (about 0.5 kB a photo, against ~5 kB as a parsed dict): closing a 100k-photo run holds
    the bytes of its manifest once, never the parsed manifest or a second dump of it."""

    def __init__(self, header: dict, entries: list[tuple[str, bytes]]) -> None:
        self.header = header
        self.entries = entries

    def __len__(self) -> int:
        return len(self.entries)

    def files(self) -> Iterator[dict]:
        """The entries parsed one at a time (in manifest order)."""
        for _, data in self.entries:
            yield json.loads(data)

    def manifest(self) -> dict:
        """The whole manifest as one dict (the results pages of a run in progress: one batch's size)."""
        return {**self.header, "files": list(self.files())}

    def write(self, run: Storage, name: str = layout.MANIFEST) -> None:
        """``name`` streamed through the storage's atomic writer, one entry per line."""
        write_manifest_stream(run, name, self.header, "files", self.entries)


def gather_parts(run: Storage, listing: list[FileInfo] | None = None) -> MergedParts:
    """Combine the batch parts (one per mapped chunk) into the run's manifest, one part parsed at a
    time; ``listing``: the run folder's files as the caller listed them (else listed here: ``parts/``
    only)."""
    if listing is None:
        listing = [
            FileInfo(f"{layout.PARTS}/{f.path}", f.size, f.mtime, f.version) for f in run.sub(layout.PARTS).list()
        ]
    parts = sorted(f.path for f in listing if f.path.startswith(f"{layout.PARTS}/") and f.path.endswith(".json"))
    header: dict = {}
    entries: list[tuple[str, bytes]] = []
    counts: dict[str, int] = {}
    for path in parts:
        doc = json.loads(run.read(path))
        files = doc.pop("files", None) or []
        for k, v in run_counts(files).items():
            counts[k] = counts.get(k, 0) + v
        entries.extend((f["source"], compact_json(f)) for f in files)
        del files
        if not header:
            header = {k: v for k, v in doc.items() if k != "counts"}
        header["started_at"] = min(header.get("started_at") or doc["started_at"], doc["started_at"])
        del doc
    entries.sort(key=lambda e: e[0])
    header.update(parts=parts, finished_at=utc_now(), counts={"files": 0, "ok": 0, "failed": 0, **counts})
    return MergedParts(header, entries)


def merge_parts(run: Storage, listing: list[FileInfo] | None = None) -> dict:
    """The run's manifest dict from its parts (``gather_parts``, parsed whole)."""
    return gather_parts(run, listing).manifest()


def write_zip(run: Storage, outputs: Iterable[str], name: str = layout.ZIP) -> None:
    """Zip the outputs (paths relative to the run folder) one output in memory at a time, straight
    into the storage's atomic writer (a local folder: written once, in place; S3 and SFTP: a local
    temp file, then a multipart or streamed upload): memory stays flat however big the run.
    Stored uncompressed: they are images already."""
    with run.open_write(name) as fh, zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED) as zf:
        for rel in outputs:
            zf.writestr(rel, run.read(rel))


def thumbnail_tile(data: bytes | None, label: str, size: int = THUMB, *, square: bool = True) -> Image.Image:
    """The image fitted on a checkerboard (transparency shows as such): a ``size`` square tile, or
    (``square=False``) the picture's own shape within ``size`` x ``size``; the label instead when there
    is no image (``data`` None) or it cannot be decoded."""
    pic = None
    if data is not None:
        try:
            img = decode(data)
        except Exception:
            label = "unreadable"
        else:
            alpha = img.alpha if img.alpha is not None else np.full(img.rgb.shape[:2], 255, np.uint8)
            pic = Image.fromarray(np.dstack([img.rgb, alpha]), "RGBA")
            pic.thumbnail((size, size))
    width, height = (size, size) if square or pic is None else pic.size
    tile = Image.new("RGB", (width, height), (200, 200, 200))
    draw = ImageDraw.Draw(tile)
    for y in range(0, height, 16):
        for x in range((y // 16) % 2 * 16, width, 32):
            draw.rectangle([x, y, x + 15, y + 15], fill=(235, 235, 235))
    if pic is None:
        draw.text((8, height // 2 - 6), label, fill=(160, 0, 0))
        return tile
    tile.paste(pic, ((width - pic.width) // 2, (height - pic.height) // 2), pic)
    return tile


def contact_sheet(pairs: list[tuple[str, bytes | None, bytes | None]]) -> bytes:
    """JPEG grid: for each file its name, the original and the result side by side."""
    pairs = pairs[:SHEET_MAX_FILES]
    cell_w, cell_h = 2 * THUMB + 12, THUMB + 22
    rows = max(1, (len(pairs) + SHEET_COLS - 1) // SHEET_COLS)
    sheet = Image.new("RGB", (SHEET_COLS * cell_w + 8, rows * cell_h + 8), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (name, before, after) in enumerate(pairs):
        x, y = 8 + (i % SHEET_COLS) * cell_w, 8 + (i // SHEET_COLS) * cell_h
        sheet.paste(thumbnail_tile(before, "original moved"), (x, y))
        sheet.paste(thumbnail_tile(after, "failed"), (x + THUMB + 2, y))
        draw.text((x, y + THUMB + 4), name[-40:], fill=(0, 0, 0))
    buf = io.BytesIO()
    sheet.save(buf, "JPEG", quality=85)
    return buf.getvalue()


def close_run(run: Storage, source: Storage | None, *, make_zip: bool = True, make_sheet: bool = True) -> dict:
    """Write manifest.json (+ outputs.zip, contact_sheet.jpg) in the run folder; returns the summary.
    First, the temp files a killed writer left in the run folder (``.<name>.tmp-*``: a worker
    SIGKILLed mid-write; its retry wrote the output again) are deleted: every batch of the run is
    over when it is archived, and the folder is this run's alone."""
    for f in run.list(skip_dirs=(layout.PARTS,)):
        if ".tmp-" in posixpath.basename(f.path) and is_temp_name(f.path):
            log.warning("deleting %s: a write that never finished (its writer was killed)", f.path)
            run.delete(f.path)
    merged = gather_parts(run)
    prefix = merged.header.get("run_prefix", "")
    # the manifest first: it never depends on the zip or the sheet (rewritten with them after)
    merged.write(run)
    extra: dict = {}

    def outputs() -> Iterator[str]:  # the entries parsed again per use, one at a time
        return (rel for f in merged.files() if (rel := _rel(f, prefix)))

    if make_zip and next(outputs(), None) is not None:
        write_zip(run, outputs())
        extra["zip"] = layout.ZIP
    if make_sheet and len(merged):
        pairs = []
        for f in itertools.islice(merged.files(), SHEET_MAX_FILES):
            before = None
            if source is not None:
                for where in filter(None, (f.get("moved_to"), f["source"])):
                    info = source.stat(where)
                    if info is not None:
                        before = source.read(where) if info.size <= SHEET_MAX_BYTES else None
                        break
            after = run.read(rel) if (rel := _rel(f, prefix)) else None
            pairs.append((f["source"], before, after))
        run.write(layout.CONTACT_SHEET, contact_sheet(pairs))
        extra["contact_sheet"] = layout.CONTACT_SHEET
    merged.header.update(extra)
    # again with them, and the results pages' index (``matting.results.index``)
    publish_stream(run, merged.header, "files", merged.entries)
    counts = merged.header["counts"]
    log.info("run closed: %s", json.dumps(counts))
    return {"manifest": layout.MANIFEST, **counts, **extra}


def _rel(f: dict, prefix: str) -> str | None:
    outs = f.get("outputs") or []
    if not outs:
        return None
    o = outs[0]
    return o[len(prefix) + 1 :] if prefix and o.startswith(prefix + "/") else o
