"""Running the real platform locally: Airflow 3 components, the MLflow UI, and a REST client.

Everything is configured through environment variables derived from :class:`Settings`, the
same ones ``tenantflow env`` prints, so the plain ``airflow``, ``mlflow`` and ``dbt`` CLIs
work on the same state. Production swaps the embedded defaults (SQLite, LocalExecutor) by
setting the usual ``AIRFLOW__...`` variables; anything already set in the environment wins.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ml.settings import REPO_ROOT, Settings, get_settings

AIRFLOW_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")


def _secret(path: Path) -> str:
    """A secret generated once per installation and kept in its home (shared by components)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def airflow_env(settings: Settings) -> dict[str, str]:
    """Environment for every Airflow process of this installation (existing values win)."""
    home = settings.airflow_home
    base = f"http://127.0.0.1:{settings.airflow_port}"
    defaults = {
        "TENANTFLOW_HOME": str(settings.home),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(settings.dags_folder),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "60",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{settings.airflow_user}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "simple_auth_manager_passwords.json"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__API__PORT": str(settings.airflow_port),
        "AIRFLOW__API__BASE_URL": base,
        "AIRFLOW__API__EXPOSE_CONFIG": "True",
        "AIRFLOW__API_AUTH__JWT_SECRET": _secret(home / ".jwt_secret"),
        "AIRFLOW__API__SECRET_KEY": _secret(home / ".api_secret"),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "True",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
        "GX_ANALYTICS_ENABLED": "false",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "PYTHONPATH": str(REPO_ROOT),
    }
    return {k: os.environ.get(k, v) for k, v in defaults.items()}


def shell_exports(settings: Settings) -> str:
    """``export`` lines for ``eval "$(tenantflow env)"``."""
    env = airflow_env(settings)
    env.update(
        {
            "DBT_PROJECT_DIR": str(settings.dbt_project_dir),
            "DBT_PROFILES_DIR": str(settings.dbt_project_dir),
            "TENANTFLOW_WAREHOUSE_DIR": str(settings.warehouse),
            "TENANTFLOW_LAKE": str(settings.lake),
        }
    )
    lines = [f"export {k}={_quote(v)}" for k, v in sorted(env.items())]
    lines.append("# dbt: export TENANTFLOW_WAREHOUSE_PATH=$TENANTFLOW_WAREHOUSE_DIR/region=eu/pool.duckdb before `dbt show`")
    return "\n".join(lines)


def _quote(v: str) -> str:
    return "'" + v.replace("'", "'\"'\"'") + "'"


def _bin(name: str) -> str:
    exe = Path(sys.executable).parent / name
    return str(exe) if exe.exists() else (shutil.which(name) or name)


def prepare_airflow(settings: Settings) -> None:
    """Create Airflow's home, the login, and migrate its database (idempotent)."""
    home = settings.airflow_home
    home.mkdir(parents=True, exist_ok=True)
    pw = home / "simple_auth_manager_passwords.json"
    pw.write_text(json.dumps({settings.airflow_user: settings.airflow_password}))
    subprocess.run([_bin("airflow"), "db", "migrate"], env={**os.environ, **airflow_env(settings)},
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


class Services:
    """Background processes (each in its own process group), logs under ``home/logs``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, argv: list[str]) -> None:
        logs = self.settings.home / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        out = open(logs / f"{name}.log", "ab")
        self.procs[name] = subprocess.Popen(
            argv, env={**os.environ, **airflow_env(self.settings)}, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def start_airflow(self, components: tuple[str, ...] = AIRFLOW_COMPONENTS) -> None:
        for c in components:
            argv = [_bin("airflow"), c]
            if c == "api-server":
                argv += ["--port", str(self.settings.airflow_port)]
            self.start(c, argv)

    def check_alive(self) -> None:
        for name, p in self.procs.items():
            if p.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with code {p.returncode}; see {self.settings.home / 'logs' / (name + '.log')}"
                )

    def stop(self, timeout: float = 20.0) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for p in self.procs.values():
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        self.procs.clear()


@contextmanager
def running_airflow(settings: Settings | None = None) -> Iterator[AirflowClient]:
    """Start the Airflow components, yield a logged-in client, stop them all on exit."""
    settings = settings or get_settings()
    prepare_airflow(settings)
    services = Services(settings)
    # The components run in their own sessions: turn SIGTERM into an exception so that the
    # `finally` below stops them, whoever ends us.
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        services.start_airflow()
        client = AirflowClient(settings, services)
        client.wait_ready()
        yield client
    finally:
        services.stop()
        signal.signal(signal.SIGTERM, previous)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


class AirflowClient:
    """The few calls of Airflow 3's REST API (v2) that Tenantflow drives."""

    def __init__(self, settings: Settings, services: Services | None = None) -> None:
        self.settings = settings
        self.services = services
        self.base = f"http://127.0.0.1:{settings.airflow_port}"
        self._token: str | None = None

    def _request(self, method: str, path: str, body: dict | None = None, auth: bool = True) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if auth:
            req.add_header("Authorization", f"Bearer {self.token()}")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                payload = r.read()
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"Airflow API {method} {path}: HTTP {e.code}: {e.read().decode()[:500]}") from None
        return json.loads(payload) if payload else {}

    def token(self) -> str:
        if self._token is None:
            res = self._request(
                "POST", "/auth/token",
                {"username": self.settings.airflow_user, "password": self.settings.airflow_password}, auth=False,
            )
            self._token = res["access_token"]
        return self._token

    def wait_ready(self, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.services:
                self.services.check_alive()
            try:
                health = self._request("GET", "/api/v2/monitor/health", auth=False)
                if health.get("metadatabase", {}).get("status") == "healthy":
                    return
            except (urllib.error.URLError, ConnectionError, RuntimeError, OSError):
                pass
            time.sleep(1)
        raise TimeoutError(f"Airflow API did not become healthy on {self.base} within {timeout:.0f}s")

    def wait_dag(self, dag_id: str, timeout: float = 180.0) -> dict:
        """Wait until the dag-processor has parsed ``dag_id``."""
        deadline = time.monotonic() + timeout
        while True:
            if self.services:
                self.services.check_alive()
            try:
                return self._request("GET", f"/api/v2/dags/{dag_id}")
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"DAG {dag_id} was not parsed within {timeout:.0f}s; see logs/dag-processor.log") from None
                time.sleep(2)

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self._request("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": paused})

    def trigger(self, dag_id: str, conf: dict | None = None, logical_date: str | None = None) -> str:
        res = self._request("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": logical_date, "conf": conf or {}})
        return res["dag_run_id"]

    def runs(self, dag_id: str) -> list[dict]:
        return self._request("GET", f"/api/v2/dags/{dag_id}/dagRuns?limit=100&order_by=-run_after")["dag_runs"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        quoted = urllib.parse.quote(run_id, safe="")
        return self._request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{quoted}/taskInstances?limit=500")["task_instances"]

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 1800.0) -> dict:
        deadline = time.monotonic() + timeout
        quoted = urllib.parse.quote(run_id, safe="")
        while True:
            if self.services:
                self.services.check_alive()
            run = self._request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{quoted}")
            if run["state"] in ("success", "failed"):
                return run
            if time.monotonic() > deadline:
                raise TimeoutError(f"{dag_id} run {run_id} still {run['state']} after {timeout:.0f}s")
            time.sleep(2)

    def wait_idle(self, dag_id: str, after: str, min_runs: int = 1, timeout: float = 1800.0) -> list[dict]:
        """Wait until ``dag_id`` has at least ``min_runs`` runs queued after ``after`` (ISO time)
        and none of them is still queued or running; return those runs."""
        deadline = time.monotonic() + timeout
        while True:
            if self.services:
                self.services.check_alive()
            runs = [r for r in self.runs(dag_id) if (r.get("queued_at") or r.get("run_after") or "") >= after]
            if len(runs) >= min_runs and all(r["state"] in ("success", "failed") for r in runs):
                return runs
            if time.monotonic() > deadline:
                raise TimeoutError(f"{dag_id}: runs after {after} did not finish within {timeout:.0f}s: {runs}")
            time.sleep(2)
