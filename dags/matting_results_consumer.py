"""
### Example: a DAG of your own, started by archived matting results

Scheduled on the results assets of the background-removal DAGs: when a run of one of them archives
at least one cut-out, its archive step emits an event on `x-matting://<dag_id>/archive` (a run that made
no output emits none) and this DAG starts. Its task reads what arrived from the triggering event's
`extra` (the manifest's location, the outputs' prefix, the zip, the counts), opens the manifest with
the destination's connection and lists the run's outputs. It only reads and logs, and returns the list
as its XCom: copy it and replace the task's body with your own step (a catalogue upload, a print queue).

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


@task
def receive_results(**context) -> list[dict]:
    """Each triggering event's run: where its manifest is and which outputs it lists."""
    import json
    import logging
    import posixpath

    from matting.storage import open_storage

    log = logging.getLogger("matting.example")
    received = []
    for asset, events in (context.get("triggering_asset_events") or {}).items():
        for event in events:
            extra = dict(event.extra or {})
            folder, manifest_name = posixpath.split(extra["manifest"])
            with open_storage(folder, extra.get("destination_conn_id") or None) as run:
                manifest = json.loads(run.read(manifest_name))
            outputs = [o for f in manifest.get("files") or [] for o in f.get("outputs") or []]
            log.info(
                "%s: run %s of %s, %s; manifest %s",
                asset,
                extra["run_id"],
                extra["dag_id"],
                extra["counts"],
                extra["manifest"],
            )
            for output in outputs:
                log.info("  new output: %s", output)
            received.append(
                {
                    "asset": str(getattr(asset, "uri", asset)),
                    "dag_id": extra["dag_id"],
                    "run_id": extra["run_id"],
                    "manifest": extra["manifest"],
                    "outputs_prefix": extra["outputs_prefix"],
                    "counts": extra["counts"],
                    "outputs": outputs,
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
