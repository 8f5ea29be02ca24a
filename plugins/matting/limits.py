"""Limits and timeouts (the ``[matting]`` settings ``max_bytes``, ``io_*``, ``upload_grace_s``,
``s3_max_attempts``), typed, with their defaults in :mod:`matting.settings` (no Airflow import)."""

from __future__ import annotations

from matting import settings


def max_bytes() -> int:
    """Largest input file read at all (``[matting] max_bytes``); bigger ones are refused from the listing."""
    return settings.value("max_bytes")


def io_timeout_s() -> float:
    """How long one remote operation (connect, one read/write request, a listing page) may stall
    (``[matting] io_timeout_s``) before the attempt fails."""
    return settings.value("io_timeout_s")


def attempts() -> int:
    """In-task attempts for a file that hit an infrastructure error (``[matting] io_attempts``), with
    exponential backoff between them; after the last one the task fails and Airflow retries it."""
    return max(1, settings.value("io_attempts"))


def backoff_s(attempt: int) -> float:
    """Seconds to wait before in-task attempt ``attempt + 1`` (``[matting] io_backoff_s`` x 2^(n-1))."""
    return settings.value("io_backoff_s") * 2 ** (attempt - 1)


def upload_grace_s() -> float:
    """A local/SFTP file that looks incomplete (truncated, empty, not yet an image) and was modified
    less than this long ago (``[matting] upload_grace_s``) is left for a later run, not quarantined: it
    may still be uploading. OpenSSH's `sftp -l` writes a burst, then pauses longer than any settle time."""
    return settings.value("upload_grace_s")


def s3_max_attempts() -> int:
    """botocore's attempts per S3 request in its standard retry mode (``[matting] s3_max_attempts``)."""
    return max(1, settings.value("s3_max_attempts"))
