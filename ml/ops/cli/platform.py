"""``tenantflow serve | status | env | demo | up | mlflow-auth | compose-env``: running the platform
and looking at it."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from ml.core.settings import REPO_ROOT, get_settings


def serve(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int | None, typer.Option(help="Default: TENANTFLOW_SERVE_PORT (8000)")] = None,
) -> None:
    """The serving API (FastAPI on uvicorn)."""
    from ml.serving.app import run

    settings = get_settings()
    port = port or settings.serve.port
    print(
        f"Tenantflow API on http://{host}:{port}  (OpenAPI: /docs; keys: tenantflow tenants keys create TENANT)",
        flush=True,
    )
    run(host, port, settings)


def status(
    as_json: Annotated[bool, typer.Option("--json", help="The status contract, as JSON")] = False,
    tenant: Annotated[list[str] | None, typer.Option("--tenant", help="Only this tenant (repeatable)")] = None,
) -> None:
    """Per-tenant status from the real stores."""
    from ml.ops.cli.progress import out
    from ml.ops.status import report_lines, status_table
    from ml.ops.status import status as read

    rows = read(get_settings(), tenant or None)
    if as_json:
        print(json.dumps(rows, indent=1))
    else:
        out.print(status_table(rows))
        for line in report_lines(rows):
            print(line)  # whole: a path is to be opened or copied


def env(
    show_secrets: Annotated[bool, typer.Option("--show-secrets", help="Print secret values on a terminal too")] = False,
) -> None:
    """Shell exports: eval "$(tenantflow env)". On a terminal, secret values are masked unless --show-secrets."""
    from ml.ops.airflow import shell_exports

    print(shell_exports(get_settings(), mask_secrets=sys.stdout.isatty() and not show_secrets))


def demo(scale: Annotated[float, typer.Option(help="Multiply the demo tenants' users and items")] = 1.0) -> None:
    """The end-to-end demo through real Airflow."""
    from ml.ops.demo import run_demo

    if not run_demo(get_settings(), scale=scale):
        raise typer.Exit(1)


def up() -> None:
    """Start the Airflow and MLflow UIs and Airflow's scheduler, dag-processor, triggerer."""
    from ml.ops import mlflow_auth
    from ml.ops.airflow import airflow_env, bin_path, prepare_airflow

    settings = get_settings()
    prepare_airflow(settings)
    auth = mlflow_auth.prepare(settings)
    settings.stores.mlflow_artifacts.mkdir(parents=True, exist_ok=True)
    env = {
        **mlflow_auth.server_env(auth),
        **os.environ,
        **airflow_env(settings),
        "TENANTFLOW_AIRFLOW_PORT": str(settings.airflow.port),
        "TENANTFLOW_AIRFLOW_HOST": settings.airflow.host,
        "TENANTFLOW_MLFLOW_PORT": str(settings.mlflow.port),
        "TENANTFLOW_UP_MLFLOW_ARTIFACTS": str(settings.stores.mlflow_artifacts),
        "TENANTFLOW_SERVE_PORT": str(settings.serve.port),
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": os.environ.get(
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false"
        ),  # GenAI jobs: unused
        # the Procfile calls airflow and mlflow by name: this interpreter's venv comes first
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }
    a = settings.airflow
    where = "TENANTFLOW_AIRFLOW_PASSWORD" if a.password else settings.stores.secrets / "airflow-admin-password"
    print(f"Airflow UI: http://{a.host}:{a.port}  login {a.user}, password in {where}")
    secret = settings.stores.secrets / "mlflow-admin-password"
    mlflow_where = "TENANTFLOW_MLFLOW_ADMIN_PASSWORD" if settings.mlflow.admin_password else secret
    print(
        f"MLflow UI:  http://127.0.0.1:{settings.mlflow.port}/#/models?workflowType=machine_learning  "
        f"login {auth.admin_user}, password in {mlflow_where}"
    )
    print(f"API:        http://127.0.0.1:{settings.serve.port}/docs  (keys: tenantflow tenants keys create TENANT)")
    print("Ctrl-C stops everything.", flush=True)
    os.execve(
        bin_path("honcho"), [bin_path("honcho"), "-f", str(REPO_ROOT / "Procfile"), "-d", str(REPO_ROOT), "start"], env
    )


def mlflow_auth(
    database: Annotated[
        str | None, typer.Option(help="The users database (SQLAlchemy URI); default SQLite in home")
    ] = None,
) -> None:
    """Write MLflow's basic-auth config (NO_PERMISSIONS by default) and create the service account."""
    from ml.ops import mlflow_auth as auth_setup

    auth = auth_setup.prepare(get_settings(), database)
    print(
        f"MLflow auth config: {auth.config} (MLFLOW_AUTH_CONFIG_PATH); admin {auth.admin_user}; "
        f"service account {auth.service_user}"
    )


def compose_env(
    out: Annotated[Path, typer.Option(help="The env file docker compose reads")] = Path(".env"),
) -> None:
    """Generate the secrets of docker-compose.yaml into an env file (mode 0600); never overwrites one."""
    import secrets

    if out.exists():
        print(f"{out} exists; keeping its secrets (delete it to generate new ones)")
        return
    values = {
        "POSTGRES_PASSWORD": secrets.token_urlsafe(24),
        "REDIS_PASSWORD": secrets.token_urlsafe(24),
        "AIRFLOW_JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW_API_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW_ADMIN_PASSWORD": secrets.token_urlsafe(18),
        "TENANTFLOW_MLFLOW_ADMIN_USER": "admin",
        "TENANTFLOW_MLFLOW_ADMIN_PASSWORD": secrets.token_urlsafe(18),
        "TENANTFLOW_MLFLOW_SERVICE_USER": "tenantflow-service",
        "TENANTFLOW_MLFLOW_SERVICE_PASSWORD": secrets.token_urlsafe(24),
        "TENANTFLOW_SERVE_OPS_TOKEN": secrets.token_urlsafe(32),
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_urlsafe(32),
    }
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("# docker compose secrets, generated by `tenantflow compose-env`; keep this file private\n")
        f.writelines(f"{k}={v}\n" for k, v in values.items())
    print(f"wrote {len(values)} secrets to {out} (mode 0600)")


def register(app: typer.Typer) -> None:
    for command in (serve, status, env, demo, up):
        app.command(help=(command.__doc__ or "").strip())(command)
    app.command("mlflow-auth", help=(mlflow_auth.__doc__ or "").strip())(mlflow_auth)
    app.command("compose-env", help=(compose_env.__doc__ or "").strip())(compose_env)
