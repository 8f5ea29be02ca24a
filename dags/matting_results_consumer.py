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
    """Each triggering event's run: where its manifest is and which outputs it lists. Which run it was is
    taken from the event itself (``source_dag_id``, ``source_run_id``: Airflow's, not the extra's); an
    event no task emitted (made by hand in the UI or the API), one without a manifest or whose manifest is
    gone (retention) or unreadable is skipped with a warning. An event may repeat a run
    (``maybe_announced_before``: its step ran again): a real step de-duplicates on the source run."""
    import json
    import logging
    import posixpath

    from matting.storage import open_storage

    log = logging.getLogger("matting.example")
    received = []
    for asset, events in (context.get("triggering_asset_events") or {}).items():
        for event in events:
            extra = dict(event.extra or {})
            source = (getattr(event, "source_dag_id", None), getattr(event, "source_run_id", None))
            if not getattr(event, "source_task_id", None) or not isinstance(extra.get("manifest"), str):
                log.warning("%s: an event no matting task emitted (made by hand?), skipped: %s", asset, extra)
                continue
            folder, manifest_name = posixpath.split(extra["manifest"])
            try:
                with open_storage(folder, extra.get("destination_conn_id") or None) as run:
                    manifest = json.loads(run.read(manifest_name))
            except (FileNotFoundError, ValueError) as exc:
                log.warning("%s: %s unreadable or gone (%s), skipped", asset, extra["manifest"], exc)
                continue
            outputs = [o for f in manifest.get("files") or [] for o in f.get("outputs") or []]
            log.info(
                "%s: run %s of %s, %s; manifest %s%s",
                asset,
                source[1],
                source[0],
                extra.get("counts"),
                extra["manifest"],
                " (may repeat an earlier announcement)" if extra.get("maybe_announced_before") else "",
            )
            for output in outputs[:SHOWN]:
                log.info("  new output: %s", output)
            received.append(
                {
                    "asset": str(getattr(asset, "uri", asset)),
                    "dag_id": source[0],
                    "run_id": source[1],
                    "manifest": extra["manifest"],
                    "outputs_prefix": extra.get("outputs_prefix"),
                    "counts": extra.get("counts"),
                    "maybe_announced_before": bool(extra.get("maybe_announced_before")),
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
