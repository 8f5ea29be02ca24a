"""Provider conventions, checked over every public operator, sensor and trigger of the package."""

from __future__ import annotations

import inspect

import pytest
from matting.operators.idphoto import IdPhotoOperator, ReviewHeldPhotosOperator
from matting.operators.matting import ArchiveOperator, RemoveBackgroundOperator
from matting.sensors.new_files import NewFilesSensor
from matting.triggers.new_files import NewFilesTrigger
from matting.triggers.s3_events import S3UploadsTrigger

PUBLIC = [
    RemoveBackgroundOperator,
    ArchiveOperator,
    IdPhotoOperator,
    ReviewHeldPhotosOperator,
    NewFilesSensor,
    NewFilesTrigger,
    S3UploadsTrigger,
]


@pytest.mark.parametrize("cls", PUBLIC, ids=lambda c: c.__name__)
def test_every_argument_is_documented(cls):
    own = [
        p.name
        for p in inspect.signature(cls.__init__).parameters.values()
        if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    ]
    missing = [name for name in own if f":param {name}:" not in (cls.__doc__ or "")]
    assert not missing, f"{cls.__name__} lacks :param: for {missing}"


def test_sensors_take_deferrable_from_airflows_setting():
    """`[operators] default_deferrable` decides, as for the Amazon and SFTP providers' sensors (the
    default is read when the module is imported, so a fresh interpreter checks it)."""
    import os
    import subprocess
    import sys

    code = (
        "from matting.sensors.new_files import S3NewFilesSensor as S\n"
        "print(S(task_id='a', location='s3://b/p').deferrable,\n"
        "      S(task_id='b', location='s3://b/p', deferrable=False).deferrable)"
    )
    for setting, expected in (("True", "True False"), ("False", "False False")):
        env = {**os.environ, "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": setting}
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        assert out.stdout.strip().splitlines()[-1] == expected
