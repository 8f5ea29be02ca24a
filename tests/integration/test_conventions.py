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


def test_no_operator_overrides_what_its_caller_set():
    """The review step's own retry defaults apply only where neither the caller nor the DAG's
    default_args say anything."""
    from datetime import datetime, timedelta

    from airflow.sdk import DAG

    with DAG("review_defaults", schedule=None, start_date=datetime(2026, 1, 1), default_args={"retries": 1}):
        from_dag = ReviewHeldPhotosOperator(task_id="a")
        explicit = ReviewHeldPhotosOperator(task_id="b", retries=7, retry_delay=timedelta(minutes=2))
    with DAG("review_plain", schedule=None, start_date=datetime(2026, 1, 1)):
        plain = ReviewHeldPhotosOperator(task_id="c")
    assert from_dag.retries == 1 and from_dag.retry_delay == timedelta(seconds=5)
    assert explicit.retries == 7 and explicit.retry_delay == timedelta(minutes=2)
    assert plain.retries == 3 and plain.retry_delay == timedelta(seconds=5)


@pytest.mark.parametrize("cls", [RemoveBackgroundOperator, ArchiveOperator, IdPhotoOperator, NewFilesSensor])
def test_every_task_that_takes_locations_checks_them(cls):
    """One base holds the access check (``LocationAccess``); every task with a location uses it."""
    from matting.operators.base import LocationAccess

    assert issubclass(cls, LocationAccess)
