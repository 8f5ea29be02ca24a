"""The results pages in Airflow's UI (``matting.ui.app``, mounted by ``matting.plugin``) and the
operators' "Results" extra link (``matting.ui.links``)."""
