"""Which failures no retry can fix: they fail a task at once instead of waiting out its timeout."""

from __future__ import annotations

import pytest
from matting.errors import ConfigError, is_permanent
from matting.storage import UnsafePath


class ClientError(Exception):
    """Shaped like botocore's: the code sits in ``response["Error"]["Code"]``."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.response = {"Error": {"Code": code}}


class AuthenticationException(Exception):  # paramiko's name
    pass


class BadAuthenticationType(AuthenticationException):
    pass


class AirflowNotFoundException(Exception):  # an unknown connection id
    pass


@pytest.mark.parametrize(
    "exc",
    [
        ClientError("InvalidAccessKeyId"),
        ClientError("SignatureDoesNotMatch"),
        ClientError("NoSuchBucket"),
        ClientError("AccessDenied"),
        ClientError("AWS.SimpleQueueService.NonExistentQueue"),
        BadAuthenticationType("password not allowed"),
        AirflowNotFoundException("The conn_id `x` isn't defined"),
        UnsafePath("../etc"),
        ConfigError("bad"),
        PermissionError(13, "Permission denied"),
    ],
    ids=lambda e: type(e).__name__ + ":" + str(e)[:20],
)
def test_permanent(exc):
    assert is_permanent(exc)


@pytest.mark.parametrize(
    "exc",
    [
        ClientError("SlowDown"),
        ClientError("InternalError"),
        ClientError("503"),
        ConnectionRefusedError(111, "refused"),
        TimeoutError("read timed out"),
        OSError("Socket is closed"),
        EOFError(),
    ],
    ids=lambda e: type(e).__name__ + ":" + str(e)[:20],
)
def test_transient(exc):
    assert not is_permanent(exc)
