"""One settings object, read from the environment, with embedded defaults.

Everything Tenantflow stores lives under ``TENANTFLOW_HOME`` (default ``./var`` in the repo).
Production replaces the embedded defaults through environment variables only
(``TENANTFLOW_ENV=production`` plus e.g. ``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN``,
``MLFLOW_TRACKING_URI``); no code edits.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    """Paths and endpoints of one Tenantflow installation."""

    home: Path
    environment: str = "local"
    airflow_port: int = 8080
    mlflow_port: int = 5000
    api_port: int = 8000
    airflow_user: str = "admin"
    airflow_password: str = "admin"

    @property
    def registry_db(self) -> Path:
        """SQLite file holding the tenant registry (and, later, audit log)."""
        return self.home / "registry.sqlite"

    @property
    def landing(self) -> Path:
        return self.home / "landing"

    @property
    def lake(self) -> Path:
        return self.home / "lake"

    @property
    def quarantine(self) -> Path:
        return self.home / "quarantine"

    @property
    def warehouse(self) -> Path:
        return self.home / "warehouse"

    @property
    def reports(self) -> Path:
        return self.home / "reports"

    @property
    def state(self) -> Path:
        """Ingestion ledger and other small bookkeeping files."""
        return self.home / "state"

    @property
    def airflow_home(self) -> Path:
        return Path(os.environ.get("AIRFLOW_HOME") or self.home / "airflow")

    @property
    def mlflow_tracking_uri(self) -> str:
        return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{self.home / 'mlflow' / 'mlflow.db'}"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.home / "mlflow" / "artifacts"

    @property
    def dbt_project_dir(self) -> Path:
        return Path(os.environ.get("TENANTFLOW_DBT_PROJECT_DIR") or REPO_ROOT / "dbt_project")

    @property
    def dbt_target_dir(self) -> Path:
        """Each dbt invocation gets its own target dir under here (parallel-safe)."""
        return self.home / "dbt"

    @property
    def dags_folder(self) -> Path:
        return REPO_ROOT / "dags"

    @property
    def gx_home(self) -> Path:
        """Great Expectations file context: suites' results and Data Docs."""
        return self.home / "gx"


def get_settings() -> Settings:
    """Read the settings from the environment (cheap; call it where needed)."""
    home = Path(os.environ.get("TENANTFLOW_HOME") or REPO_ROOT / "var").resolve()
    return Settings(
        home=home,
        environment=os.environ.get("TENANTFLOW_ENV", "local"),
        airflow_port=int(os.environ.get("TENANTFLOW_AIRFLOW_PORT", "8080")),
        mlflow_port=int(os.environ.get("TENANTFLOW_MLFLOW_PORT", "5000")),
        api_port=int(os.environ.get("TENANTFLOW_API_PORT", "8000")),
        airflow_user=os.environ.get("TENANTFLOW_AIRFLOW_USER", "admin"),
        airflow_password=os.environ.get("TENANTFLOW_AIRFLOW_PASSWORD", "admin"),
    )


def dataclass_from_env(cls: type[T], prefix: str) -> T:
    """A settings dataclass whose fields may each be set as ``<prefix><FIELD>``, typed like its default."""
    kw: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        raw = os.environ.get(f"{prefix}{f.name.upper()}")
        if raw is not None:
            default = getattr(cls, f.name)
            kw[f.name] = raw.lower() in ("1", "true", "yes") if isinstance(default, bool) else type(default)(raw)
    return cls(**kw)
