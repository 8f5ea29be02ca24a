"""Print sheets: as many copies of an ID photo as fit on 4x6 in or 5x7 in paper, with cut guides."""

from __future__ import annotations

from PIL import Image, ImageDraw

from matting.idphoto.specs import IdPhotoSpec

SHEETS_IN = {"4x6": (6.0, 4.0), "5x7": (7.0, 5.0)}  # landscape (width, height) in inches
SHEET_DPI = 300
GAP_MM = 2.0
MARGIN_MM = 3.0
GUIDE = (170, 170, 170)


def _mm(px_mm: float) -> int:
    return round(px_mm / 25.4 * SHEET_DPI)


def layout(sheet: str, photo_px: tuple[int, int]) -> tuple[tuple[int, int], int, int]:
    """((sheet_w, sheet_h), cols, rows) for the orientation that fits the most copies."""
    if sheet not in SHEETS_IN:
        raise ValueError(f"unknown sheet {sheet!r}; choose one of {', '.join(SHEETS_IN)}")
    w_in, h_in = SHEETS_IN[sheet]
    best = None
    for sw, sh in (
        (round(w_in * SHEET_DPI), round(h_in * SHEET_DPI)),
        (round(h_in * SHEET_DPI), round(w_in * SHEET_DPI)),
    ):
        usable_w, usable_h = sw - 2 * _mm(MARGIN_MM), sh - 2 * _mm(MARGIN_MM)
        gap = _mm(GAP_MM)
        cols = max(0, (usable_w + gap) // (photo_px[0] + gap))
        rows = max(0, (usable_h + gap) // (photo_px[1] + gap))
        if best is None or cols * rows > best[1] * best[2]:
            best = ((sw, sh), cols, rows)
    return best


def make_sheet(photo: Image.Image, spec: IdPhotoSpec, sheet: str = "4x6") -> tuple[Image.Image, int]:
    """A white sheet at 300 dpi holding the photo at its true printed size; returns (sheet, copies)."""
    pw_mm, ph_mm = spec.print_size_mm
    pw, ph = _mm(pw_mm), _mm(ph_mm)
    copy = photo.convert("RGB").resize((pw, ph), Image.Resampling.LANCZOS)
    (sw, sh), cols, rows = layout(sheet, (pw, ph))
    if cols * rows == 0:
        raise ValueError(f"a {pw_mm:.0f}x{ph_mm:.0f} mm photo does not fit on a {sheet} sheet")
    page = Image.new("RGB", (sw, sh), "white")
    gap = _mm(GAP_MM)
    grid_w, grid_h = cols * pw + (cols - 1) * gap, rows * ph + (rows - 1) * gap
    x0, y0 = (sw - grid_w) // 2, (sh - grid_h) // 2
    draw = ImageDraw.Draw(page)
    xs, ys = set(), set()
    for r in range(rows):
        for c in range(cols):
            x, y = x0 + c * (pw + gap), y0 + r * (ph + gap)
            page.paste(copy, (x, y))
            xs.update((x - 1, x + pw))
            ys.update((y - 1, y + ph))
    for x in sorted(xs):  # thin cut guides through the gaps, edge to edge
        for seg in ((0, y0 - 1), (y0 + grid_h, sh)):
            draw.line([(x, seg[0]), (x, seg[1])], fill=GUIDE, width=1)
    for y in sorted(ys):
        for seg in ((0, x0 - 1), (x0 + grid_w, sw)):
            draw.line([(seg[0], y), (seg[1], y)], fill=GUIDE, width=1)
    return page, cols * rows
