"""ID photos (pure core: no Airflow import): spec catalogue, face detection, placement, background,
DPI, file-size limit, print sheet and compliance report.

``from matting.idphoto import compose_id_photo`` works as always, but a name is imported from its module
on first use (PEP 562): a DAG file that reads the presets (``matting.idphoto.specs``) loads no model code."""

from __future__ import annotations

from typing import TYPE_CHECKING

from matting import lazy

_EXPORTS = {
    "IdPhoto": "compose",
    "IdPhotoOptions": "compose",
    "compose_id_photo": "compose",
    "encode_within_limits": "render",
    "make_sheet": "sheet",
    "IdPhotoSpec": "specs",
    "get_spec": "specs",
    "load_specs": "specs",
}
__all__ = [
    "IdPhoto",
    "IdPhotoOptions",
    "IdPhotoSpec",
    "compose_id_photo",
    "encode_within_limits",
    "get_spec",
    "load_specs",
    "make_sheet",
]

if TYPE_CHECKING:
    from matting.idphoto.compose import IdPhoto, IdPhotoOptions, compose_id_photo
    from matting.idphoto.render import encode_within_limits
    from matting.idphoto.sheet import make_sheet
    from matting.idphoto.specs import IdPhotoSpec, get_spec, load_specs


__getattr__, __dir__ = lazy.exports(__name__, _EXPORTS, globals())
