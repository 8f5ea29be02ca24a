"""Which locations and connections a DAG's runs may touch, and its results pages may read (no
Airflow import).

A DAG whose form takes free-form paths would let anyone allowed to trigger it read or write any path
or connection the worker reaches; a results page that believed a run's XCom would show whatever
folder the XCom names. Both ask one allow-list per DAG:

- Variables ``matting_allowed_locations`` (location prefixes) and ``matting_allowed_conn_ids``: a JSON
  list (every DAG) or a JSON object of lists by DAG id, with ``"*"`` for the DAGs not named.
- Where neither names the DAG: the DAG's **own** locations and connections, i.e. the ``source`` /
  ``destination`` / ``*_conn_id`` fields its tasks declare, rendered with the DAG's default params and
  the Variables (``own_locations``), never with what a run was triggered with.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

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


LOCATION_FIELDS = ("source", "destination", "location", "ledger_location")  # operators' and sensors' fields
CONN_FIELDS = ("source_conn_id", "destination_conn_id", "conn_id", "ledger_conn_id")
OWN_FIELDS_ONLY = ("location", "ledger_location", "conn_id", "ledger_conn_id")
"""Names other providers use for other things (a BigQuery ``location``, an SQL ``conn_id``): read from
this package's own tasks only."""
LOCATIONS_VAR, CONN_IDS_VAR = "matting_allowed_locations", "matting_allowed_conn_ids"


def listed_for(raw: object, dag_id: str) -> list[str] | None:
    """A Variable's value (JSON text, or already parsed) as the list for ``dag_id``; None when it does
    not say (unset, or an object naming neither the DAG nor ``"*"``): the DAG's own apply."""
    if raw is None or raw == "":
        return None
    value = json.loads(raw) if isinstance(raw, str) else raw
    if isinstance(value, Mapping):
        value = value.get(dag_id, value.get("*"))
        if value is None:
            return None
    if isinstance(value, str):
        return [value]
    if not isinstance(value, Iterable):
        raise ConfigError(f"an allow-list must be a JSON list of strings or an object of them, got {value!r}")
    return [str(v) for v in value]


class _Vars:
    """``var.value`` in the templates a DAG declares (``var.value.get('name', 'default')``)."""

    def __init__(self, get: Callable[[str, str | None], str | None]) -> None:
        self._get = get

    def get(self, key: str, default: str | None = None) -> str | None:
        return self._get(key, default)

    def __getattr__(self, key: str) -> str:
        value = self._get(key, None)
        if value is None:
            raise KeyError(key)
        return value


def render_declared(template: object, params: Mapping, get_var: Callable[[str, str | None], str | None]) -> str | None:
    """A declared field rendered as a run would render it with nothing triggered: the DAG's default
    ``params`` and the Variables; None when it needs anything else (a run's date, an upstream XCom)."""
    if not isinstance(template, str):
        return None
    if "{{" not in template and "{%" not in template:
        return template
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    env = SandboxedEnvironment(undefined=StrictUndefined)
    try:
        return env.from_string(template).render(params=dict(params), var={"value": _Vars(get_var)})
    except Exception:  # undefined names, a failing filter: not something a DAG owns by default
        return None


@dataclass(frozen=True)
class AllowList:
    locations: list[str]
    conn_ids: list[str]

    def check(self, locations: dict[str, str], conn_ids: dict[str, str]) -> None:
        """``ConfigError`` naming every field outside this list (see ``check_allowed``)."""
        check_allowed(locations, conn_ids, self.locations, self.conn_ids)


def declared_fields(task: object) -> dict[str, object]:
    """The location and connection fields a task declares, as written in the DAG file (a mapped
    task's are in its ``partial_kwargs``); works on a DAG file's tasks and on serialized ones."""
    partial = getattr(task, "partial_kwargs", None) or {}
    templated = tuple(getattr(task, "template_fields", ()) or ())
    modules = [str(getattr(task, "_task_module", None) or "")] + [c.__module__ for c in type(task).__mro__]
    ours = any(m == "matting" or m.startswith("matting.") for m in modules)  # a subclass of ours counts
    out: dict[str, object] = {}
    for name in LOCATION_FIELDS + CONN_FIELDS:
        if name in OWN_FIELDS_ONLY and not ours:
            continue
        if name in partial:
            out[name] = partial[name]
        elif name in templated:
            out[name] = getattr(task, name, None)
    return out


def own_locations(
    declared: Iterable[Mapping[str, object]], params: Mapping, get_var: Callable[[str, str | None], str | None]
) -> AllowList:
    """The DAG's own locations and connection ids: each task's declared fields (``declared``: one
    mapping of field -> template per task), rendered by ``render_declared``."""
    locations: list[str] = []
    conn_ids: list[str] = []
    for fields in declared:
        for name, template in fields.items():
            if template is None and name in CONN_FIELDS:  # not set: the storage's own default connection
                template = ""
            value = render_declared(template, params, get_var)
            if value is None:
                continue
            if name in LOCATION_FIELDS and value.strip() and value not in locations:
                locations.append(value)
            elif name in CONN_FIELDS and value not in conn_ids:
                conn_ids.append(value)
    return AllowList(locations, conn_ids)


Declared = Callable[[], tuple[Iterable[Mapping[str, object]], Mapping]]
"""Returns the DAG's tasks' declared fields (``declared_fields`` of each) and its default params."""


def allowed_for(dag_id: str, get_var: Callable[[str, str | None], str | None], declared: Declared) -> AllowList:
    """The allow-list of ``dag_id``: the Variables' lists where they name it (or ``"*"``), else the
    DAG's own (``own_locations``; ``declared`` is called only then). The one rule of the operators
    (in the worker) and the results pages (in the api-server): each passes its way to read Variables
    and the DAG as written."""
    locations = listed_for(get_var(LOCATIONS_VAR, None), dag_id)
    conn_ids = listed_for(get_var(CONN_IDS_VAR, None), dag_id)
    if locations is None or conn_ids is None:
        fields, params = declared()
        mine = own_locations(fields, params, get_var)
        locations = mine.locations if locations is None else locations
        conn_ids = mine.conn_ids if conn_ids is None else conn_ids
    return AllowList(locations, conn_ids)
