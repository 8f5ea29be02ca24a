"""Airflow layer: the ``[matting]`` settings are read through Airflow's own ``conf`` (environment
``AIRFLOW__MATTING__*``, ``airflow.cfg``, ``_cmd``/``_secret`` variants, secrets backends).

Imported by every Airflow-facing module (operators, sensors, triggers, notifiers, the DAG helpers,
the results pages), so any process that runs this package inside Airflow reads one configuration.
"""

from __future__ import annotations

from airflow.sdk import conf

from matting import settings

settings.use_source(settings.airflow_source(conf))
