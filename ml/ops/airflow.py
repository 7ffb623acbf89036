"""Running the real platform locally: Airflow 3's components and their environment.

Everything is configured through environment variables derived from the settings, the same ones
``tenantflow env`` prints, so the plain ``airflow``, ``mlflow`` and ``dbt`` CLIs work on the same
state. Production swaps the embedded defaults (SQLite, LocalExecutor) by setting the usual
``AIRFLOW__...`` variables; anything already set in the environment wins.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ml.core import atomic, secret_files
from ml.core.layout import PRIVATE_UMASK
from ml.core.settings import REPO_ROOT, Settings, get_settings
from ml.ops.airflow_client import AirflowClient, airflow_password

AIRFLOW_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")


def airflow_env(settings: Settings) -> dict[str, str]:
    """Environment for every Airflow process of this installation (existing values win; ``PYTHONPATH``: the
    repository first, then the existing one)."""
    home = settings.airflow_home
    base = f"http://127.0.0.1:{settings.airflow.port}"
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
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{settings.airflow.user}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "simple_auth_manager_passwords.json"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__API__PORT": str(settings.airflow.port),
        "AIRFLOW__API__HOST": settings.airflow.host,
        "AIRFLOW__API__BASE_URL": base,
        "AIRFLOW__API__EXPOSE_CONFIG": "False",  # the config holds the database URL and secrets
        "AIRFLOW__API_AUTH__JWT_SECRET": secret_files.generated(home / ".jwt_secret"),
        "AIRFLOW__API__SECRET_KEY": secret_files.generated(home / ".api_secret"),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "True",
        # every listener of the components on the loopback interface (ml.ops.airflow_logs)
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST": "127.0.0.1",
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "ml.ops.airflow_logs.loopback",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        # OpenLineage (ml/ops/lineage.py): every task's events, with the datasets it touched, to a
        # JSON-lines file under the home; set AIRFLOW__OPENLINEAGE__TRANSPORT for Marquez or another backend
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "tenantflow",
        "AIRFLOW__OPENLINEAGE__EXTRACTORS": "ml.ops.lineage.TenantflowExtractor",
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
            {"type": "file", "log_file_path": str(settings.stores.lineage_events), "append": True}
        ),
        "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
        # a task's stderr is its log's ERROR level: no progress bars there (downloading a model), and
        # MLflow's loggers go through Airflow's logging at their own levels, not to stderr
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        "MLFLOW_CONFIGURE_LOGGING": "false",
        "GX_ANALYTICS_ENABLED": "false",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    if "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" not in os.environ:  # the embedded SQLite database
        defaults["AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS"] = "ml.ops.airflow_sqlite.CONNECT_ARGS"
        defaults["AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS_ASYNC"] = "ml.ops.airflow_sqlite.ASYNC_CONNECT_ARGS"
    settings.stores.lineage_events.parent.mkdir(parents=True, exist_ok=True)
    env = {k: os.environ.get(k, v) for k, v in defaults.items()}
    # the DAG files import `dags` and `ml` from the repository: first on the path, whatever a user's shell adds
    # (a PYTHONPATH of their own left Airflow with no DAG, each file failing with "No module named 'dags'")
    theirs = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != str(REPO_ROOT)]
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *theirs])
    return env


# exports whose values are secrets (signing keys, passwords), masked where ``tenantflow env`` prints to a terminal
SECRET_EXPORT = re.compile(r"SECRET|PASSWORD(?!S_FILE)|TOKEN|_KEY$")


def shell_exports(settings: Settings, mask_secrets: bool = False) -> str:
    """``export`` lines for ``eval "$(tenantflow env)"``; ``mask_secrets``: secret values (:data:`SECRET_EXPORT`)
    replaced by a note, for a terminal's scrollback."""
    env = airflow_env(settings)
    env.update(
        {
            "DBT_PROJECT_DIR": str(settings.dbt_project_dir),
            "DBT_PROFILES_DIR": str(settings.dbt_project_dir),
            "TENANTFLOW_WAREHOUSE_DIR": str(settings.stores.warehouse_root),
            "TENANTFLOW_LAKE": str(settings.stores.lake.root),
        }
    )
    masked = "'(masked on a terminal: eval \"$(tenantflow env)\", or tenantflow env --show-secrets)'"
    lines = [
        f"export {k}={masked if mask_secrets and SECRET_EXPORT.search(k) else _quote(v)}"
        for k, v in sorted(env.items())
    ]
    lines.append(f"umask {PRIVATE_UMASK:03o}  # what Tenantflow's processes write is their owner's only")
    example = settings.stores.warehouse_file("eu/pool")
    lines.append(f"# dbt: export TENANTFLOW_WAREHOUSE_PATH={example} (a warehouse file) before `dbt show`")
    return "\n".join(lines)


def _quote(v: str) -> str:
    return "'" + v.replace("'", "'\"'\"'") + "'"


def bin_path(name: str) -> str:
    """A command of this interpreter's environment (the venv's ``airflow``), else from PATH."""
    exe = Path(sys.executable).parent / name
    return str(exe) if exe.exists() else (shutil.which(name) or name)


def prepare_airflow(settings: Settings) -> None:
    """Create Airflow's home, the login, and migrate its database (idempotent)."""
    home = settings.airflow_home
    home.mkdir(parents=True, exist_ok=True)
    passwords = home / "simple_auth_manager_passwords.json"
    atomic.write_json(passwords, {settings.airflow.user: airflow_password(settings)})
    passwords.chmod(0o600)
    env = {**os.environ, **airflow_env(settings)}
    subprocess.run(
        [bin_path("airflow"), "db", "migrate"], env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


class Services:
    """Background processes (each in its own process group), logs under ``home/logs``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, argv: list[str]) -> None:
        logs = self.settings.stores.logs
        logs.mkdir(parents=True, exist_ok=True)
        with open(logs / f"{name}.log", "ab") as out:  # the child keeps its own copy of the descriptor
            self.procs[name] = subprocess.Popen(
                argv,
                env={**os.environ, **airflow_env(self.settings)},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                umask=PRIVATE_UMASK,  # its task processes write tenants' data
            )

    def start_airflow(self, components: tuple[str, ...] = AIRFLOW_COMPONENTS) -> None:
        """The components as the Procfile starts them: task logs served on 127.0.0.1 by one process
        of our own (:mod:`ml.ops.airflow_logs`), not by the scheduler's and triggerer's on every interface."""
        for c in components:
            argv = [bin_path("airflow"), c]
            if c == "api-server":
                argv += ["--host", self.settings.airflow.host, "--port", str(self.settings.airflow.port)]
            if c in ("scheduler", "triggerer"):
                argv.append("--skip-serve-logs")
            self.start(c, argv)
        if {"scheduler", "triggerer"} & set(components):
            self.start("airflow-logs", [sys.executable, "-m", "ml.ops.airflow_logs"])

    def check_alive(self) -> None:
        for name, p in self.procs.items():
            if p.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with code {p.returncode}; see {self.settings.stores.logs / (name + '.log')}"
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
def running_airflow(
    settings: Settings | None = None, components: tuple[str, ...] = AIRFLOW_COMPONENTS
) -> Iterator[AirflowClient]:
    """Start the Airflow components (all by default), yield a logged-in client, stop them all on exit."""
    settings = settings or get_settings()
    prepare_airflow(settings)
    services = Services(settings)
    # The components run in their own sessions: turn SIGTERM into an exception so that the
    # `finally` below stops them, whoever ends us.
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        services.start_airflow(components)
        client = AirflowClient(settings, services)
        client.wait_ready()
        yield client
    finally:
        services.stop()
        signal.signal(signal.SIGTERM, previous)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")
