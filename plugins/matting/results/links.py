"""The "Results" button on a matting task: opens the run's page of the results UI."""

from __future__ import annotations

from urllib.parse import quote

from airflow.sdk import BaseOperatorLink

URL_PREFIX = "/matting"


def results_path(dag_id: str, run_id: str) -> str:
    """The run's results page under Airflow's own address (``[api] base_url``; root-relative when
    that is not set)."""
    from airflow.configuration import conf

    base = (conf.get("api", "base_url", fallback="") or "").rstrip("/")
    return f"{base}{URL_PREFIX}/runs/{quote(dag_id, safe='')}/{quote(run_id, safe='')}"


class ResultsLink(BaseOperatorLink):
    """Extra link from a task instance to its run's gallery, quarantine and reports."""

    name = "Results"

    def get_link(self, operator, *, ti_key) -> str:
        return results_path(ti_key.dag_id, ti_key.run_id)
