"""Regenerate the ID-photo test portraits from the public-domain astronaut photo (see README.md).

Run from the repository root: .venv/bin/python tests/data/make_fixtures.py
"""

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "include" / "samples" / "astronaut.jpg"


def main() -> None:
    rgb = np.asarray(Image.open(SRC).convert("RGB"))
    h, w = rgb.shape[:2]
    studio = np.array([226, 222, 215], np.uint8)  # a plain studio backdrop colour

    # small in frame: the portrait at 45 % inside a larger plain backdrop, subject at the bottom
    canvas = np.empty((1000, 900, 3), np.uint8)
    canvas[:] = studio
    small = cv2.resize(rgb, (round(w * 0.9), round(h * 0.9)), interpolation=cv2.INTER_AREA)
    y0, x0 = 1000 - small.shape[0], (900 - small.shape[1]) // 2
    canvas[y0:, x0 : x0 + small.shape[1]] = small
    Image.fromarray(canvas).save(HERE / "portrait_small_in_frame.jpg", quality=90)

    # head near the top: hair touching the top edge
    Image.fromarray(rgb[26:, :]).save(HERE / "portrait_head_at_top.jpg", quality=90)

    # tilted 8 degrees (counter-clockwise), borders continued
    m = cv2.getRotationMatrix2D((w / 2, h / 2), 8, 1.0)
    tilted = cv2.warpAffine(rgb, m, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    Image.fromarray(tilted).save(HERE / "portrait_tilted_8deg.jpg", quality=90)

    # stored rotated, upright only through EXIF orientation 6 (as phones write it)
    stored = np.ascontiguousarray(np.rot90(rgb, 1))  # 90 degrees counter-clockwise as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # display: rotate 90 degrees clockwise
    Image.fromarray(stored).save(HERE / "portrait_exif_rotated.jpg", quality=90, exif=exif.tobytes())

    # two people side by side
    Image.fromarray(np.hstack([rgb, rgb[:, ::-1]])).save(HERE / "two_people.jpg", quality=85)


if __name__ == "__main__":
    main()
