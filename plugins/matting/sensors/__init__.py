"""Sensors: ``matting.sensors.new_files`` (new settled images in a folder, S3 prefix or SFTP dir)."""

# the Airflow layer reads the [matting] settings through Airflow's conf: wired once per package, here
from matting import airflow_conf  # noqa: F401  (the [matting] settings come from Airflow's conf)
