"""Colour names and values as users write them (``white``, ``#438EDB``, ``rgb(1,2,3)``): light enough
for a DAG file's parse (the ID-photo presets read them), shared by the engine and the ID photo."""

from __future__ import annotations

import re

from matting.errors import ConfigError

NAMED_COLOURS = {
    "white": (255, 255, 255),
    "black": (0, 0, 0),
    "grey": (128, 128, 128),
    "gray": (128, 128, 128),
    "light-grey": (211, 211, 211),
    "blue": (67, 142, 219),  # the usual ID-photo blue
    "light-blue": (160, 200, 240),
    "red": (217, 0, 27),  # the usual ID-photo red
}


def parse_colour(value: str | tuple | list | None) -> tuple[int, int, int] | None:
    """'white', 'blue', '#438EDB', '#fff', 'rgb(1,2,3)' or (r, g, b) -> (r, g, b); None/'none' -> None."""
    if value is None:
        return None
    if isinstance(value, (tuple, list)):
        if len(value) != 3 or not all(0 <= int(c) <= 255 for c in value):
            raise ConfigError(f"background colour must be three values 0-255, got {value!r}")
        return tuple(int(c) for c in value)  # type: ignore[return-value]
    text = str(value).strip().lower()
    if text in ("", "none", "transparent"):
        return None
    if text in NAMED_COLOURS:
        return NAMED_COLOURS[text]
    if re.fullmatch(r"#[0-9a-f]{6}", text):  # the common case, without loading Pillow (DAG files parse this)
        return int(text[1:3], 16), int(text[3:5], 16), int(text[5:7], 16)
    from PIL import ImageColor  # CSS names, #rgb, rgb(...), hsl(...)

    try:
        rgb = ImageColor.getrgb(text)
    except ValueError:
        raise ConfigError(
            f"unknown colour {value!r}: use a name ({', '.join(sorted(NAMED_COLOURS))}, or any CSS name) "
            "or hex like #438EDB"
        ) from None
    return tuple(rgb[:3])  # type: ignore[return-value]
