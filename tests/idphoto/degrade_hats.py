"""Head-covering cases for the ID-photo evaluation set: a hat or cap put on a real head, as it is worn.

The hats are Tux Paint's stamps (Debian ``tuxpaint-stamps-default``, GPL-2, (c) 2002-2022 Bill Kendrick
and the Tux Paint contributors; installed by ``make system``, read from /usr/share, never copied into the
repository). None of them is a photograph: they are shaded vector drawings rendered to PNG with their own
alpha. The four used are the least cartoon-like (no black outline): the top hat, the two fedoras and
the baseball cap (a white line drawing). A missing stamp raises ``MissingStamp``: the set never shrinks
silently.

A hat is scaled to the head (its crown opening ``size`` times the head's width, cheek to cheek of the
face mesh, widened by the ears and hair) and set down on the head: its band at the top of the forehead
(mesh point 10), turned with the eye line. No headscarf case: no stamp or photo here shows a covering
that wraps the sides of the head, and painting one over the hair and neck would not be honest.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import cv2
import numpy as np
from idphoto.eval_set import SAMPLE, Case, _portrait

STAMPS = Path("/usr/share/tuxpaint/stamps")
# stamp -> (file, the row of the hat's band as a share of the stamp's height, the width of its crown
# opening as a share of the stamp's width, measured on the PNGs)
HATS = {
    "top hat": ("clothes/hats/tophat.png", 0.80, 0.55),
    "blue fedora": ("clothes/hats/blue_fedora.png", 0.72, 0.62),
    "green fedora": ("clothes/hats/green_fedora.png", 0.62, 0.55),
    "baseball cap": ("clothes/t_baseballcap.png", 0.82, 0.80),
}
HEAD_OVER_CHEEKS = 1.2  # the head (skull, ears, hair) is this much wider than the mesh's cheek-to-cheek line
SIZES = (0.9, 1.05, 1.2)  # the hat's crown opening over the head's width: tight, worn, loose


class MissingStamp(FileNotFoundError):
    """A hat stamp is not installed (``make system`` installs tuxpaint-stamps-default)."""


def stamp(name: str) -> tuple[np.ndarray, np.ndarray, float, float]:
    """(RGB, alpha 0-1, band row share, crown-opening width share) of one hat stamp."""
    file, band, opening = HATS[name]
    path = STAMPS / file
    bgra = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if bgra is None or bgra.ndim != 3 or bgra.shape[2] != 4:
        raise MissingStamp(f"hat stamp {path} is missing or has no alpha: apt-get install tuxpaint-stamps-default")
    rgb = cv2.cvtColor(bgra[:, :, :3], cv2.COLOR_BGR2RGB).astype(np.float32)
    return rgb, bgra[:, :, 3].astype(np.float32) / 255.0, band, opening


def _mesh(rgb: np.ndarray):
    from matting.engine.models import ModelStore
    from matting.idphoto.face import detect_faces, prominent_faces
    from matting.idphoto.mesh import FaceMesh

    face = prominent_faces(detect_faces(rgb))[0]
    return FaceMesh(ModelStore()).landmarks(rgb, face)


def wear_hat(rgb: np.ndarray, hat: str = "top hat", size: float = 1.05) -> np.ndarray:
    """``rgb`` with ``hat`` worn on the head: scaled so its crown opening is ``size`` head widths,
    its band on the forehead's top (mesh point 10), level with the eyes."""
    from matting.idphoto.mesh import FACE_SIDES, FOREHEAD

    hat_rgb, hat_alpha, band, opening = stamp(hat)
    mesh = _mesh(rgb)
    left, right = mesh.pt(FACE_SIDES[0]), mesh.pt(FACE_SIDES[1])
    head_w = float(np.linalg.norm(right - left)) * HEAD_OVER_CHEEKS
    scale = size * head_w / (opening * hat_rgb.shape[1])
    anchor = (hat_rgb.shape[1] / 2, band * hat_rgb.shape[0])  # the middle of the hat's band
    top = mesh.pt(FOREHEAD)
    target = (float((left[0] + right[0]) / 2), float(top[1]))
    m = cv2.getRotationMatrix2D(anchor, -mesh.roll_deg, scale)
    m[:, 2] += np.array(target) - anchor
    size_wh = (rgb.shape[1], rgb.shape[0])
    colour = cv2.warpAffine(hat_rgb, m, size_wh, flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    alpha = cv2.warpAffine(hat_alpha, m, size_wh, flags=cv2.INTER_LINEAR)[..., None]
    out = rgb.astype(np.float32) * (1 - alpha) + np.clip(colour, 0, 255) * alpha
    return np.clip(out, 0, 255).round().astype(np.uint8)


def _derive(hat: str, size: float):
    f = partial(wear_hat, hat=hat, size=size)
    f.__name__ = f"wear_{hat.replace(' ', '_')}_{size:g}"  # run_case and the tables name it
    return f


WHY = "a hat or cap: no head covering (ICAO 9303 part 3; US Department of State)"


def _hat_case(who: str, source, hat: str, size: float, spec: str) -> Case:
    return Case(
        f"{who}, {hat} ({size:g} head widths)", source, _derive(hat, size), spec, False, ("head_covering",), WHY
    )


HOPPER = _portrait("grace_hopper.jpg")
# (portrait, derive, spec, the office's verdict, the rule that must refuse it), as eval_set's Case
HAT_CASES = [
    Case("Hopper, US Navy cap, Schengen", HOPPER, None, "schengen", False, ("head_covering",), "a uniform cap"),
    Case("Hopper, US Navy cap, 1-inch", HOPPER, None, "cn-1inch", False, ("head_covering",), "a uniform cap"),
    _hat_case("Obama", _portrait("obama.jpg"), "baseball cap", 1.05, "us-passport"),
]
# Hats the measure does not see (it compares the top of the head with the hair beside the temples; a
# brim over the temples leaves no hair to compare with): refused by the office, accepted by us. Kept
# here, measured by tests/unit/test_idphoto_covering.py, so a better measure shows up as fewer misses.
KNOWN_MISSES = [
    *(
        _hat_case(who, source, hat, size, "us-passport")
        for who, source in (("astronaut", SAMPLE), ("Obama", _portrait("obama.jpg")))
        for hat in ("top hat", "blue fedora", "green fedora")
        for size in SIZES
    ),
    *(_hat_case("astronaut", SAMPLE, "baseball cap", size, "us-passport") for size in SIZES),
    *(_hat_case("Obama", _portrait("obama.jpg"), "baseball cap", size, "us-passport") for size in (0.9, 1.2)),
    # seen on the source (0.94-1.00, so placed by the anatomical crown) but not on the final photo: the
    # cause not found yet (the final photo is white behind a white cap; unverified)
    _hat_case("astronaut", SAMPLE, "baseball cap", 1.05, "cn-1inch"),
]
