"""Which locations and connections a triggered run may touch (no Airflow import).

A DAG whose form takes free-form paths would let anyone allowed to trigger it read or write any path
or connection the worker reaches. The allow-list (Variable ``matting_allowed_locations``, a JSON list
of location prefixes, and ``matting_allowed_conn_ids``) is checked before any storage is opened."""

from __future__ import annotations

import posixpath

from matting.errors import ConfigError


def _normal(location: str) -> str:
    loc = location.strip()
    if loc.startswith("file://"):
        loc = loc[7:]
    scheme, sep, rest = loc.partition("://")
    if not sep:
        scheme, rest = "", loc
    if any(part == ".." for part in rest.split("/")):
        raise ConfigError(f"location {location!r} contains '..'; not allowed")
    rest = posixpath.normpath(rest) if rest else rest
    return f"{scheme}://{rest}" if scheme else rest


def _inside(location: str, prefix: str) -> bool:
    loc, pre = _normal(location), _normal(prefix).rstrip("/")
    return loc == pre or loc.startswith(pre + "/")


def check_allowed(
    locations: dict[str, str], conn_ids: dict[str, str], allowed_locations: list[str], allowed_conn_ids: list[str]
) -> None:
    """Raise ``ConfigError`` naming every field outside the allow-list (``{"source": "s3://..."}``)."""
    problems = []
    for field, loc in locations.items():
        try:
            if not any(_inside(loc, allowed) for allowed in allowed_locations):
                problems.append(f"{field} {loc!r} is outside the allowed locations {allowed_locations}")
        except ConfigError as exc:
            problems.append(f"{field}: {exc}")
    for field, conn in conn_ids.items():
        if (conn or "") not in allowed_conn_ids:
            problems.append(f"{field} {conn!r} is not an allowed connection id {allowed_conn_ids}")
    if problems:
        raise ConfigError(
            "refused before touching any storage: "
            + "; ".join(problems)
            + " (an admin can extend the Variables matting_allowed_locations / matting_allowed_conn_ids)"
        )
