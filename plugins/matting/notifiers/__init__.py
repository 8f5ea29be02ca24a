"""Notifiers: ``matting.notifiers.webhook`` (run summaries to a webhook)."""

# the Airflow layer reads the [matting] settings through Airflow's conf: wired once per package, here
from matting import airflow_conf  # noqa: F401  (the [matting] settings come from Airflow's conf)
