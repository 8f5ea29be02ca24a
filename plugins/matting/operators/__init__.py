"""Operators (Airflow-facing): ``matting.operators.matting`` (background removal, archive) and
``matting.operators.idphoto`` (ID photos, human review)."""

# the Airflow layer reads the [matting] settings through Airflow's conf: wired once per package, here
from matting import airflow_conf  # noqa: F401  (the [matting] settings come from Airflow's conf)
