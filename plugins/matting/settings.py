"""Every setting of the package in one table: the ``[matting]`` section of Airflow's configuration.

One source of truth for three things: the values the code reads (typed, one parsing rule), the
``config`` block of ``get_provider_info`` (so ``airflow config list --section matting`` and Admin ->
Configuration show every option with its description and default), and the table in
``docs/configuration.md`` (``python -m matting config --markdown``; a test fails when they differ).

Where a value comes from, first match wins:

1. the configured value: inside Airflow, Airflow's own ``conf`` (``AIRFLOW__MATTING__<KEY>``,
   ``airflow.cfg``'s ``[matting]``, ``_cmd``/``_secret`` variants, a secrets backend) once the
   Airflow layer has called :func:`use_source`; elsewhere (the ``matting`` CLI, the core's tests) the
   environment variable ``AIRFLOW__MATTING__<KEY>``;
2. the old ``MATTING_<NAME>`` environment variable of release 0.1, with a deprecation
   warning that names the new key (kept for one release);
3. the default in :data:`OPTIONS`.

An empty value counts as unset, so a compose file's ``${VAR:-}`` passes through harmlessly. This
module imports nothing from Airflow.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass

from matting.errors import ConfigError

SECTION = "matting"
VERSION_ADDED = "0.2.0"


class MattingDeprecationWarning(FutureWarning):
    """A ``MATTING_*`` environment variable was used; its ``[matting]`` key replaces it."""


@dataclass(frozen=True)
class Option:
    key: str
    type: str  # Airflow's config types: string, integer, float, boolean
    default: str  # as Airflow writes it; "" = unset (the description says what that means)
    description: str
    group: str
    example: str | None = None
    legacy: str | None = None  # the old environment variable; None = MATTING_<KEY>
    sensitive: bool = False
    at_least: float | None = None  # a smaller configured value is read as this (e.g. at least 1 attempt)

    @property
    def env(self) -> str:
        return f"AIRFLOW__{SECTION.upper()}__{self.key.upper()}"

    @property
    def old_env(self) -> str:
        return self.legacy or f"MATTING_{self.key.upper()}"


def _o(key, type_, default, group, description, example=None, legacy=None, at_least=None) -> Option:
    return Option(key, type_, default, " ".join(description.split()), group, example, legacy, at_least=at_least)


OPTIONS: tuple[Option, ...] = (
    # -- models and inference (workers) --
    _o(
        "model_dir",
        "string",
        "",
        "models",
        """Folder that holds the model weights. Unset: ``models/``
        beside the ``plugins/`` folder that holds the package (a checkout, ``$AIRFLOW_HOME``, the image),
        else the user's cache ``~/.cache/matting/models``.""",
        "/opt/airflow/models",
    ),
    _o(
        "model",
        "string",
        "",
        "models",
        """Model used when a task names none. Unset: the manifest's
        ``default_model`` (u2netp).""",
        "modnet",
    ),
    _o(
        "model_manifest",
        "string",
        "",
        "models",
        """A models.json to use instead of the shipped one.""",
        "/opt/airflow/include/models.json",
    ),
    _o(
        "extra_manifest",
        "string",
        "",
        "models",
        """Extra models.json files (``:``-separated) whose
        entries add to or override the shipped ones (custom models).""",
        "/opt/airflow/include/my-models.json",
    ),
    _o(
        "scenarios",
        "string",
        "",
        "models",
        """Extra scenario YAML files (``:``-separated), overriding
        shipped scenarios of the same name.""",
        "/opt/airflow/include/scenarios.yaml",
    ),
    _o(
        "idphoto_specs",
        "string",
        "",
        "models",
        """Extra ID-photo preset YAML files (``:``-separated),
        overriding shipped presets of the same name.""",
        "/opt/airflow/include/specs.yaml",
    ),
    _o(
        "providers",
        "string",
        "tensorrt,cuda,cpu",
        "models",
        """ONNX Runtime execution providers in order
        of preference; those this onnxruntime build lacks are skipped and CPU is always the last
        fallback.""",
        "cpu",
    ),
    _o(
        "gpu_mem_limit",
        "string",
        "",
        "models",
        """CUDA arena cap per session (and TensorRT workspace),
        e.g. ``4GB``. Unset: no cap.""",
        "4GB",
    ),
    _o("device_id", "integer", "0", "models", """GPU index for the CUDA/TensorRT providers."""),
    _o(
        "threads",
        "integer",
        "",
        "models",
        """Intra-op threads per ONNX Runtime session. Unset: every
        core this process may use.""",
        "2",
    ),
    _o(
        "spin",
        "boolean",
        "False",
        "models",
        """Let ONNX Runtime's threads spin between runs (lower
        latency, a busy CPU).""",
    ),
    _o(
        "trt_cache",
        "string",
        "",
        "models",
        """Folder for TensorRT engine caches. Unset: engines are
        rebuilt by every new session.""",
        "/opt/airflow/trt-cache",
    ),
    _o(
        "infer_batch",
        "integer",
        "",
        "models",
        """Photos stacked into one inference. Unset: 8 when the
        session runs on CUDA or TensorRT, 1 on CPU (batching only slows a CPU down).""",
        "4",
    ),
    # -- limits and retries (workers) --
    _o(
        "max_bytes",
        "integer",
        str(256 * 1024 * 1024),
        "limits",
        """Largest input file read at all, in
        bytes; bigger files are quarantined from the listing, never read.""",
    ),
    _o(
        "max_pixels",
        "integer",
        "50000000",
        "limits",
        """Decompression-bomb guard: images with more
        pixels are quarantined.""",
    ),
    _o(
        "io_timeout_s",
        "float",
        "60",
        "limits",
        """How long one remote operation (connect, one
        read/write request, a listing page) may stall before the attempt fails.""",
    ),
    _o(
        "io_attempts",
        "integer",
        "3",
        "limits",
        """In-task attempts for a photo that hit an
        infrastructure error; after the last one the task fails and Airflow retries it.""",
        at_least=1,
    ),
    _o(
        "io_backoff_s",
        "float",
        "2",
        "limits",
        """Wait before in-task attempt n+1: this x 2^(n-1)
        seconds.""",
    ),
    _o(
        "upload_grace_s",
        "float",
        "300",
        "limits",
        """A local/SFTP file that looks incomplete (empty,
        cut short) and was modified less than this many seconds ago is left for a later run: it may
        still be uploading.""",
    ),
    _o(
        "s3_max_attempts",
        "integer",
        "5",
        "limits",
        """botocore's attempts per S3 request (standard
        retry mode).""",
        at_least=1,
    ),
    _o(
        "reuse",
        "boolean",
        "True",
        "limits",
        """The result cache: the same input bytes with the same model, scenario and output options are
        matted once; later copies (another name, batch or run) reuse the output. Off: every photo is
        processed. Not used for ID photos.""",
    ),
    _o(
        "reuse_max_age_days",
        "float",
        "30",
        "limits",
        """Cache entries older than this are ignored, and deleted by the archive step.""",
    ),
    # -- the DAGs in dags/ (read when the scheduler parses them) --
    _o(
        "data_dir",
        "string",
        "/opt/airflow/data",
        "dags",
        """Root of the local ``incoming/`` and
        ``archive/`` folders the DAGs use by default.""",
    ),
    _o("retries", "integer", "3", "dags", """Airflow task retries of the matting DAGs."""),
    _o(
        "retry_delay_s",
        "integer",
        "60",
        "dags",
        """First retry delay in seconds (then exponential, at
        most 30 min).""",
    ),
    _o(
        "pool",
        "string",
        "default_pool",
        "dags",
        """Pool of the matting tasks (a GPU worker:
        ``matting_gpu``, slots = GPUs x sessions per GPU).""",
        "matting_gpu",
    ),
    _o("queue", "string", "default", "dags", """Queue of the matting tasks (a GPU worker: ``gpu``).""", "gpu"),
    _o(
        "executor",
        "string",
        "",
        "dags",
        """Executor of the matting tasks only (Airflow 3's multiple
        executors). Unset: the default executor.""",
        "KubernetesExecutor",
    ),
    _o(
        "deadlines",
        "boolean",
        "True",
        "dags",
        """Declare each DAG's SLA as a Deadline Alert (off for
        ``dag.test()``, which fails at the end of a run that declares one in 3.3.2).""",
    ),
    _o(
        "sla_minutes",
        "float",
        "",
        "dags",
        """The Deadline Alert's interval from the run being queued.
        Unset: each DAG's own (60-120 min).""",
        "90",
    ),
    _o("schedule", "string", "0 9,13,18 * * *", "dags", """Cron of ``matting_scheduled``."""),
    _o("s3_schedule", "string", "*/15 * * * *", "dags", """Cron of ``matting_s3_ingest``."""),
    _o("sftp_schedule", "string", "*/15 * * * *", "dags", """Cron of ``matting_sftp_ingest``."""),
    _o("poke_interval_s", "float", "30", "dags", """Seconds between the ingest sensors' listings."""),
    _o(
        "settle_seconds",
        "float",
        "10",
        "dags",
        """A new file must keep its size and mtime this long
        before the ingest sensors hand it on.""",
    ),
    _o(
        "max_files_per_run",
        "integer",
        "500",
        "dags",
        """Most files one ingest run takes; the rest wait
        for the next run.""",
    ),
    _o(
        "s3_events_queue_url",
        "string",
        "",
        "dags",
        """SQS queue of S3 event notifications for
        ``matting_s3_events``. Unset: that DAG has no schedule.""",
        "https://sqs.eu-west-1.amazonaws.com/123456789012/photos",
    ),
    _o(
        "s3_events_dlq_url",
        "string",
        "",
        "dags",
        """Dead-letter queue for event messages that are no
        S3 event.""",
    ),
    _o("s3_events_conn_id", "string", "aws_default", "dags", """AWS connection of the SQS watcher."""),
    _o("s3_events_wait_s", "integer", "10", "dags", """SQS long-poll wait per receive."""),
    _o(
        "s3_events_visibility_s",
        "integer",
        "300",
        "dags",
        """SQS visibility timeout of a received
        message until the run that takes it has archived.""",
    ),
    _o(
        "s3_events_lookback_h",
        "float",
        "24",
        "dags",
        """A ``matting_s3_events`` run takes every event of
        the asset from the last this many hours.""",
    ),
    _o(
        "webhook_conn_id",
        "string",
        "matting_webhook",
        "dags",
        """HTTP connection that failure and
        deadline notifications are posted to. No such connection: they are only logged.""",
    ),
    # -- the results pages (API server) --
    _o(
        "ui_zip_redirect",
        "boolean",
        "True",
        "ui",
        """The results page's zip download redirects to a
        presigned S3 URL; off passes the bytes through (an S3 host the browser cannot reach).""",
    ),
    _o(
        "ui_max_zip_mb",
        "float",
        "1024",
        "ui",
        """Largest zip the results page passes through when it
        does not redirect.""",
    ),
    _o(
        "ui_cache_dir",
        "string",
        "",
        "ui",
        """Thumbnail cache of the results pages. Unset: a
        ``matting-ui-cache`` folder in the system's temporary directory.""",
        "/var/cache/matting-ui",
    ),
    _o(
        "ui_cache_max_mb",
        "float",
        "512",
        "ui",
        """Largest size of that cache; the least recently shown images are deleted beyond it.""",
    ),
)

BY_KEY = {o.key: o for o in OPTIONS}

# -- where values come from ------------------------------------------------------------------------

Source = Callable[[str], "str | None"]


def _env_source(key: str) -> str | None:
    return os.environ.get(BY_KEY[key].env)


_source: Source = _env_source
_warned: set[str] = set()


def use_source(source: Source | None) -> None:
    """Read configured values through ``source(key)`` (the Airflow layer passes Airflow's ``conf``);
    None restores the environment-only source."""
    global _source
    _source = source or _env_source


def airflow_source(conf) -> Source:
    """A source over an Airflow config parser: ``conf.get("matting", key)``. Airflow answers with the
    provider's declared default when nothing is set; that is the same default as here, so the old
    variable may still override it."""

    def get(key: str) -> str | None:
        return conf.get(SECTION, key, fallback=None)

    return get


def raw(key: str) -> tuple[str, str]:
    """The value of ``key`` as text, and where it came from (``[matting] key``, the old variable, or
    ``default``)."""
    option = BY_KEY[key]
    configured = _source(key)
    configured = None if configured is None or str(configured).strip() == "" else str(configured)
    if configured is not None and configured != option.default:
        return configured, f"[{SECTION}] {key}"
    old = os.environ.get(option.old_env, "")
    if old.strip():
        if option.old_env not in _warned:
            _warned.add(option.old_env)
            message = (
                f"{option.old_env} is deprecated and will stop working in the next release: "
                f"set [{SECTION}] {key} in airflow.cfg or {option.env} instead"
            )
            warnings.warn(message, MattingDeprecationWarning, stacklevel=3)
        return old, option.old_env
    return (configured if configured is not None else option.default), "default"


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def flag(value, what: str = "value") -> bool | None:
    """A yes/no as settings, templated operator arguments and trigger params give it: True, False,
    or None when empty (the setting decides); anything else is a ``ConfigError`` naming ``what``."""
    if value is None or isinstance(value, bool):
        return value
    low = str(value).strip().lower()
    if low in ("", "none", "null"):
        return None
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ConfigError(f"{what} must be true, false or empty, got {value!r}")


def _parse(option: Option, text: str, origin: str):
    if text == "":
        return None
    try:
        if option.type == "integer":
            number = float(text)
            if number != int(number):
                raise ValueError
            return int(number)
        if option.type == "float":
            return float(text)
    except ValueError:
        raise ConfigError(
            f"{origin} must be {'an' if option.type == 'integer' else 'a'} {option.type}, got {text!r}"
        ) from None
    if option.type == "boolean":
        try:
            value = flag(text, origin)
        except ConfigError:
            value = None
        if value is None:  # "none" is no answer for a setting either (empty already means its default)
            raise ConfigError(f"{origin} must be true or false, got {text!r}")
        return value
    return text


def value(key: str):
    """The typed value of ``key`` (str, int, float or bool); None where unset means "see the
    description" (e.g. ``threads``: every core)."""
    text, origin = raw(key)
    if not origin.startswith(BY_KEY[key].old_env):
        origin = f"[{SECTION}] {key} ({BY_KEY[key].env})"
    parsed = _parse(BY_KEY[key], text, origin)
    floor = BY_KEY[key].at_least
    if floor is not None and parsed is not None and parsed < floor:
        return type(parsed)(floor)
    return parsed


def paths(key: str) -> list[str]:
    """A ``:``-separated list of files (``os.pathsep``)."""
    return [p for p in (value(key) or "").split(os.pathsep) if p]


# -- the same table for Airflow and for people -----------------------------------------------------


def provider_config() -> dict:
    """The ``config`` block of ``get_provider_info`` (Airflow's config.yml schema)."""
    options = {}
    for o in OPTIONS:
        entry = {
            "description": o.description,
            "version_added": VERSION_ADDED,
            "type": o.type,
            "example": o.example,
            "default": o.default or None,
        }
        if o.sensitive:
            entry["sensitive"] = True
        options[o.key] = entry
    return {
        SECTION: {
            "description": "Settings of the airflow-matting provider (background removal and ID photos).",
            "options": options,
        }
    }


GROUPS = {
    "models": "Models and inference (workers)",
    "limits": "Limits and retries (workers)",
    "dags": "The shipped DAGs (read when the DAGs are parsed)",
    "ui": "Results pages (API server)",
}


def markdown_table() -> str:
    """The configuration reference table of ``docs/configuration.md``."""
    lines = []
    for group, title in GROUPS.items():
        lines += [
            f"**{title}**",
            "",
            "| key (`AIRFLOW__MATTING__...`) | type | default | what it does |",
            "|---|---|---|---|",
        ]
        for o in OPTIONS:
            if o.group == group:
                default = f"`{o.default}`" if o.default else "unset"
                lines.append(f"| `{o.key}` | {o.type} | {default} | {o.description.replace('|', '/')} |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
