"""ID photos (pure core: no Airflow import): spec catalogue, face detection, placement, background,
DPI, file-size limit, print sheet and compliance report."""

from matting.idphoto.compose import IdPhoto, IdPhotoOptions, compose_id_photo
from matting.idphoto.render import encode_within_limits
from matting.idphoto.sheet import make_sheet
from matting.idphoto.specs import IdPhotoSpec, get_spec, load_specs

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
