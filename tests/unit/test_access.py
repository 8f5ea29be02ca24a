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
