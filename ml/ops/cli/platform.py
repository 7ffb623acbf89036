"""``tenantflow serve | status | env | demo | up``: running the platform and looking at it."""

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
    from ml.ops.status import format_table
    from ml.ops.status import status as read

    rows = read(get_settings(), tenant or None)
    print(json.dumps(rows, indent=1) if as_json else format_table(rows))


def env() -> None:
    """Shell exports: eval "$(tenantflow env)"."""
    from ml.ops.airflow import shell_exports

    print(shell_exports(get_settings()))


def demo(scale: Annotated[float, typer.Option(help="Multiply the demo tenants' users and items")] = 1.0) -> None:
    """The end-to-end demo through real Airflow."""
    from ml.ops.demo import run_demo

    if not run_demo(get_settings(), scale=scale):
        raise typer.Exit(1)


def up() -> None:
    """Start the Airflow and MLflow UIs and Airflow's scheduler, dag-processor, triggerer."""
    from ml.ops.airflow import airflow_env, bin_path, prepare_airflow

    settings = get_settings()
    prepare_airflow(settings)
    settings.stores.mlflow_artifacts.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        **airflow_env(settings),
        "TENANTFLOW_AIRFLOW_PORT": str(settings.airflow.port),
        "TENANTFLOW_MLFLOW_PORT": str(settings.mlflow.port),
        "TENANTFLOW_MLFLOW_ARTIFACTS": str(settings.stores.mlflow_artifacts),
        "TENANTFLOW_SERVE_PORT": str(settings.serve.port),
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": os.environ.get(
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false"
        ),  # GenAI jobs: unused
        # the Procfile calls airflow and mlflow by name: this interpreter's venv comes first
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }
    a = settings.airflow
    print(f"Airflow UI: http://127.0.0.1:{a.port}  login {a.user} / {a.password}")
    print(f"MLflow UI:  http://127.0.0.1:{settings.mlflow.port}")
    print(f"API:        http://127.0.0.1:{settings.serve.port}/docs  (keys: tenantflow tenants keys create TENANT)")
    print("Ctrl-C stops everything.", flush=True)
    os.execve(
        bin_path("honcho"), [bin_path("honcho"), "-f", str(REPO_ROOT / "Procfile"), "-d", str(REPO_ROOT), "start"], env
    )


def register(app: typer.Typer) -> None:
    for command in (serve, status, env, demo, up):
        app.command(help=(command.__doc__ or "").strip())(command)
