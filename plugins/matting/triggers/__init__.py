"""Triggers (run in the triggerer): ``new_files`` (deferrable sensors) and ``s3_events`` (SQS)."""

# the Airflow layer reads the [matting] settings through Airflow's conf: wired once per package, here
from matting import airflow_conf  # noqa: F401  (the [matting] settings come from Airflow's conf)
