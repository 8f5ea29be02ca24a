"""Typed errors: one class per failure kind, each with a stable ``code`` for manifests and logs.

Per-image errors (``ImageError``) are caught at the per-image boundary and recorded; model errors
(``ModelError``) stop a run before it starts, because no image could succeed without the model.
"""

from __future__ import annotations

import errno


class MattingError(Exception):
    """Base of every error this package raises on purpose."""

    code = "error"


# --- per-image errors -------------------------------------------------------------------------


class ImageError(MattingError):
    """A single input could not be processed; the rest of the batch goes on."""

    code = "image_error"


class EmptyFile(ImageError):
    code = "empty_file"


class NotAnImage(ImageError):
    code = "not_an_image"


class TruncatedImage(ImageError):
    code = "truncated_image"


class ImageTooLarge(ImageError):
    """Pixel count over the configured limit (decompression-bomb guard)."""

    code = "image_too_large"


class CorruptImage(ImageError):
    code = "corrupt_image"


class FileTooLarge(ImageError):
    """Byte size over ``[matting] max_bytes``: refused from the listing, never read."""

    code = "file_too_large"


class UnwritableName(ImageError):
    """A name the storage cannot hold (longer than it allows, or characters it refuses) even after the
    naming plan shortened it: the photo's own problem, quarantined, never an infrastructure retry."""

    code = "unwritable_name"


# --- not the file's fault --------------------------------------------------------------------


class SourceChanged(MattingError):
    """The file under this name is no longer the version that was detected (re-uploaded, growing):
    it is left untouched for the next run, which sees it as a new file."""

    code = "source_changed"


class ShortRead(ConnectionError):
    """Fewer bytes arrived than the file holds (a connection cut mid-transfer that the client did not
    report as an error, as paramiko's prefetch can do): the transfer's fault, never the file's, so it
    is retried and the photo is never quarantined as truncated."""


class InfrastructureError(MattingError):
    """Storage, network, disk or runtime failures that outlived the in-task retries: the task fails
    (Airflow retries it) and the affected originals stay where they were; nothing is quarantined."""

    code = "infrastructure_error"


class AccessError(MattingError):
    """A location that can never be read as configured (bad credentials, unknown connection, missing
    bucket, unsafe path): the task fails at once, without waiting out a sensor's timeout."""

    code = "access_error"


# --- model errors -----------------------------------------------------------------------------


class ModelError(MattingError):
    code = "model_error"


class UnknownModel(ModelError):
    code = "unknown_model"


class UnsupportedModel(ModelError):
    code = "unsupported_model"


class ModelMissing(ModelError):
    code = "model_missing"


class ModelCorrupt(ModelError):
    code = "model_corrupt"


class FetchError(ModelError):
    code = "fetch_failed"


class ConfigError(MattingError):
    """Bad scenario, output option or setting: a user mistake, reported before any work starts."""

    code = "config_error"


# --- ID-photo rejections (per image) ------------------------------------------------------------


class NoFaceFound(ImageError):
    code = "no_face"


class MultipleFaces(ImageError):
    code = "multiple_faces"


class FaceCut(ImageError):
    """The preset's framing would put part of the face outside the photo."""

    code = "face_cut"


# --- which failures no retry can fix ------------------------------------------------------------

# botocore ClientError codes that mean "these credentials / this bucket or queue will not work"
_PERMANENT_AWS_CODES = {
    "AccessDenied",
    "AllAccessDisabled",
    "InvalidAccessKeyId",
    "InvalidBucketName",
    "NoSuchBucket",
    "SignatureDoesNotMatch",
    "AuthorizationHeaderMalformed",
    "InvalidToken",
    "ExpiredToken",
    "UnrecognizedClientException",
    "AWS.SimpleQueueService.NonExistentQueue",
    "QueueDoesNotExist",
}
# by class name, so the core imports neither Airflow, paramiko nor botocore to tell them apart
_PERMANENT_CLASS_NAMES = {
    "AirflowNotFoundException",  # the connection id does not exist
    "AuthenticationException",  # paramiko: wrong password or key (BadAuthenticationType is one)
    "NoCredentialsError",
    "PartialCredentialsError",
    "UnsafePath",  # matting.storage's (defined there, which imports this module)
}


_RETRYING_CLIENTS = ("botocore", "boto3", "s3transfer")


def retried_by_client(exc: BaseException) -> bool:
    """True for an error raised by botocore, which (standard retry mode, ``[matting] s3_max_attempts``)
    has already retried every transient S3 failure before giving up: another in-task round would
    multiply its attempts, not add a chance."""
    return any(cls.__module__.split(".")[0] in _RETRYING_CLIENTS for cls in type(exc).__mro__[:-1])


def retry_in_task(exc: BaseException) -> bool:
    """Whether an in-task round may try again after ``exc``: not for a permanent error, nor for one
    the storage client already retried. Who owns which failure (docs/nothing-lost.md): botocore
    retries each S3 request; in-task rounds retry what no client retried (an SFTP session that
    died, a short read, a local disk error); Airflow's task retries cover outages longer than a task."""
    return not is_permanent(exc) and not retried_by_client(exc)


def is_permanent(exc: BaseException) -> bool:
    """True for errors that the same call will hit again however often it is retried: bad or missing
    credentials, an unknown connection, a bucket that does not exist, an unsafe path, a bad setting,
    a folder this account may not read. Network trouble, timeouts, throttling and 5xx are transient."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    if names & _PERMANENT_CLASS_NAMES or isinstance(exc, (PermissionError, ConfigError)):
        return True
    return s3_error_code(exc) in _PERMANENT_AWS_CODES or name_refused(exc)


# OpenSSH's sftp-server answers ENAMETOOLONG and EINVAL with SSH2_FX_BAD_MESSAGE, which paramiko raises
# as a bare OSError("Bad message") (no errno): on a write, mkdir or rename it is about the name
_SFTP_NAME_REFUSALS = ("Bad message",)


def name_refused(exc: BaseException) -> bool:
    """True when ``exc`` says a storage refused a *name*: too long (``ENAMETOOLONG``; S3's
    ``KeyTooLongError``; an OpenSSH server's "Bad message"), or characters the filesystem does not
    allow (``EINVAL`` on a call that names a file). The same name fails every time: not retried."""
    if isinstance(exc, UnwritableName):
        return True
    if isinstance(exc, OSError):
        if exc.errno == errno.ENAMETOOLONG:
            return True
        if exc.errno == errno.EINVAL and exc.filename is not None:
            return True
        if exc.errno is None and len(exc.args) == 1 and exc.args[0] in _SFTP_NAME_REFUSALS:
            return True
    return s3_error_code(exc) == "KeyTooLongError"


def s3_error_code(exc: BaseException) -> str | None:
    """The error code of a botocore ``ClientError`` (``NoSuchKey``, ``PreconditionFailed``, ``404``,
    ...), None for anything else: the one reading of it, for the storage backends and is_permanent."""
    response = getattr(exc, "response", None)
    return (response.get("Error") or {}).get("Code") if isinstance(response, dict) else None
