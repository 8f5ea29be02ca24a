"""Limits and timeouts read from the environment, with their defaults in one place (no Airflow import).

Unset or empty means the default, so a compose file's ``${VAR:-}`` passes through harmlessly."""

from __future__ import annotations

import os

from matting.errors import ConfigError


def env_number(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    try:
        return float(raw) if raw.strip() else float(default)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from exc


DEFAULT_MAX_BYTES = 256 * 1024 * 1024
DEFAULT_IO_TIMEOUT_S = 60.0
DEFAULT_ATTEMPTS = 3


def max_bytes() -> int:
    """Largest input file read at all (``MATTING_MAX_BYTES``); bigger ones are refused from the listing."""
    return int(env_number("MATTING_MAX_BYTES", DEFAULT_MAX_BYTES))


def io_timeout_s() -> float:
    """How long one remote operation (connect, one read/write request, a listing page) may stall
    (``MATTING_IO_TIMEOUT_S``) before the attempt fails."""
    return env_number("MATTING_IO_TIMEOUT_S", DEFAULT_IO_TIMEOUT_S)


def attempts() -> int:
    """In-task attempts for a file that hit an infrastructure error (``MATTING_IO_ATTEMPTS``), with
    exponential backoff between them; after the last one the task fails and Airflow retries it."""
    return max(1, int(env_number("MATTING_IO_ATTEMPTS", DEFAULT_ATTEMPTS)))


def backoff_s(attempt: int) -> float:
    """Seconds to wait before in-task attempt ``attempt + 1`` (``MATTING_IO_BACKOFF_S`` x 2^(n-1))."""
    return env_number("MATTING_IO_BACKOFF_S", 2.0) * 2 ** (attempt - 1)


def upload_grace_s() -> float:
    """A local/SFTP file that looks incomplete (truncated, empty, not yet an image) and was modified
    less than this long ago (``MATTING_UPLOAD_GRACE_S``) is left for a later run, not quarantined: it
    may still be uploading. OpenSSH's `sftp -l` writes a burst, then pauses longer than any settle time."""
    return env_number("MATTING_UPLOAD_GRACE_S", 300.0)


def s3_max_attempts() -> int:
    """botocore's attempts per S3 request in its standard retry mode (``MATTING_S3_MAX_ATTEMPTS``)."""
    return max(1, int(env_number("MATTING_S3_MAX_ATTEMPTS", 5)))
