"""matting: background removal, ID photos and archiving for Apache Airflow 3.

The core (``matting.engine``, ``matting.images``, ...) imports nothing from Airflow; the Airflow layer
(hooks, sensors, operators) sits on top of it. ``plugins/`` is on Airflow's sys.path, so the package
imports as ``matting`` in DAGs, workers, tests and the CLI alike.
"""

__version__ = "0.2.0"
