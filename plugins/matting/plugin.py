"""The Airflow plugin: the results pages (a FastAPI app under ``/matting``, an entry in the UI's
navigation, and a "Results" tab on every DAG run's and task instance's page) and the operators'
"Results" link.

Registered by the ``airflow.plugins`` entry point when the package is installed; in the drop-in
layout by ``plugins/matting_plugin.py``. The FastAPI app (and Airflow's API security it needs) is
imported on the first request, so schedulers, triggerers and task processes that load plugins pay
nothing for it.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from matting import airflow_conf  # noqa: F401  (the [matting] settings come from Airflow's conf)
from matting.results.links import URL_PREFIX, ResultsLink


class LazyApp:
    """An ASGI app that builds ``matting.results.app`` on its first request."""

    def __init__(self) -> None:
        self._app = None

    async def __call__(self, scope, receive, send) -> None:
        if self._app is None:
            from matting.results.app import create_app

            self._app = create_app()
        await self._app(scope, receive, send)


class MattingPlugin(AirflowPlugin):
    name = "matting"
    fastapi_apps = [{"app": LazyApp(), "url_prefix": URL_PREFIX, "name": "Matting results"}]
    external_views = [
        {
            "name": "Matting results",
            "href": f"{URL_PREFIX}/",
            "destination": "nav",
            "category": "browse",
            "url_route": "matting",
        },
        {  # Airflow's UI fills in {DAG_ID} and {RUN_ID}; a run without results shows a short note
            "name": "Results",
            "href": f"{URL_PREFIX}/runs/{{DAG_ID}}/{{RUN_ID}}",
            "destination": "dag_run",
            "url_route": "matting_results",
        },
        {
            "name": "Results",
            "href": f"{URL_PREFIX}/runs/{{DAG_ID}}/{{RUN_ID}}",
            "destination": "task_instance",
            "url_route": "matting_results_ti",
        },
    ]
    operator_extra_links = [ResultsLink()]
