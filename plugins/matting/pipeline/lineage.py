"""What a run read and wrote, named the way lineage tools and downstream DAGs name it: OpenLineage
datasets (namespace + name, as the OpenLineage naming spec and the Amazon / SFTP providers write them)
and the ``extra`` of the asset event a run publishes. Plain data: the operators turn it into
OpenLineage objects and Airflow asset events.

Dataset naming (one dataset per file)::

    s3://bucket/prefix      namespace s3://bucket        name prefix/<path>  (the object key)
    sftp:///dir             namespace sftp://host:port   name /dir/<path>    (host and port: the connection)
    /dir or file:///dir     namespace file               name /dir/<path>    (OpenLineage's local file system)
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass

from matting import layout


@dataclass(frozen=True, order=True)
class DatasetName:
    """One file as lineage tools name it."""

    namespace: str
    name: str


def dataset_root(location: str, sftp_authority: str | None = None) -> tuple[str, str]:
    """(namespace, name prefix) of a location as the storage layer reads it (``public_location``, the
    forms ``open_storage`` takes). ``sftp_authority`` is ``host:port`` of the SFTP connection (required
    for an ``sftp://`` location)."""
    location = public_location(location)
    if location.startswith("s3://"):
        bucket, _, prefix = location[5:].partition("/")
        return f"s3://{bucket}", prefix
    if location.startswith("sftp://"):
        if not sftp_authority:
            raise ValueError(f"the SFTP location {location!r} needs its connection's host:port for lineage")
        return f"sftp://{sftp_authority}", location[7:]
    return "file", location


def datasets(location: str, paths: Iterable[str], sftp_authority: str | None = None) -> list[DatasetName]:
    """One ``DatasetName`` per path (relative to ``location``), sorted, without duplicates."""
    namespace, root = dataset_root(location, sftp_authority)
    names = {_join(root, p) for p in paths if p}
    return sorted(DatasetName(namespace, n) for n in names)


def _join(root: str, rel: str) -> str:
    rel = rel.strip("/")
    if not root:
        return rel
    return posixpath.join(root, rel) if root != "/" else "/" + rel


def public_location(location: str) -> str:
    """``location`` as an asset event may show it to anyone who can read assets, read the way
    ``open_storage`` reads it: no credentials and nothing the storage layer ignores, a local folder
    absolute (a consumer on another worker, another cwd). ``sftp://user:pw@host/dir`` -> ``sftp:///dir``
    (the connection names the server); ``s3://bucket/prefix`` as it is; anything else is a local path
    (``file://`` dropped), as ``open_storage`` takes it."""
    location = str(location)
    if location.startswith("sftp://"):
        path = location[7:]
        if not path.startswith("/"):  # sftp://[user@]host/path: the path after the host
            path = "/" + path.partition("/")[2]
        return "sftp://" + (path.rstrip("/") or "/")
    if location.startswith("s3://"):
        bucket, _, prefix = location[5:].partition("/")
        prefix = prefix.strip("/")
        return f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
    if location.startswith("file://"):
        location = location[7:]
    return os.path.abspath(location)


def location_of(destination: str, *parts: str) -> str:
    """``destination`` (as ``public_location`` shows it) joined with ``parts``: what ``open_storage`` and
    the results pages take with the destination's connection id."""
    base = public_location(destination)
    rest = "/".join(p.strip("/") for p in parts if p and p.strip("/"))
    if not rest:
        return base
    return base + rest if base.endswith("/") else f"{base}/{rest}"


def run_written(run_prefix: str, manifest: dict) -> list[str]:
    """The run-level files an archived run holds (relative to the destination): its manifest and, when
    written, the zip and the contact sheet (``manifest``: the manifest or ``close_run``'s summary)."""
    names = [layout.MANIFEST] + [str(manifest[k]) for k in ("zip", "contact_sheet") if manifest.get(k)]
    return [posixpath.join(run_prefix, n) if run_prefix else n for n in names]


def results_event_extra(
    *,
    dag_id: str,
    run_id: str,
    task_id: str,
    destination: str,
    destination_conn_id: str,
    run_prefix: str,
    counts: dict,
    outputs_prefix: str,
    manifest: str = layout.MANIFEST,
    zip_name: str | None = None,
) -> dict:
    """The ``extra`` of the asset event a run publishes: where its results are, in the destination's own
    form without credentials (``public_location``) plus its connection id, and the run's counts. JSON
    only (Airflow stores it as is)."""
    return {
        "dag_id": dag_id,
        "run_id": run_id,
        "task_id": task_id,
        "destination": public_location(destination),
        "destination_conn_id": destination_conn_id or "",
        "run_prefix": run_prefix,
        "run_folder": location_of(destination, run_prefix),
        "manifest": location_of(destination, run_prefix, manifest),
        "outputs_prefix": location_of(destination, outputs_prefix) + "/",
        "zip": location_of(destination, run_prefix, zip_name) if zip_name else None,
        "counts": {k: int(counts.get(k, 0) or 0) for k in ("files", "ok", "failed")},
    }


def has_new_results(counts: dict) -> bool:
    """A run publishes an event only when it made at least one output: a run with no new photos, or one
    that refused every photo, hands nothing on (a downstream DAG is not started for nothing)."""
    return int(counts.get("ok", 0) or 0) > 0
