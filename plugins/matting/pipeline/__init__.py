"""The batch pipeline, Airflow-free: detect new files (``detection``, ``events``), plan names
(``naming``), run a batch (``runs`` -> ``runner``: rounds, breaker, records, moves), reuse results
(``reuse``), write manifests (``manifest``), report progress (``progress``) and archive (``archive``)."""
