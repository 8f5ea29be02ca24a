"""Close a run: one manifest from the batch parts, an optional zip of the outputs, and a contact
sheet of before/after thumbnails. Works on any Storage; no Airflow import."""

from __future__ import annotations

import io
import json
import logging
import posixpath
import zipfile

import numpy as np
from PIL import Image, ImageDraw

from matting import layout
from matting.images import decode
from matting.pipeline.manifest import run_counts, utc_now
from matting.results.index import publish_manifest
from matting.storage import FileInfo, Storage
from matting.storage.atomic import is_temp_name

log = logging.getLogger("matting.pipeline.archive")

THUMB = 160
SHEET_COLS = 4
SHEET_MAX_FILES = 48
SHEET_MAX_BYTES = 64 * 1024 * 1024  # a thumbnail is never worth reading a bigger original


def merge_parts(run: Storage, listing: list[FileInfo] | None = None) -> dict:
    """Combine the batch parts (one per mapped chunk) into the run's manifest dict; ``listing``: the
    run folder's files as the caller listed them (else listed here: ``parts/`` only)."""
    if listing is None:
        listing = [
            FileInfo(f"{layout.PARTS}/{f.path}", f.size, f.mtime, f.version) for f in run.sub(layout.PARTS).list()
        ]
    parts = sorted(f.path for f in listing if f.path.startswith(f"{layout.PARTS}/") and f.path.endswith(".json"))
    merged: dict = {}
    files: list[dict] = []
    for path in parts:
        doc = json.loads(run.read(path))
        files.extend(doc.get("files", []))
        if not merged:
            merged = {k: v for k, v in doc.items() if k not in ("files", "counts")}
        merged["started_at"] = min(merged.get("started_at") or doc["started_at"], doc["started_at"])
    files.sort(key=lambda f: f["source"])
    merged.update(
        files=files,
        parts=parts,
        finished_at=utc_now(),
        counts=run_counts(files),
    )
    return merged


def write_zip(run: Storage, outputs: list[str], name: str = layout.ZIP) -> None:
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
    manifest = merge_parts(run)
    prefix = manifest.get("run_prefix", "")
    outputs = [rel for f in manifest["files"] if (rel := _rel(f, prefix))]
    # the manifest first: it never depends on the zip or the sheet (rewritten with them after)
    run.write(layout.MANIFEST, json.dumps(manifest, indent=2, ensure_ascii=False).encode())
    extra: dict = {}
    if make_zip and outputs:
        write_zip(run, outputs)
        extra["zip"] = layout.ZIP
    if make_sheet and manifest["files"]:
        pairs = []
        for f in manifest["files"][:SHEET_MAX_FILES]:
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
    manifest.update(extra)
    publish_manifest(run, manifest)  # with the results pages' index (``matting.results.index``)
    log.info("run closed: %s", json.dumps(manifest["counts"]))
    return {"manifest": layout.MANIFEST, **manifest["counts"], **extra}


def _rel(f: dict, prefix: str) -> str | None:
    outs = f.get("outputs") or []
    if not outs:
        return None
    o = outs[0]
    return o[len(prefix) + 1 :] if prefix and o.startswith(prefix + "/") else o
