"""Every name the package reserves in the folders it works in, in one place: what a source, a destination
and a run folder hold besides users' photos. Code, new-file checks and docs read these; nothing else
spells them.

Source (incoming) folder::

    processed/<path>                 originals that made an output
    quarantine/<path> + .error.json  originals refused, with why (also in the destination for read-only sources)

Destination::

    _ledger/                         settled versions of originals a source keeps (matting.storage.ledger)
    _cache/                          the result cache (matting.pipeline.reuse)
    <run_prefix>/                    one run's folder (below)

Run folder::

    run.json                         the DAG and run that own the folder
    manifest.json, results/          the run's manifest and its paged index for the results pages
    parts/part-NNNN.json             a background-removal batch's manifest part (merged by the archive)
    records/, outputs/, outputs.zip  background removal: one record per input, the cut-outs, their zip
    contact_sheet.jpg                background removal: before/after thumbnails of the run
    review/, rejected/               ID photos: held for a person / rejected by one
"""

from __future__ import annotations

PROCESSED = "processed"
QUARANTINE = "quarantine"
REVIEW = "review"
REJECTED = "rejected"
LEDGER = "_ledger"
CACHE = "_cache"

RUN_FILE = "run.json"
MANIFEST = "manifest.json"
INDEX_DIR = "results"
PARTS = "parts"
RECORDS = "records"
OUTPUTS = "outputs"
ZIP = "outputs.zip"
CONTACT_SHEET = "contact_sheet.jpg"

IMAGE_EXTENSIONS = frozenset(
    ".jpg .jpeg .jpe .jfif .png .webp .bmp .gif .tif .tiff .heic .heif .avif .jp2 .ppm .pgm .tga".split()
)
"""The names a new-file check takes for photos (``images_only``); the bytes decide the rest (``matting.images``)."""

SOURCE_RESERVED = (PROCESSED, QUARANTINE, REVIEW, LEDGER)
"""Top-level folders of a source that a new-file check never walks: the package's own, not new photos."""


def in_review(path: str) -> str | None:
    """The photo's name when ``path`` (relative to a run folder) lies in ``review/``, else None."""
    prefix = REVIEW + "/"
    return path[len(prefix) :] if path.startswith(prefix) else None
