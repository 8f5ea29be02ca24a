"""The allow-list that stands between a trigger form and the worker's storage."""

from __future__ import annotations

import pytest
from matting.access import check_allowed
from matting.errors import ConfigError

ALLOWED = ["/data", "s3://photos/incoming", "sftp:///upload"]
CONNS = ["", "aws_default", "sftp_default"]


@pytest.mark.parametrize(
    "location",
    ["/data", "/data/portraits", "file:///data/x", "s3://photos/incoming/hr", "sftp:///upload/a", "/data/./a"],
)
def test_inside_the_list(location):
    check_allowed({"source": location}, {"source_conn_id": "aws_default"}, ALLOWED, CONNS)


@pytest.mark.parametrize(
    "location",
    ["/etc", "/data2", "/database", "/data/../etc", "s3://photos/incomingx", "s3://other/incoming", "sftp:///"],
)
def test_outside_the_list(location):
    with pytest.raises(ConfigError, match="source"):
        check_allowed({"source": location}, {}, ALLOWED, CONNS)


def test_unknown_connection_is_refused_and_every_problem_is_named():
    with pytest.raises(ConfigError) as err:
        check_allowed({"destination": "/tmp/x"}, {"source_conn_id": "prod_admin"}, ALLOWED, CONNS)
    assert "destination '/tmp/x'" in str(err.value) and "'prod_admin'" in str(err.value)


# ---- one allow-list per DAG: the Variables where they name it, else the DAG's own ------------------
DECLARED = [
    {  # how the shipped background-removal DAGs declare their archive step
        "source": "{{ var.value.get('matting_source', '/data/incoming') }}",
        "destination": "{{ var.value.get('matting_destination', '/data/archive') }}",
        "source_conn_id": "{{ var.value.get('matting_source_conn_id', '') }}",
        "destination_conn_id": "{{ var.value.get('matting_destination_conn_id', '') }}",
    },
    {"source": "{{ params.source }}", "destination": "{{ ds }}/x"},  # the form's default; a run-only template
]


def test_a_dags_own_locations_are_its_declared_fields_rendered_without_a_run():
    from matting.access import own_locations

    variables = {"matting_destination": "s3://archive/shop-a", "matting_destination_conn_id": "aws_shop_a"}
    own = own_locations(DECLARED, {"source": "/data/portraits"}, lambda k, d: variables.get(k, d))
    assert own.locations == ["/data/incoming", "s3://archive/shop-a", "/data/portraits"]  # not "{{ ds }}/x"
    assert own.conn_ids == ["", "aws_shop_a"]
    own.check({"destination": "s3://archive/shop-a/matting_scheduled/2026"}, {"destination_conn_id": "aws_shop_a"})
    for place in ("s3://archive/shop-b", "/data", "/data/incoming/../archive2"):
        with pytest.raises(ConfigError):
            own.check({"destination": place}, {})


def test_templates_run_sandboxed():
    from matting.access import render_declared

    evil = "{{ ''.__class__.__mro__[1].__subclasses__() }}"
    assert render_declared(evil, {}, lambda k, d: d) is None
    assert render_declared("{{ var.value.missing }}", {}, lambda k, d: d) is None
    assert render_declared("/plain/path", {}, lambda k, d: d) == "/plain/path"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, None),
        ("", None),
        ('["/data", "s3://a"]', ["/data", "s3://a"]),
        ('"/data"', ["/data"]),
        ('{"id_photo_batch": ["/hr"], "*": ["/shared"]}', ["/shared"]),
        ('{"matting_scheduled": ["/shop"]}', ["/shop"]),
        ('{"id_photo_batch": ["/hr"]}', None),  # names other DAGs only: this one keeps its own
    ],
)
def test_variables_as_a_list_or_by_dag(raw, expected):
    from matting.access import listed_for

    assert listed_for(raw, "matting_scheduled") == expected


def test_the_variables_win_where_they_name_the_dag_and_own_is_asked_only_otherwise():
    from matting.access import AllowList, allowed_for

    asked = []

    def declared():
        asked.append(1)
        return [{"source": "/own", "source_conn_id": "own_conn"}], {}

    def variables(locations, conn_ids):
        values = {"matting_allowed_locations": locations, "matting_allowed_conn_ids": conn_ids}
        return lambda key, default: values.get(key) or default

    assert allowed_for("d", variables('["/v"]', '["c"]'), declared) == AllowList(["/v"], ["c"]) and not asked
    assert allowed_for("d", variables('{"other": ["/v"]}', None), declared) == AllowList(["/own"], ["own_conn"])
    assert allowed_for("d", variables('["/v"]', None), declared) == AllowList(["/v"], ["own_conn"])


def test_only_this_packages_tasks_lend_their_generic_field_names():
    """``location`` / ``conn_id`` mean other things in other providers (a BigQuery region, an SQL
    connection): a DAG's own places take them from matting's tasks only; ``source`` / ``destination``
    from any task, as before. No Airflow here: stand-in task objects."""
    from matting.access import declared_fields

    class OtherProvidersQuery:  # e.g. a BigQuery job: "location" is a region
        template_fields = ("location", "conn_id", "destination")
        location, conn_id, destination = "US", "warehouse", "/data/out"

    class Sensor(OtherProvidersQuery):
        pass

    Sensor.__module__ = "matting.sensors.new_files"  # a class of this package (or a subclass of one)
    assert declared_fields(OtherProvidersQuery()) == {"destination": "/data/out"}
    assert declared_fields(Sensor()) == {"destination": "/data/out", "location": "US", "conn_id": "warehouse"}
    serialized = OtherProvidersQuery()
    serialized._task_module = "matting.sensors.new_files"  # what a serialized task carries on the api-server
    assert declared_fields(serialized)["location"] == "US"
