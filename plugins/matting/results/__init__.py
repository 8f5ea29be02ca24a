"""The results pages, in one place: what a run's manifest shows (``gallery``), its paged index written
with the manifest (``index``), one run's pages as data (``run``), and the Airflow side: the web app
mounted by ``matting.plugin`` (``app``, ``templates/``) and the operators' "Results" link (``links``)."""
