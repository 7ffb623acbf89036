"""The tenant view inside Airflow: every tenant's health, data, models and drift on one page.

``plugins/tenantflow_view.py`` mounts :func:`create_app` in Airflow 3's api-server (a plugin's
``fastapi_apps``) at ``/tenantflow`` and adds it to the UI's navigation (``external_views``).
Every page is read from the real stores at each request, through the status contract
(:func:`ml.ops.status.status`, what ``tenantflow status --json`` prints); the view keeps nothing
of its own. Pages:

* ``/tenantflow/``: one row per tenant (region, tier, health and its problems, the lake's last day
  and when it last changed, the last feature check, quarantined rows by reason, each kind's
  champion with its family and headline metric against the baseline, the last drift verdict).
* ``/tenantflow/tenants/<id>``: one tenant in full, with links to its MLflow models and runs, its
  latest Evidently drift report and the Great Expectations Data Docs.
* ``/tenantflow/status.json``: the same rows as JSON.
* ``/tenantflow/files/<monitoring|datadocs>/<path>``: the drift reports and Data Docs those pages
  link to (only files under those two folders).

Every route requires an Airflow login (the api-server's JWT, from the UI's cookie or a bearer
token) allowed to read the runs of the Tenantflow DAGs (:func:`guard`); anyone else gets 401 or 403 — but one:
``/tenantflow/datadocs/<token>/<path>``, the Data Docs as the pages above link them. The files are
served sandboxed (below), so every request a Data Docs page makes — its scripts, styles, fonts,
and the next page when a link is followed — comes from an opaque origin, which the browser sends
without the login cookie (cross-site for SameSite). So the link carries its own login: a token
(:func:`data_docs_token`: an expiry and its HMAC-SHA256 under a key kept with the home's secrets,
RFC 2104) minted for a viewer already logged in, valid :data:`DATA_DOCS_TOKEN_SECONDS`; the
site's relative links keep it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ml.core.settings import Settings, get_settings
from ml.ops.airflow_client import TENANTFLOW_DAGS
from ml.ops.view_pages import CHECKS, DETAIL, INDEX, STYLE, template

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from fastapi import FastAPI


class LazyApp:
    """An ASGI app that builds :func:`create_app` at its first request. Every Airflow process
    (every task's, too) imports the plugins, so the plugin must import nothing heavy; Airflow's
    api-server mounts any ASGI app as a plugin's ``fastapi_apps`` entry."""

    def __init__(self) -> None:
        self._app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self._app is None:
            self._app = create_app()
        await self._app(scope, receive, send)


def guard() -> Any:
    """The dependency every route has: an Airflow user who may read the runs of every Tenantflow
    DAG, as Airflow's own auth manager decides (``requires_access_dag`` for each DAG's runs): the
    simple one locally, where every role reads runs, FAB in the compose profile, where a role
    without those DAGs' runs (e.g. one a DAG's ``access_control`` leaves out) gets 403."""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag
    from fastapi import Request

    checks = [requires_access_dag("GET", DagAccessEntity.RUN, param_dag_id=d) for d in TENANTFLOW_DAGS]

    def may_read_runs(request: Request, user: Any) -> None:
        for check in checks:
            check(request, user)

    # objects, not this module's postponed strings: FastAPI resolves them against module globals
    may_read_runs.__annotations__ = {"request": Request, "user": GetUserDep, "return": None}
    return may_read_runs


def create_app(settings: Settings | None = None, login: Any = None) -> FastAPI:
    """The view's FastAPI app. ``settings``: a fixed home (default: the process's); ``login``: the
    dependency that admits a request (default :func:`guard`, Airflow's; only the api-server has
    Airflow's auth manager, so a test outside it passes its own)."""
    from fastapi import Depends, FastAPI, HTTPException
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

    app = FastAPI(title="Tenantflow tenants", docs_url=None, redoc_url=None, openapi_url=None)
    deps = [Depends(login or guard())]

    def current() -> Settings:
        return settings or get_settings()

    @app.get("/", response_class=HTMLResponse, dependencies=deps)
    def index() -> str:
        from ml.ops.status import status

        return template(INDEX).render(rows=status(current()), now=_now(), **_helpers(current()))

    @app.get("/status.json", dependencies=deps)
    def as_json() -> JSONResponse:
        from ml.ops.status import status

        return JSONResponse(status(current()))

    @app.get("/tenants/{tenant_id}", response_class=HTMLResponse, dependencies=deps)
    def detail(tenant_id: str) -> str:
        from ml.core.errors import TenantError
        from ml.ops.status import status

        try:
            [row] = status(current(), [tenant_id])
        except TenantError as exc:
            raise HTTPException(404, str(exc)) from exc
        return template(DETAIL).render(r=row, **_helpers(current(), tenant_id))

    @app.get("/tenants/{tenant_id}/checks", response_class=HTMLResponse, dependencies=deps)
    def checks(tenant_id: str) -> str:
        from ml.core.errors import TenantError
        from ml.core.tenants import TenantStore
        from ml.data.quality import latest_results

        try:
            TenantStore(current()).get(tenant_id)
        except TenantError as exc:
            raise HTTPException(404, str(exc)) from exc
        from ml.data.feature_checks import read_health

        results, health = latest_results(current(), tenant_id), read_health(current(), tenant_id)
        return template(CHECKS).render(tenant_id=tenant_id, results=results, health=health, style=STYLE)

    def served(root: Path, path: str, area: str) -> FileResponse:
        target = (root / path).resolve()
        if not target.is_relative_to(root.resolve()) or not target.is_file():
            raise HTTPException(404, f"no file {path!r} in {area}")
        # reports and Data Docs hold tenants' values inside their own scripts (Evidently writes them
        # into inline JSON unescaped): in a sandbox, as an opaque origin, they render but cannot act
        # with the viewer's Airflow session. That origin makes their fonts cross-origin requests:
        # the libraries' fonts (Font Awesome's, GX's pass/fail marks) hold no tenant's data
        font = target.suffix in FONTS
        return FileResponse(target, headers=SANDBOX | ({"Access-Control-Allow-Origin": "*"} if font else {}))

    @app.get("/datadocs/{token}/{path:path}")  # the token is the login: see the module's docstring
    def data_docs(token: str, path: str) -> FileResponse:
        if not data_docs_token_valid(current(), token):
            raise HTTPException(
                401, "this Data Docs link has expired or is not valid: open it again from the Tenants view"
            )
        return served(_file_roots(current())["datadocs"], path, "datadocs")

    @app.get("/files/{area}/{path:path}", dependencies=deps)
    def files(area: str, path: str) -> FileResponse:
        roots = _file_roots(current())
        if area not in roots:
            raise HTTPException(404, f"no such area {area!r}; areas: {', '.join(roots)}")
        return served(roots[area], path, area)

    return app


SANDBOX = {"Content-Security-Policy": "sandbox allow-scripts", "X-Content-Type-Options": "nosniff"}
FONTS = frozenset({".woff2", ".woff", ".ttf", ".otf", ".eot"})


def _now() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat(timespec="seconds")


def _file_roots(settings: Settings) -> dict[str, Path]:
    return {"monitoring": settings.stores.monitoring_reports.root, "datadocs": settings.stores.data_docs_index.parent}


def mlflow_ui(settings: Settings) -> str:
    """Where people open the MLflow UI (``TENANTFLOW_MLFLOW_UI_URL``; default the local one of ``make up``)."""
    return (settings.mlflow.ui_url or f"http://127.0.0.1:{settings.mlflow.port}").rstrip("/")


DATA_DOCS_TOKEN_SECONDS = 12 * 3600


def _view_key(settings: Settings) -> bytes:
    from ml.core import secret_files

    return secret_files.generated(settings.stores.secrets / "tenant-view-key", 32).encode()


def _mac(settings: Settings, expires: str) -> str:
    return hmac.new(_view_key(settings), expires.encode(), hashlib.sha256).hexdigest()[:32]


def data_docs_token(settings: Settings, now: float | None = None) -> str:
    """A Data Docs link's login: ``<expiry, unix seconds>-<HMAC-SHA256 of it, 32 hex>``."""
    expires = str(int(now if now is not None else time.time()) + DATA_DOCS_TOKEN_SECONDS)
    return f"{expires}-{_mac(settings, expires)}"


def data_docs_token_valid(settings: Settings, token: str, now: float | None = None) -> bool:
    """Whether ``token`` is one :func:`data_docs_token` minted with this home's key and not expired."""
    expires, _, mac = token.partition("-")
    if not expires.isdigit() or int(expires) < (now if now is not None else time.time()):
        return False
    return hmac.compare_digest(mac, _mac(settings, expires))


def runs_url(ui: str, experiment_id: str, tenant_id: str) -> str:
    """MLflow's runs table of an experiment filtered to one tenant's runs. The filter must follow
    the ``/runs`` tab's route: MLflow 3's UI reads ``searchFilter`` there, and on the bare
    experiment route redirects to the tab without it (every tenant's runs)."""
    query = urllib.parse.urlencode(
        {"searchFilter": f"tags.tenant_id = '{tenant_id}'", "workflowType": "machine_learning"}
    )
    return f"{ui}/#/experiments/{experiment_id}/runs?{query}"


def _helpers(settings: Settings, tenant_id: str | None = None) -> dict[str, Any]:
    """What the templates call: formatting of the status contract's parts, and the links."""
    from markupsafe import Markup

    from ml.monitoring.results import drifted_reports, figure

    ui = mlflow_ui(settings)
    reports = settings.stores.monitoring_reports.root.resolve()
    # the view's pages live at /tenantflow/ and /tenantflow/tenants/<id>: links relative to each
    up = "../" if tenant_id else ""

    def report_link(path: str) -> str | None:
        """The view's link to a report, percent-encoded; None for a file outside the reports folder (written
        before ``TENANTFLOW_REPORTS_DIR`` moved), which the view does not serve."""
        p = Path(path).resolve()
        return (
            f"{up}files/monitoring/{urllib.parse.quote(str(p.relative_to(reports)))}"
            if p.is_relative_to(reports)
            else None
        )

    def report_anchor(path: str, text: str) -> Markup:
        """A link to a report; for one the view does not serve, its text saying so, the path as its tooltip."""
        link = report_link(path)
        if link is not None:
            return Markup('<a href="{}">{}</a>').format(link, text)
        return Markup('<span class="small" title="{}">{} (outside the reports folder {}: not served)</span>').format(
            path, text, reports
        )

    def mlflow_model(kind: str) -> str:
        return f"{ui}/#/models/{kind}.{tenant_id}?workflowType=machine_learning"

    def mlflow_runs(kind: str) -> str:
        """The kind's experiment, filtered to this tenant's runs (``#`` before the first training, or
        when MLflow does not answer: the page still renders)."""
        from ml.models import registry
        from ml.ops.status import mlflow_store_missing

        if mlflow_store_missing(settings):
            return "#"
        try:
            exp = registry.client(settings).get_experiment_by_name(f"tenantflow-{kind}")
        except Exception:  # MLflow down: a link less, not a failed page
            log.warning("tenant view: no MLflow experiment link for %s", kind, exc_info=True)
            return "#"
        if exp is None or tenant_id is None:
            return "#"
        return runs_url(ui, exp.experiment_id, tenant_id)

    return {
        "style": STYLE,
        "model_line": model_line,
        "metrics_line": metrics_line,
        "drift_line": drift_line,
        "figure": figure,
        "report_link": report_link,
        "report_anchor": report_anchor,
        "drift_reports": drifted_reports,
        "data_docs": f"{up}datadocs/{data_docs_token(settings)}/index.html",
        "mlflow_model": mlflow_model,
        "mlflow_runs": mlflow_runs,
    }


def model_line(kind: str, m: dict[str, Any]) -> str:
    """``recommender: v3 (ease, tenant) ndcg_at_10 0.412 vs baseline 0.270`` or why there is no champion."""
    from ml.ops.status import champion_label

    if not m.get("champion_version"):
        return f"{kind}: no champion" + (
            f" (challenger v{m['challenger_version']})" if m.get("challenger_version") else ""
        )
    return f"{kind}: v{m['champion_version']} ({champion_label(m)}) {metrics_line(kind, m)}".rstrip()


def metrics_line(kind: str, m: dict[str, Any]) -> str:
    """The kind's headline metric on the champion's holdout, against the baseline's on the same holdout."""
    from ml.models.kinds import get_kind

    h = get_kind(kind).headline
    metrics, base = m.get("metrics") or {}, m.get("baseline_metrics") or {}
    if h not in metrics:
        return ""
    return f"{h} {metrics[h]:.3f}" + (f" vs baseline {base[h]:.3f}" if h in base else "")


def drift_line(drift: dict[str, Any]) -> str:
    """``drifted (checked 2026-11-28T06:00:03Z)``, ``no drift (...)``, ``not checked yet``, or why the verdict
    cannot be read now (``drift.error``: a silo tenant's key that does not answer)."""
    if not drift.get("last_checked_at"):
        return f"verdict not readable: {drift['error']}" if drift.get("error") else "not checked yet"
    verdict = "drifted" if drift.get("drifted") else "no drift"
    return f"{verdict} (checked {drift['last_checked_at']})"
