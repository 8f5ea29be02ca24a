"""
### Example: a DAG of your own, started by archived matting results

Scheduled on the results assets of the background-removal DAGs: when a run of one of them archives
at least one cut-out, its archive step emits an event on `x-matting://<dag_id>/archive` (a run that made
no output emits none) and this DAG starts. Its task reads what arrived from the triggering event's
`extra` (the manifest's location, the outputs' prefix, the zip, the counts), opens the manifest with
the destination's connection and lists the run's outputs. It only reads and logs, and returns where
the run is and its first outputs as its XCom: copy it and replace the task's body with your own step
(a catalogue upload, a print queue).

Asset names (name = URI): `x-matting://<dag_id>/<task_id>`; the ID photos publish on
`x-matting://id_photo_batch/make_id_photos`. See "Chain your own DAG" in the DAGs page of the docs.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, AssetAny, task
from matting.operators.assets import results_asset

# = Asset("x-matting://matting_scheduled/archive"), ...: a DAG that does not import this package writes those
RESULTS = [
    results_asset(dag_id)
    for dag_id in ("matting_scheduled", "matting_s3_ingest", "matting_sftp_ingest", "matting_s3_events")
]


SHOWN = 100  # outputs listed in the XCom per event (the manifest has them all)


@task
def receive_results(**context) -> list[dict]:
    """Each triggering event's run: where its manifest is and which outputs it lists. An event without a
    manifest (made by hand in the UI) or whose manifest is gone (retention) is skipped with a warning; a
    republished run (its archive step ran again: ``republished`` in the extra) is handled again, so a real
    step should de-duplicate on ``dag_id`` + ``run_id``."""
    import json
    import logging
    import posixpath

    from matting.storage import open_storage

    log = logging.getLogger("matting.example")
    received = []
    for asset, events in (context.get("triggering_asset_events") or {}).items():
        for event in events:
            extra = dict(event.extra or {})
            if not isinstance(extra.get("manifest"), str):
                log.warning("%s: an event without a manifest (made by hand?), skipped: %s", asset, extra)
                continue
            folder, manifest_name = posixpath.split(extra["manifest"])
            try:
                with open_storage(folder, extra.get("destination_conn_id") or None) as run:
                    manifest = json.loads(run.read(manifest_name))
            except FileNotFoundError:
                log.warning("%s: %s is gone (deleted since the run?), skipped", asset, extra["manifest"])
                continue
            outputs = [o for f in manifest.get("files") or [] for o in f.get("outputs") or []]
            log.info(
                "%s: run %s of %s, %s; manifest %s%s",
                asset,
                extra.get("run_id"),
                extra.get("dag_id"),
                extra.get("counts"),
                extra["manifest"],
                " (announced again)" if extra.get("republished") else "",
            )
            for output in outputs[:SHOWN]:
                log.info("  new output: %s", output)
            received.append(
                {
                    "asset": str(getattr(asset, "uri", asset)),
                    "dag_id": extra.get("dag_id"),
                    "run_id": extra.get("run_id"),
                    "manifest": extra["manifest"],
                    "outputs_prefix": extra.get("outputs_prefix"),
                    "counts": extra.get("counts"),
                    "republished": bool(extra.get("republished")),
                    "outputs_total": len(outputs),
                    "outputs": outputs[:SHOWN],  # an XCom stays small however big the run
                }
            )
    return received


with DAG(
    dag_id="matting_results_consumer",
    schedule=AssetAny(*RESULTS),  # any one of them
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["matting", "example", "assets"],
    doc_md=__doc__,
):
    receive_results()
