"""The results pages inside Airflow's UI: a FastAPI app the api-server mounts under ``/matting``.

- ``/matting/``: runs of the matting DAGs (tag ``matting``) the user may read, newest first, with
  their counts, paginated.
- ``/matting/runs/<dag_id>/<run_id>``: the run's gallery (before/after thumbnails), filtered to all /
  failed / held for review, the quarantine with each reason, ID-photo reports with their rule tables,
  and the zip download. Also shown as the "Results" tab of every DAG run and task instance page.
- ``/matting/runs/<dag_id>/<run_id>/photo/<index>``: one photo's full-size before/after comparison.

Pages are Jinja2 templates (``matting/results/templates``) with autoescaping on: nothing from a manifest or
an XCom reaches the HTML unescaped. They follow Airflow's light or dark theme.

Every route needs a logged-in user (Airflow's JWT, from the UI's cookie or a bearer header) who may
read that DAG's runs, through the configured auth manager. Where a run's files are comes from its
own task's XCom, never from the URL; image URLs carry only an index into the run's manifest.

Mounted by ``matting.plugin``, which wires the ``[matting]`` settings to Airflow's conf first.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from urllib.parse import quote

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from matting import settings
from matting.results.run import (
    PAGE_SIZE,
    PREVIEW_PX,
    THUMB_PX,
    NotThisRun,
    RunResults,
    Where,
    cached_thumbnail,
    thumbnail,
)

log = logging.getLogger("matting.results.app")

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


def _team_of(dag_id: str) -> str | None:
    from airflow.models.dag import DagModel

    return DagModel.get_team_name(dag_id)


def runs_readable(user, dag_ids: set[str]) -> set[str]:
    """The DAGs among ``dag_ids`` whose runs ``user`` may read: the one rule for the runs list and
    every run page (Airflow's own for its run pages: GET on the DAG's runs, with the DAG's team)."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
    from airflow.models.dag import DagModel

    teams = DagModel.get_dag_id_to_team_name_mapping(sorted(dag_ids)) if dag_ids else {}
    manager = get_auth_manager()
    return {
        dag_id
        for dag_id in dag_ids
        if manager.is_authorized_dag(
            method="GET",
            access_entity=DagAccessEntity.RUN,
            details=DagDetails(id=dag_id, team_name=teams.get(dag_id)),
            user=user,
        )
    }


def may_read_run(request: Request, user=Depends(current_user)) -> None:
    """403 unless the user may read this DAG's runs (the auth manager decides, team included)."""
    dag_id = request.path_params["dag_id"]
    if not runs_readable(user, {dag_id}):
        raise HTTPException(403, f"not allowed to read runs of {dag_id}")


_ALLOW_TTL_S = 30.0
_allow_cache: dict[str, tuple[float, object]] = {}


def allow_list(dag_id: str):
    """The DAG's allow-list (``matting.access``) as the api-server sees it: the Variables (the DAG's
    team's, where it has one), else the location fields its serialized tasks declare, rendered with
    its default params. Cached for 30 s (a page asks for dozens of thumbnails at once)."""
    import time

    from matting import access

    now = time.monotonic()
    hit = _allow_cache.get(dag_id)
    if hit is not None and now - hit[0] < _ALLOW_TTL_S:
        return hit[1]
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.models.variable import Variable

    team = _team_of(dag_id)

    def get_var(key: str, default: str | None) -> str | None:
        return Variable.get(key, default_var=default, team_name=team)  # None: no team (the default)

    def declared():
        dag = SerializedDagModel.get_dag(dag_id)
        return ([access.declared_fields(task) for task in dag.tasks], dag.params.dump()) if dag else ([], {})

    allowed = access.allowed_for(dag_id, get_var, declared)
    _allow_cache[dag_id] = (now, allowed)
    return allowed


def _where(dag_id: str, run_id: str) -> Where:
    """The run's folder, from the XCom its archive / ID-photo task returned (newest task first), checked
    against the DAG's allow-list: anyone who may write the run's XComs could point it anywhere."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from matting.errors import ConfigError

    where = None
    with create_session() as session:
        rows = session.scalars(
            select(XComModel)
            .where(XComModel.dag_id == dag_id, XComModel.run_id == run_id, XComModel.key == "return_value")
            .order_by(XComModel.timestamp.desc())  # the archive's; else a batch's (archive not run yet)
        ).all()
        for row in rows:
            where = Where.from_xcom(XComModel.deserialize_value(row), dag_id, run_id)
            if where is not None:
                break
    if where is None:
        raise HTTPException(404, f"run {run_id} of {dag_id} has no results (yet)")
    try:
        allow_list(dag_id).check(*where.locations())
    except (ConfigError, ValueError) as exc:
        log.warning("results of %s %s refused: its XCom names a place the DAG may not read: %s", dag_id, run_id, exc)
        raise HTTPException(403, f"the results of run {run_id} are not where {dag_id} may read: {exc}") from None
    return where


@contextmanager
def open_results(where: Where) -> Iterator[RunResults]:
    from matting.storage import open_storage

    with ExitStack() as stack:
        dest = stack.enter_context(open_storage(where.destination, where.destination_conn_id or None))
        source = None
        if where.source:
            source = stack.enter_context(open_storage(where.source, where.source_conn_id or None))
        try:
            results = RunResults(where, dest.sub(where.run_prefix), source)
        except NotThisRun as exc:
            log.warning("results of %s %s refused: %s", where.dag_id, where.run_id, exc)
            raise HTTPException(404, str(exc)) from None
        yield results


def _index(request: Request) -> str:
    """The runs list, under wherever the api-server mounted this app."""
    return f"{request.scope.get('root_path', '')}/"


def _run_url(dag_id: str, run_id: str) -> str:
    return f"runs/{quote(dag_id, safe='')}/{quote(run_id, safe='')}"


FILTERS = (("all", "all"), ("failed", "failed / refused"), ("held", "held for review"))  # matting.results.gallery.VIEWS
QUARANTINE_SHOWN = 200  # the quarantine table's rows (the filter "failed / refused" pages through all)


@functools.cache
def _templates():
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("matting.results", "templates"),
        autoescape=jinja2.select_autoescape(["html"], default_for_string=True, default=True),
    )


def render(template: str, status_code: int = 200, **context) -> HTMLResponse:
    """A page from ``matting/results/templates`` (autoescaped)."""
    return HTMLResponse(_templates().get_template(template).render(**context), status_code=status_code)


def _card(item, run_id: str) -> dict:
    run = quote(run_id, safe="")
    return {
        "index": item.index,
        "key": item.key,
        "name": item.name,
        "status": item.status,
        "reason": item.reason,
        "details": item.details,
        "rules": item.rules,
        "before": item.before,
        "after": item.after,
        "thumb_url": f"{run}/thumb/{item.index}/",
        "photo_url": f"{run}/photo/{item.index}",
    }


def create_app() -> FastAPI:
    app = FastAPI(title="Matting results", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(HTTPException)
    async def login_first(request: Request, exc: HTTPException):
        """A browser without a session goes to Airflow's login and comes back; API clients get JSON."""
        if exc.status_code == 401 and "text/html" in request.headers.get("accept", ""):
            from airflow.api_fastapi.app import get_auth_manager

            return RedirectResponse(get_auth_manager().get_url_login(next_url=str(request.url)), status_code=303)
        if exc.status_code in (403, 404) and "text/html" in request.headers.get("accept", ""):
            # e.g. the Results tab of a run that is not a matting run: a page, not a JSON error
            title = "No matting results" if exc.status_code == 404 else "Not allowed"
            return render("message.html", exc.status_code, title=title, message=exc.detail, index_url=_index(request))
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)

    @app.get("/", response_class=HTMLResponse)
    def runs(request: Request, page: int = Query(1, ge=1), user=Depends(current_user)) -> HTMLResponse:
        from airflow.models.dag import DagTag
        from airflow.models.dagrun import DagRun
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session
        from sqlalchemy import func, select

        with create_session() as session:
            ours = runs_readable(user, set(session.scalars(select(DagTag.dag_id).where(DagTag.name == TAG)).all()))
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
            rows = []
            for r in dag_runs:
                value = results.get((r.dag_id, r.run_id))
                row = {
                    "dag_id": r.dag_id,
                    "run_id": r.run_id,
                    "state": str(r.state),
                    "run_after": str(r.run_after)[:19],
                }
                if value is not None:
                    shown = {k: value[k] for k in ("files", "ok", "failed") if k in value}
                    shown.update({"held": len(value["held"])} if value.get("held") else {})
                    row.update(
                        url=_run_url(r.dag_id, r.run_id),
                        partial=value["partial"],
                        numbers=" ".join(f"{k}={v}" for k, v in shown.items()),
                    )
                rows.append(row)
        return render(
            "runs.html",
            title="Matting results",
            total=total,
            dag_count=len(ours),
            tag=TAG,
            rows=rows,
            page=page,
            pages=pages,
        )

    @app.get("/runs/{dag_id}/{run_id}", response_class=HTMLResponse, dependencies=[Depends(may_read_run)])
    def run_page(
        request: Request,
        dag_id: str,
        run_id: str,
        page: int = Query(1, ge=1),
        per_page: int = Query(PAGE_SIZE, ge=1),
        show: str = Query("all", pattern="^(all|failed|held)$"),
    ) -> HTMLResponse:
        with open_results(_where(dag_id, run_id)) as res:
            # what the page shows, not the run: a page of one filter, the counts, the quarantine's head
            shown, page, pages = res.page(show, page, per_page)
            filter_counts = res.view_counts()
            quarantine = res.view("failed", 0, QUARANTINE_SHOWN)
            job = res.header.get("job") or {}
            return render(
                "run.html",
                title=f"{dag_id} {run_id}",
                dag_id=dag_id,
                run_id=run_id,
                index_url="../../",
                self_url=quote(run_id, safe=""),
                counts=res.counts(),
                model=str(job.get("model") or res.header.get("model") or ""),
                zip_url=f"{quote(run_id, safe='')}/outputs.zip" if res.zip_path() else None,
                where=res.run.describe(),
                partial=res.partial,
                quarantine=[_card(i, run_id) for i in quarantine],
                quarantine_count=filter_counts["failed"],
                filters=FILTERS,
                filter_counts=filter_counts,
                show=show,
                page=page,
                pages=pages,
                cards=[_card(i, run_id) for i in shown],
            )

    @app.get("/runs/{dag_id}/{run_id}/photo/{index}", response_class=HTMLResponse, dependencies=[Depends(may_read_run)])
    def photo_page(dag_id: str, run_id: str, index: int) -> HTMLResponse:
        """One photo, full size: the original and the result side by side, with its report."""
        with open_results(_where(dag_id, run_id)) as res:
            try:
                item = res.item(index)
            except KeyError:
                raise HTTPException(404, "no such photo in this run") from None
            last = res.total - 1
            return render(
                "photo.html",
                title=f"{item.name} - {dag_id} {run_id}",
                dag_id=dag_id,
                run_id=run_id,
                run_url=f"../../{quote(run_id, safe='')}",
                prev_url=str(index - 1) if index > 0 else None,
                next_url=str(index + 1) if index < last else None,
                image_url=f"../image/{index}/",
                item=_card(item, run_id),
            )

    def _image(dag_id: str, run_id: str, index: int, kind: str, v: str | None, size: int) -> Response:
        if kind not in ("before", "after"):
            raise HTTPException(404, "no such image")
        headers = {"Cache-Control": "private, max-age=3600"}
        where = _where(dag_id, run_id)
        cached = cached_thumbnail(where, v, kind, size) if v else None
        if cached is not None:  # no storage connection for what was made before
            return Response(cached, media_type="image/jpeg", headers=headers)
        with open_results(where) as res:
            try:  # by content key when the page gave one: positions change when a run is re-archived
                item = res.item(index, key=v)
            except KeyError:
                raise HTTPException(404, "no such photo in this run") from None
            data = thumbnail(res, item, kind, size)
        return Response(data, media_type="image/jpeg", headers=headers)

    @app.get("/runs/{dag_id}/{run_id}/thumb/{index}/{kind}.jpg", dependencies=[Depends(may_read_run)])
    def thumb(dag_id: str, run_id: str, index: int, kind: str, v: str | None = Query(None, max_length=64)) -> Response:
        return _image(dag_id, run_id, index, kind, v, THUMB_PX)

    @app.get("/runs/{dag_id}/{run_id}/image/{index}/{kind}.jpg", dependencies=[Depends(may_read_run)])
    def preview(
        dag_id: str, run_id: str, index: int, kind: str, v: str | None = Query(None, max_length=64)
    ) -> Response:
        """The comparison page's picture: at most PREVIEW_PX on its long side."""
        return _image(dag_id, run_id, index, kind, v, PREVIEW_PX)

    @app.get("/runs/{dag_id}/{run_id}/outputs.zip", dependencies=[Depends(may_read_run)])
    def download_zip(dag_id: str, run_id: str) -> Response:
        """S3: a redirect to a presigned URL (10 min), so the bytes never pass through the api-server;
        a folder: streamed from disk; SFTP (and S3 with ``[matting] ui_zip_redirect = False``): read whole,
        up to ``[matting] ui_max_zip_mb`` (1024)."""

        from fastapi.responses import FileResponse

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
            path = res.run.local_path(name)
            if path is not None:
                return FileResponse(path, media_type="application/zip", headers=disposition)
            info = res.run.stat(name)
            cap = settings.value("ui_max_zip_mb") * 1024 * 1024
            if info is None or info.size > cap:
                raise HTTPException(413, "zip too big to pass through the web server; fetch it from the storage")
            data = res.run.read(name)
        return Response(data, media_type="application/zip", headers=disposition)

    return app
