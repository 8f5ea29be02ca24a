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


def test_one_classification_for_a_failed_photo():
    """The engine's per-photo failures use errors.is_permanent / retry_in_task: what the same call
    will hit again is not retried in-task; a missing file is a vanished source only when reading;
    a ConfigError is no photo's outcome and is raised (the task fails at once)."""
    from botocore.exceptions import EndpointConnectionError
    from matting.engine import Engine
    from matting.errors import CorruptImage, retried_by_client, retry_in_task

    def failed(exc, **kw):
        return Engine.failed_result("a.jpg", exc, {}, **kw)

    read_missing = failed(FileNotFoundError(2, "No such file"))
    assert read_missing.error_type == "vanished" and not read_missing.retryable
    write_missing = failed(FileNotFoundError(2, "No such file or directory: 'out/a.png'"), writing=True)
    assert write_missing.error_type == "infrastructure_error" and write_missing.retryable
    assert "writing the output" in write_missing.error and write_missing.retry_in_task
    denied = failed(PermissionError(13, "Permission denied"))
    assert denied.retryable and not denied.retry_in_task and is_permanent(PermissionError())
    flaky = failed(ConnectionResetError("reset by peer"))
    assert flaky.retryable and flaky.retry_in_task
    s3_down = failed(EndpointConnectionError(endpoint_url="http://127.0.0.1:9"))
    assert s3_down.retryable and not s3_down.retry_in_task  # botocore already retried it
    assert retried_by_client(EndpointConnectionError(endpoint_url="x")) and not retried_by_client(OSError())
    assert not retry_in_task(ConfigError("x"))
    content = failed(CorruptImage("a.jpg: bad huffman"))
    assert content.error_type == "corrupt_image" and not content.retryable
    with pytest.raises(ConfigError, match="no preset"):
        failed(ConfigError("no preset 'mars-passport'"))


def test_in_task_rounds_skip_what_another_round_cannot_help():
    from matting.pipeline.runner import RoundErrors, attempt_rounds

    class Item:
        def __init__(self, path):
            self.path = path

    items = [Item(p) for p in ("denied.jpg", "flaky.jpg", "ok.jpg")]
    calls = []

    def attempt(todo):
        calls.append([i.path for i in todo])
        errors = RoundErrors()
        for i in todo:
            if i.path == "denied.jpg":
                errors.add(i.path, "PermissionError", retry_in_task=False)
            elif i.path == "flaky.jpg":
                errors.add(i.path, "ConnectionResetError")
        return errors

    pending, why = attempt_rounds(items, attempt, attempts=3, sleep=lambda s: None)
    assert calls == [["denied.jpg", "flaky.jpg", "ok.jpg"], ["flaky.jpg"], ["flaky.jpg"]]
    assert [i.path for i in pending] == ["denied.jpg", "flaky.jpg"] and set(why) == {"denied.jpg", "flaky.jpg"}


@pytest.mark.parametrize(
    ("exc", "about_the_name"),
    [
        (OSError(36, "File name too long", "/out/" + "n" * 300), True),  # a folder, an OpenSSH server's disk
        (OSError(22, "Invalid argument", "/mnt/share/a:b.png"), True),  # a share that refuses the characters
        (OSError("Bad message"), True),  # OpenSSH's sftp-server on ENAMETOOLONG / EINVAL, as paramiko raises it
        (ClientError("KeyTooLongError"), True),
        (OSError(22, "Invalid argument"), False),  # EINVAL not on a named file: not about a name
        (OSError(28, "No space left on device", "/out/a.png"), False),
        (OSError("Failure"), False),
        (ConnectionResetError(104, "reset"), False),
        (ClientError("SlowDown"), False),
    ],
    ids=lambda e: type(e).__name__ + ":" + str(e)[:24] if isinstance(e, BaseException) else str(e),
)
def test_a_name_the_storage_refuses_is_the_photo_s_problem_and_never_retried(exc, about_the_name):
    from matting.engine import Engine
    from matting.errors import UnwritableName, name_refused, retry_in_task

    assert name_refused(exc) == about_the_name
    if about_the_name:
        assert is_permanent(exc) and not retry_in_task(exc)
    failed = Engine.failed_result("a.jpg", UnwritableName("outputs/a.png: too long"), {}, writing=True)
    assert failed.error_type == "unwritable_name" and not failed.retryable  # quarantined, with its reason
