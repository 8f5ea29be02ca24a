"""Results that Airflow knows about: the asset a run's results are published on (data-aware scheduling)
and the lineage each operator reports to OpenLineage.

**The asset.** A task that closes a run (``ArchiveOperator``, ``IdPhotoOperator``) declares one outlet,
``Asset("x-matting://<dag_id>/<task_id>")`` (``results_asset``): name and URI are the same string, so
a downstream DAG names it without importing this package. It stands for "the results this task of this
DAG publishes", wherever the run wrote them: the destination is rendered at run time (a Variable, the
trigger form) while an outlet is declared when the DAG is parsed, so the URI cannot be the destination
itself; each event's ``extra`` says where the run's files are (``matting.pipeline.lineage.results_event_extra``).
``x-`` is the prefix Airflow keeps for schemes without a provider.

**No event for nothing.** A run that made no output (no new photos, every photo refused) emits no event
(``matting.pipeline.lineage.has_new_results``): the task drops its outlet for that run and says so in its
log, so downstream DAGs are not started for nothing.

**At least once.** A task that runs again for the same DAG run publishes again: never less than once,
so never a result no one hears of. The run folder notes each event as it is made
(``results/published.json``: counts, manifest, try, time), and a later try of the same run says so:
``"maybe_announced_before": true`` and ``"earlier_attempt"`` (that note). "Maybe": Airflow sends a
task's events only when the task succeeds, and a try that failed after the note (killed, its XCom push
failed) announced nothing; a task cleared after it succeeded did announce. Never drop an event on this
flag: de-duplicate on the source DAG run (``source_dag_id`` + ``source_run_id``) against your own record.

**Lineage.** ``get_openlineage_facets_on_complete`` (what the OpenLineage provider's listener calls, as
for the Amazon provider's S3 operators) returns the files the task read and wrote, one dataset per file
(and the run's ``outputs/`` folder, which the batches write and the archive step reads),
named as in ``matting.pipeline.lineage``, and only then: a run without the provider pays nothing. The
provider is optional: it is imported only there, when the provider itself calls it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from airflow.sdk import Asset

from matting import layout
from matting.pipeline.lineage import DatasetName, datasets, has_new_results

if TYPE_CHECKING:
    from matting.storage import Storage

log = logging.getLogger(__name__)

RESULTS_SCHEME = "x-matting"
PUBLISHED = f"{layout.INDEX_DIR}/published.json"  # in the run folder: what this run's events announced


def results_asset_uri(dag_id: str, task_id: str) -> str:
    """``x-matting://<dag_id>/<task_id>``: the asset a task's published results are events of."""
    return f"{RESULTS_SCHEME}://{dag_id}/{task_id}"


def results_asset(dag_id: str, task_id: str = "archive") -> Asset:
    """The asset ``task_id`` of ``dag_id`` publishes its runs' results on (name = URI). The shipped
    background-removal DAGs publish from ``archive``, ``id_photo_batch`` from ``make_id_photos``."""
    uri = results_asset_uri(dag_id, task_id)
    return Asset(name=uri, uri=uri)


def _is_results_asset(obj: Any) -> bool:
    return isinstance(obj, Asset) and obj.uri.startswith(f"{RESULTS_SCHEME}://")


def sftp_authority(conn_id: str | None) -> str:
    """``host:port`` of an SFTP connection (port 22 when unset), as the SFTP provider's lineage names it."""
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(conn_id or "sftp_default")
    return f"{conn.host}:{conn.port or 22}"


def lineage_of(location: str, conn_id: str | None, paths: list[str]) -> list[DatasetName]:
    """One dataset per path under ``location`` (an SFTP location's host and port from its connection)."""
    authority = sftp_authority(conn_id) if str(location).startswith("sftp://") else None
    return datasets(location, paths, authority)


class ReportsLineage:
    """The files a task read and wrote, for the OpenLineage provider. ``execute`` records how to name
    them; they are named only when the provider asks (installed and configured), so a run without it
    pays nothing (the archive step would otherwise read its whole manifest back)."""

    _lineage_source: Callable[[], tuple[list[DatasetName], list[DatasetName]]] | None = None

    def record_lineage(self, build: Callable[[], tuple[list[DatasetName], list[DatasetName]]]) -> None:
        """``build()`` -> (inputs, outputs), called when the lineage is asked for."""
        self._lineage_source = build

    def lineage(self) -> tuple[list[DatasetName], list[DatasetName]]:
        """(inputs, outputs); a failure to name them is logged, never the task's failure."""
        if self._lineage_source is None:
            return [], []
        try:
            return self._lineage_source()
        except Exception as exc:
            self.log.warning("no lineage for this run: %s: %s", type(exc).__name__, exc)
            return [], []

    def get_openlineage_facets_on_complete(self, task_instance: Any = None):
        """What the task read and wrote, for the OpenLineage provider (called by its listener)."""
        from airflow.providers.common.compat.openlineage.facet import Dataset
        from airflow.providers.openlineage.extractors import OperatorLineage

        inputs, outputs = self.lineage()
        return OperatorLineage(
            inputs=[Dataset(namespace=d.namespace, name=d.name) for d in inputs],
            outputs=[Dataset(namespace=d.namespace, name=d.name) for d in outputs],
        )


class PublishesResults:
    """For an operator that closes a run: its results asset as an outlet (``publish_asset=True``, the
    default, on an operator created in a DAG) and one asset event per run with the run's ``extra``.
    Call ``declare_results_asset()`` at the end of ``__init__``."""

    outlets: list
    destination: str
    destination_conn_id: str | None

    def declare_results_asset(self, publish_asset: bool) -> None:
        self.publish_asset = publish_asset
        if not publish_asset or any(_is_results_asset(o) for o in self.outlets):
            return
        if self.has_dag():
            self.outlets = [*self.outlets, results_asset(self.dag_id, self.task_id)]
        else:  # an outlet is declared when the DAG is parsed: one added to a DAG later has none
            log.warning(
                "%s is created outside a DAG: it declares no results asset and publishes no event (create "
                "it in the DAG's context, or add Asset(%r) to its outlets)",
                self.task_id,
                results_asset_uri("<dag_id>", self.task_id),
            )

    def publish_run(
        self,
        context: Any,
        run: Storage,
        run_prefix: str,
        counts: dict,
        outputs_prefix: str,
        zip_name: str | None = None,
    ) -> bool:
        """``publish_results`` of the run in ``run`` (the folder ``run_prefix`` of this task's destination)."""
        from matting.pipeline.lineage import results_event_extra

        extra = results_event_extra(
            dag_id=self.dag_id,
            run_id=str(context.get("run_id", "")),
            task_id=self.task_id,
            destination=self.destination,
            destination_conn_id=self.destination_conn_id or "",
            run_prefix=run_prefix,
            counts=counts,
            outputs_prefix=outputs_prefix,
            zip_name=zip_name,
        )
        return self.publish_results(context, extra, run)

    def publish_results(self, context: Any, extra: dict, run: Storage | None = None) -> bool:
        """The run's asset event (True), or, for a run with no output, none: the outlet is dropped for
        this run (Airflow would otherwise record an event for every declared outlet of a successful task).
        ``run``: the run folder, where what was announced is remembered (see the module: at least once)."""
        ours = [o for o in self.outlets if _is_results_asset(o)]
        if not ours:
            return False
        if not has_new_results(extra.get("counts") or {}):
            self.outlets = [o for o in self.outlets if not _is_results_asset(o)]
            self.log.info("no asset event: this run made no output (%s)", extra.get("counts"))
            return False
        if run is not None:
            extra = self._remember_announcement(run, context, extra)
        for asset in ours:
            context["outlet_events"][asset].extra = extra
            self.log.info(
                "asset event on %s: %s%s",
                asset.uri,
                extra["manifest"],
                " (an earlier try may have announced it)" if extra.get("maybe_announced_before") else "",
            )
        return True

    def _remember_announcement(self, run: Storage, context: Any, extra: dict) -> dict:
        """``extra`` marked when an earlier try of this run noted an event (see the module: maybe); this
        event noted. Neither step can stop the event (a storage failure is logged)."""
        try:
            previous = json.loads(run.read(PUBLISHED))
        except FileNotFoundError:
            previous = None
        except Exception as exc:
            self.log.warning("could not read %s: %s: %s", PUBLISHED, type(exc).__name__, exc)
            previous = None
        if isinstance(previous, dict):
            extra = {**extra, "maybe_announced_before": True, "earlier_attempt": previous}
        ti = context.get("ti")
        note = {
            "counts": extra.get("counts"),
            "manifest": extra.get("manifest"),
            "try_number": getattr(ti, "try_number", None),
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        try:
            run.write(PUBLISHED, json.dumps(note).encode())
        except Exception as exc:
            self.log.warning("could not write %s: %s: %s", PUBLISHED, type(exc).__name__, exc)
        return extra
