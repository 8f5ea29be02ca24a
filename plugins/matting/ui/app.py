"""The results pages inside Airflow's UI: a FastAPI app the api-server mounts under ``/matting``.

- ``/matting/``: runs of the matting DAGs (tag ``matting``) the user may read, newest first, with
  their counts, paginated.
- ``/matting/runs/<dag_id>/<run_id>``: the run's gallery (before/after thumbnails), the quarantine
  with each reason, ID-photo reports with their rule tables, and the zip download.

Every route needs a logged-in user (Airflow's JWT, from the UI's cookie or a bearer header) who may
read that DAG's runs, through the configured auth manager. Where a run's files are comes from its
own task's XCom, never from the URL; image URLs carry only an index into the run's manifest.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from urllib.parse import quote

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from matting import (
    airflow_conf,  # noqa: F401  (the [matting] settings come from Airflow's conf)
    settings,
)
from matting.results import PAGE_SIZE, RunResults, Where, cached_thumbnail, counts, page_of, thumbnail

log = logging.getLogger("matting.ui")

RUNS_PER_PAGE = 25
TAG = "matting"


def _security():
    from airflow.api_fastapi.core_api import security

    return security


async def current_user(request: Request):
    """The logged-in user, as Airflow's own API resolves it (bearer header first, then the cookie)."""
    from fastapi.security import HTTPAuthorizationCredentials

    security = _security()
    header = request.headers.get("authorization", "")
    bearer = None
    if header.lower().startswith("bearer "):
        bearer = HTTPAuthorizationCredentials(scheme="Bearer", credentials=header[7:].strip())
    return await security.get_user(request, None, bearer)


def may_read_run(request: Request, user=Depends(current_user)) -> None:
    """403 unless the user may read this DAG's runs (the auth manager decides)."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails

    dag_id = request.path_params["dag_id"]
    if not get_auth_manager().is_authorized_dag(
        method="GET", access_entity=DagAccessEntity.RUN, details=DagDetails(id=dag_id), user=user
    ):
        raise HTTPException(403, f"not allowed to read runs of {dag_id}")


def _where(dag_id: str, run_id: str) -> Where:
    """The run's folder, from the XCom its archive / ID-photo task returned (newest task first)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(
            select(XComModel)
            .where(XComModel.dag_id == dag_id, XComModel.run_id == run_id, XComModel.key == "return_value")
            .order_by(XComModel.timestamp.desc())  # the archive's; else a batch's (archive not run yet)
        ).all()
        for row in rows:
            where = Where.from_xcom(XComModel.deserialize_value(row))
            if where is not None:
                return where
    raise HTTPException(404, f"run {run_id} of {dag_id} has no results (yet)")


@contextmanager
def open_results(where: Where) -> Iterator[RunResults]:
    from matting.storage import open_storage

    with ExitStack() as stack:
        dest = stack.enter_context(open_storage(where.destination, where.destination_conn_id or None))
        source = None
        if where.source:
            source = stack.enter_context(open_storage(where.source, where.source_conn_id or None))
        yield RunResults(where, dest.sub(where.run_prefix), source)


def _run_url(dag_id: str, run_id: str) -> str:
    return f"runs/{quote(dag_id, safe='')}/{quote(run_id, safe='')}"


STYLE = """
body{font-family:system-ui,sans-serif;margin:16px;color:#1a202c}
h1{font-size:20px;margin:0 0 12px} h2{font-size:16px;margin:20px 0 8px}
table{border-collapse:collapse} td,th{border-bottom:1px solid #e2e8f0;padding:4px 10px;text-align:left;font-size:14px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(540px,1fr));gap:12px}
.card{border:1px solid #e2e8f0;border-radius:6px;padding:8px}
.card img{width:256px;height:256px;background:#eee}
.ok{color:#276749}.failed,.refused{color:#c53030}.held{color:#b7791f}
.reason{font-size:13px;color:#c53030;white-space:pre-wrap}
.rules td{font-size:12px;padding:2px 6px}.pass{color:#276749}.fail{color:#c53030;font-weight:bold}
.pager a,.pager span{margin-right:8px} small{color:#718096}
"""


def _page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body>{body}</body></html>"
    )


def _pager(url: str, page: int, pages: int) -> str:
    if pages <= 1:
        return ""
    links = [f"<a href='{url}?page={p}'>{p}</a>" if p != page else f"<span>[{p}]</span>" for p in range(1, pages + 1)]
    return f"<p class='pager'>Pages: {''.join(links)}</p>"


def _rules_table(rules: list[dict]) -> str:
    if not rules:
        return ""
    rows = []
    for r in rules:
        state = ("pass", "pass") if r.get("passed") else ("fail", "FAIL")
        if r.get("passed") and r.get("borderline"):
            state = ("held", "borderline")
        distance = "" if r.get("distance") is None else html.escape(str(r.get("distance")))
        rows.append(
            f"<tr><td>{html.escape(str(r.get('rule')))}</td><td>{html.escape(str(r.get('value')))}</td>"
            f"<td>{html.escape(str(r.get('band')))}</td><td>{distance}</td>"
            f"<td class='{state[0]}'>{state[1]}</td><td>{html.escape(str(r.get('message') or ''))}</td></tr>"
        )
    return (
        "<details><summary>ID-photo report: rules</summary><table class='rules'>"
        "<tr><th>rule</th><th>value</th><th>band</th><th>distance to limit</th><th></th><th></th></tr>"
        + "".join(rows)
        + "</table></details>"
    )


def create_app() -> FastAPI:
    app = FastAPI(title="Matting results", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(HTTPException)
    async def login_first(request: Request, exc: HTTPException):
        """A browser without a session goes to Airflow's login and comes back; API clients get JSON."""
        if exc.status_code == 401 and "text/html" in request.headers.get("accept", ""):
            from airflow.api_fastapi.app import get_auth_manager

            return RedirectResponse(get_auth_manager().get_url_login(next_url=str(request.url)), status_code=303)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)

    @app.get("/", response_class=HTMLResponse)
    def runs(request: Request, page: int = Query(1, ge=1), user=Depends(current_user)) -> HTMLResponse:
        from airflow.api_fastapi.app import get_auth_manager
        from airflow.models.dag import DagTag
        from airflow.models.dagrun import DagRun
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session
        from sqlalchemy import func, select

        allowed = get_auth_manager().get_authorized_dag_ids(user=user, method="GET")
        with create_session() as session:
            ours = set(session.scalars(select(DagTag.dag_id).where(DagTag.name == TAG)).all()) & set(allowed)
            total = session.scalar(select(func.count()).select_from(DagRun).where(DagRun.dag_id.in_(ours))) or 0
            pages = max(1, (total + RUNS_PER_PAGE - 1) // RUNS_PER_PAGE)
            page = min(page, pages)
            dag_runs = session.scalars(
                select(DagRun)
                .where(DagRun.dag_id.in_(ours))
                .order_by(DagRun.run_after.desc())
                .limit(RUNS_PER_PAGE)
                .offset((page - 1) * RUNS_PER_PAGE)
            ).all()
            results: dict[tuple[str, str], dict] = {}
            if dag_runs:
                for row in session.scalars(
                    select(XComModel)
                    .where(
                        XComModel.key == "return_value",
                        XComModel.dag_id.in_({r.dag_id for r in dag_runs}),
                        XComModel.run_id.in_({r.run_id for r in dag_runs}),
                    )
                    .order_by(XComModel.map_index.desc())  # the run's own summary (-1) last: it wins
                ).all():
                    value = XComModel.deserialize_value(row)
                    if Where.from_xcom(value) is not None:
                        value = dict(value, partial=row.map_index != -1)
                        results[(row.dag_id, row.run_id)] = value
            lines = []
            for r in dag_runs:
                value = results.get((r.dag_id, r.run_id))
                if value is not None:
                    shown = {k: value[k] for k in ("files", "ok", "failed") if k in value}
                    shown.update({"held": len(value["held"])} if value.get("held") else {})
                    numbers = " ".join(f"{k}={v}" for k, v in shown.items())
                    if value["partial"]:
                        numbers = "<small>not archived yet (open for what the batches did)</small>"
                    link = f"<a href='{_run_url(r.dag_id, r.run_id)}'>{html.escape(r.run_id)}</a>"
                else:
                    numbers, link = "<small>no results</small>", html.escape(r.run_id)
                lines.append(
                    f"<tr><td>{html.escape(r.dag_id)}</td><td>{link}</td><td>{html.escape(str(r.state))}</td>"
                    f"<td>{html.escape(str(r.run_after)[:19])}</td><td>{numbers}</td></tr>"
                )
        body = (
            "<h1>Matting results</h1>"
            f"<p><small>{total} run(s) of {len(ours)} DAG(s) tagged '{TAG}' that you may read</small></p>"
            "<table><tr><th>DAG</th><th>run</th><th>state</th><th>run after</th><th>counts</th></tr>"
            + "".join(lines)
            + "</table>"
            + _pager("./", page, pages)
        )
        return _page("Matting results", body)

    @app.get("/runs/{dag_id}/{run_id}", response_class=HTMLResponse, dependencies=[Depends(may_read_run)])
    def run_page(
        dag_id: str, run_id: str, page: int = Query(1, ge=1), per_page: int = Query(PAGE_SIZE, ge=1)
    ) -> HTMLResponse:
        with open_results(_where(dag_id, run_id)) as res:
            shown, pages = page_of(res.items, page, per_page)
            page = min(page, pages)
            n = counts(res.items)
            cards = []
            for item in shown:
                base = f"{quote(run_id, safe='')}/thumb/{item.index}"
                reason = f"<div class='reason'>{html.escape(item.reason)}</div>" if item.reason else ""
                where = (
                    f"<small>original: {html.escape(item.details['moved_to'])}</small>"
                    if item.details.get("moved_to")
                    else ""
                )
                cards.append(
                    f"<div class='card' id='item-{item.index}'><div><b>{html.escape(item.name)}</b> "
                    f"<span class='{item.status}'>{item.status}</span> {where}</div>"
                    f"<img alt='before' src='{base}/before.jpg' loading='lazy'>"
                    f"<img alt='after' src='{base}/after.jpg' loading='lazy'>"
                    f"{reason}{_rules_table(item.rules)}</div>"
                )
            quarantine = [i for i in res.items if i.status in ("failed", "refused")]
            q_rows = "".join(
                f"<tr><td><a href='#item-{i.index}'>{html.escape(i.name)}</a></td><td>{html.escape(i.reason)}</td></tr>"
                for i in quarantine[:200]
            )
            zip_link = (
                f"<a href='{quote(run_id, safe='')}/outputs.zip' download>download outputs.zip</a>"
                if res.zip_path()
                else "<small>no zip for this run</small>"
            )
            job = res.manifest.get("job") or {}
            model = job.get("model") or res.manifest.get("model") or ""
            body = (
                f"<p><a href='../../'>all runs</a></p><h1>{html.escape(dag_id)} / {html.escape(run_id)}</h1>"
                f"<p>{' '.join(f'{k}={v}' for k, v in n.items())} &middot; model {html.escape(str(model))} &middot; "
                f"{zip_link}</p><p><small>{html.escape(res.run.describe())}</small></p>"
                + (
                    "<p class='held'>Not archived: the archive step has not run yet or failed. "
                    "Shown: what the batches recorded so far.</p>"
                    if res.partial
                    else ""
                )
                + (f"<h2>Quarantined / refused ({len(quarantine)})</h2><table>{q_rows}</table>" if quarantine else "")
                + f"<h2>Photos (before / after)</h2>{_pager(quote(run_id, safe=''), page, pages)}"
                f"<div class='grid'>{''.join(cards)}</div>"
            )
        return _page(f"{dag_id} {run_id}", body)

    @app.get("/runs/{dag_id}/{run_id}/thumb/{index}/{kind}.jpg", dependencies=[Depends(may_read_run)])
    def thumb(dag_id: str, run_id: str, index: int, kind: str) -> Response:
        if kind not in ("before", "after"):
            raise HTTPException(404, "no such image")
        where = _where(dag_id, run_id)
        cached = cached_thumbnail(where, index, kind) if index >= 0 else None
        if cached is not None:  # no storage connection for what was made before
            return Response(cached, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})
        with open_results(where) as res:
            try:
                item = res.item(index)
            except KeyError:
                raise HTTPException(404, "no such photo in this run") from None
            data = thumbnail(res, item, kind)
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})

    @app.get("/runs/{dag_id}/{run_id}/outputs.zip", dependencies=[Depends(may_read_run)])
    def download_zip(dag_id: str, run_id: str) -> Response:
        """S3: a redirect to a presigned URL (10 min), so the bytes never pass through the api-server;
        a folder: streamed from disk; SFTP (and S3 with ``[matting] ui_zip_redirect = False``): read whole,
        up to ``[matting] ui_max_zip_mb`` (1024)."""

        from fastapi.responses import FileResponse

        from matting.storage import LocalStorage

        filename = f"{dag_id}-{run_id}.zip".replace(":", "-").replace("+", "_")
        disposition = {"Content-Disposition": f'attachment; filename="{filename}"'}
        with open_results(_where(dag_id, run_id)) as res:
            name = res.zip_path()
            if name is None:
                raise HTTPException(404, "this run has no zip")
            # a presigned URL only helps where browsers can reach the S3 endpoint (not the compose
            # stack's internal MinIO host): [matting] ui_zip_redirect = False passes the bytes through instead
            url = res.run.share_url(name, 600) if settings.value("ui_zip_redirect") else None
            if url:
                return RedirectResponse(url, status_code=303)
            if isinstance(res.run, LocalStorage):
                return FileResponse(res.run.root / name, media_type="application/zip", headers=disposition)
            info = res.run.stat(name)
            cap = settings.value("ui_max_zip_mb") * 1024 * 1024
            if info is None or info.size > cap:
                raise HTTPException(413, "zip too big to pass through the web server; fetch it from the storage")
            data = res.run.read(name)
        return Response(data, media_type="application/zip", headers=disposition)

    return app
