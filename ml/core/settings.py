"""One typed settings tree, read from the environment, with the embedded defaults.

Every setting is ``TENANTFLOW_<FIELD>`` at the top level, or ``TENANTFLOW_<GROUP>_<FIELD>`` in a
group (``TENANTFLOW_MONITOR_COOLDOWN_HOURS``, ``TENANTFLOW_TRAIN_MIN_HISTORY_DAYS``): for a
group's setting the first ``_`` after the prefix separates the group from the field; a top-level
field's whole name follows the prefix (``TENANTFLOW_DBT_PROJECT_DIR``). Production replaces the embedded
defaults (SQLite, LocalExecutor, ``./var``) through the environment only: these variables, plus
the tools' own (``AIRFLOW__...``, ``MLFLOW_TRACKING_URI``). Values are validated when read: a
``TENANTFLOW_TRAIN_THREADS=two`` fails with the variable's name, never later in a task.

All state lives under ``home``; :mod:`ml.core.layout` says where each store keeps its files.
"""

from __future__ import annotations

import os
import sys
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from ml.core.layout import Layout

REPO_ROOT = Path(__file__).resolve().parents[2]
ENV_PREFIX = "TENANTFLOW_"


class _Group(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AirflowSettings(_Group):
    """The local Airflow (``make up``, the demo, the integration test)."""

    port: int = 8080
    user: str = "admin"
    password: str | None = None  # None: generated at first start into <home>/secrets/airflow-admin-password
    host: str = "127.0.0.1"  # the api-server's bind address; 0.0.0.0 only when the operator says so


class MlflowSettings(_Group):
    """The MLflow UI of ``make up``; the store itself is ``MLFLOW_TRACKING_URI`` or SQLite in home."""

    port: int = 5000
    # where people open the MLflow UI (links in the tenant view); default http://127.0.0.1:<port>
    ui_url: str | None = None
    # MLflow's basic-auth app (ml.ops.mlflow_auth): passwords None are generated into <home>/secrets
    admin_user: str = "admin"
    admin_password: str | None = None
    service_user: str = "tenantflow-service"
    service_password: str | None = None
    # seconds the server trusts a checked password (its auth_cache_ttl_seconds; 0: check every request, scrypt's
    # ~127 ms of CPU here: benchmarks/README.md, *MLflow's credential cache*); a password, user or admin flag
    # changed outside the server's API (`tenantflow mlflow-auth`) takes this long to count: at most 10 minutes
    auth_cache_seconds: int = Field(60, ge=0, le=600)


class LandingSettings(_Group):
    """When a landing file counts as complete."""

    # A file modified within this many seconds may still be uploading: it waits for the next run.
    settle_seconds: float = 5.0
    # A silo tenant's dropped file is sealed in place (ml.core.sealed_files) once ingested and unchanged
    # for this many seconds: an uploader that pauses longer than settle_seconds and appends again
    # finds its plain file, re-ingested as a late file, never a sealed one it would corrupt.
    seal_after_seconds: float = 3600.0
    # DuckDB's memory cap while reading one tenant's files (a DuckDB size: "8GB", "500MB"). A file
    # or a spec expression (say ``lpad(x, 400000000)``) that needs more fails that file as
    # ``unreadable_file``, never the worker; DuckDB spills what it can to disk first.
    read_memory_limit: str = Field("8GB", pattern=r"^\s*[0-9]+(\.[0-9]+)?\s*([KMGT]i?B|B)\s*$")


class TrainSettings(_Group):
    """Training and promotion (see :mod:`ml.models.gate` for how the gate uses them)."""

    min_history_days: int = 30
    promotion_margin: float = 0.002  # absolute, on the kind's headline metric
    latency_budget_ms: float = 10.0  # CPU time on one thread to score one request's rows (median of 30 tries)
    fairness_tolerance: float = 0.8  # flag a tenant below this fraction of the median tenant
    # LightGBM threads per tenant model (and its competition's ALS and EASE's LAPACK). Two tenant models train at
    # once on two cores; more threads than cores made OpenMP's spinning barriers crawl (a 40k-row fit: ~1 s -> minutes).
    threads: int = 1
    # The global model's LightGBM threads. The train DAG runs every kind's global model side by
    # side: two threads lose while another task holds a core, one leaves a core idle once the
    # recommender's global model trains alone, as on the demo's data (benchmarks/README.md, *The
    # test suite's time and LightGBM's threads*). Two until that trade-off is measured there.
    global_threads: int = 2
    # The global model's training rows, shared evenly between the sharing tenants (whole ranking
    # queries sampled): bounds its cost as the fleet grows; big tenants cannot drown small ones.
    global_max_rows: int = 1_000_000
    # A run started by new features retrains only what is due: no champion, a champion older than
    # this, a changed dbt project, or a tenant graduating from the global model.
    retrain_every_days: float = 7.0
    # Serve a learnt winner refitted on the newest labelled cutoffs, the holdout's included
    # (ml.models.refit); off: the booster the holdout judged serves (weeks older on a long window).
    refit: bool = True


class MonitorSettings(_Group):
    """Platform-wide monitoring defaults; a tenant's overrides win (``tenantflow monitor policy``).

    The fields and their meaning are :class:`ml.monitoring.policy.MonitorPolicy`'s.
    """

    column_threshold: float = 0.1
    drift_share: float = 0.5
    prediction_threshold: float = 0.15
    data_threshold: float = 0.1
    drift_alpha: float = 0.05
    drift_permutations: int = 100
    decay_tolerance: float = 0.15
    min_rows: int = 300
    min_users: int = 50
    min_positives: int = 10
    warmup_days: int = 28
    sample_rows: int = 20_000
    reference_days: int = 14
    current_days: int = 7
    cooldown_hours: float = 24.0
    daily_budget: int = 10
    watch_days: int = 7
    rollback_tolerance: float = 0.1


class ServeSettings(_Group):
    """The serving API (``tenantflow serve``)."""

    port: int = 8000
    refresh_seconds: float = 5.0  # how often the registry's aliases are polled
    watch_seconds: float = 1.0  # how often keys, tenants, traffic splits and published features are re-read
    max_body_bytes: int = 1_048_576
    max_events: int = 1_000  # per webhook request
    flush_ms: float = 5.0  # webhook group-commit window
    auth_failures: int = 20  # bad keys per client per minute before it is throttled
    auth_block_seconds: float = 60.0
    # addresses (or networks) of the reverse proxies whose X-Forwarded-For names the client, comma
    # separated; empty: the connecting address is the client, whatever a header says
    trusted_proxies: str = ""
    # ``/metrics`` and the detailed ``/readyz`` ask for it (``Authorization: Bearer <token>``);
    # empty: generated at first start into the home's secrets (Layout.ops_token, mode 0600)
    ops_token: str = ""
    log_interval: float = 1.0  # prediction log flush


class KeySettings(_Group):
    """Silo tenants' encryption keys (:mod:`ml.core.tenant_keys`): never inside the home."""

    provider: str = "file"  # file | env | module:attribute (a KMS client of your own)
    dir: Path | None = None  # the file provider's folder; default: the home's sibling <home>-keys
    values: dict[str, str] = {}  # the env provider's keys: a JSON object {"tenant id": "64 hex characters"}


class Settings(BaseSettings):
    """Paths, endpoints and policies of one Tenantflow installation."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="_",
        env_nested_max_split=1,
        frozen=True,
        extra="ignore",
    )

    home: Path = REPO_ROOT / "var"
    dbt_project_dir: Path = REPO_ROOT / "dbt_project"
    # the npm packages GX's Data Docs load from CDNs (ml/data/data_docs_assets/), which the venv's
    # install puts here (`make venv`; the Dockerfile likewise): copied into the site, offline
    data_docs_assets: Path = Path(sys.prefix) / "share" / "tenantflow" / "data-docs-assets" / "node_modules"
    git_commit: str | None = None  # recorded on model versions; default: `git rev-parse HEAD`
    # Test hook: sleep at a named ingestion stage so a test can SIGKILL the process right there.
    fault_pause: str | None = None
    fault_pause_flag: Path | None = None
    airflow: AirflowSettings = AirflowSettings()
    mlflow: MlflowSettings = MlflowSettings()
    landing: LandingSettings = LandingSettings()
    train: TrainSettings = TrainSettings()
    monitor: MonitorSettings = MonitorSettings()
    serve: ServeSettings = ServeSettings()
    keys: KeySettings = KeySettings()
    # The tools' own variables, read here so that nothing else reads the environment.
    airflow_home_env: Path | None = Field(None, validation_alias="AIRFLOW_HOME")
    mlflow_tracking_uri_env: str | None = Field(None, validation_alias="MLFLOW_TRACKING_URI")

    def model_post_init(self, __context: object) -> None:
        object.__setattr__(self, "home", self.home.resolve())

    @cached_property
    def stores(self) -> Layout:
        """Where every store of this home keeps its files (:mod:`ml.core.layout`)."""
        from ml.core.layout import Layout

        return Layout(self.home)

    @property
    def airflow_home(self) -> Path:
        return self.airflow_home_env or self.home / "airflow"

    @property
    def mlflow_tracking_uri(self) -> str:
        return self.mlflow_tracking_uri_env or f"sqlite:///{self.stores.mlflow_db}"

    @property
    def dags_folder(self) -> Path:
        return REPO_ROOT / "dags"


def get_settings() -> Settings:
    """The settings of this process's environment (cheap: read where needed, never cached).

    Raises:
        pydantic.ValidationError: a variable holds a value of the wrong type; the message names it.
    """
    return Settings()


# Variables of earlier releases and the settings that replaced them (README, "Configuration").
RENAMED = {
    "TENANTFLOW_API_PORT": "TENANTFLOW_SERVE_PORT",
    "TENANTFLOW_MIN_HISTORY_DAYS": "TENANTFLOW_TRAIN_MIN_HISTORY_DAYS",
    "TENANTFLOW_PROMOTION_MARGIN": "TENANTFLOW_TRAIN_PROMOTION_MARGIN",
    "TENANTFLOW_LATENCY_BUDGET_MS": "TENANTFLOW_TRAIN_LATENCY_BUDGET_MS",
    "TENANTFLOW_FAIRNESS_TOLERANCE": "TENANTFLOW_TRAIN_FAIRNESS_TOLERANCE",
    "TENANTFLOW_RETRAIN_EVERY_DAYS": "TENANTFLOW_TRAIN_RETRAIN_EVERY_DAYS",
    "TENANTFLOW_GLOBAL_MAX_ROWS": "TENANTFLOW_TRAIN_GLOBAL_MAX_ROWS",
    "TENANTFLOW_GLOBAL_TRAIN_THREADS": "TENANTFLOW_TRAIN_GLOBAL_THREADS",
}
# Variables of earlier releases that nothing replaces, and why.
RETIRED = {
    "TENANTFLOW_ENV": "production is chosen by the tools' own variables (AIRFLOW__..., MLFLOW_TRACKING_URI)",
}

# Not settings, but read by the tools Tenantflow runs: the dbt profile (target, warehouse file,
# DuckDB threads and memory, an encrypted warehouse's catalog and extensions), the Procfile of `tenantflow up` (MLflow's artifact root), and the
# shell exports of `tenantflow env` (where the warehouses and the lake are, for a person's duckdb).
TOOL_VARIABLES = frozenset(
    f"{ENV_PREFIX}{n}"
    for n in (
        "DBT_TARGET",
        "WAREHOUSE_PATH",
        "DUCKDB_THREADS",
        "DUCKDB_MEMORY_LIMIT",
        "WAREHOUSE_CATALOG",  # the encrypted target's attach alias (ml.data.dbt.run_dbt)
        "PARQUET_KEY_NAME",  # the encrypted target's Parquet key name (ml.data.dbt_plugin)
        "DUCKDB_EXTENSIONS",  # where DuckDB finds httpfs (the duckdb-ext-httpfs package)
        "UP_MLFLOW_ARTIFACTS",
        "WAREHOUSE_DIR",
        "LAKE",
        "DATASETS",  # where the tests and benchmarks find the real data sets (never copied into a home)
    )
)


def setting_variables() -> frozenset[str]:
    """Every ``TENANTFLOW_*`` variable a setting reads."""
    known = {f"{ENV_PREFIX}{name.upper()}" for name, f in Settings.model_fields.items() if not f.validation_alias}
    groups = {n: f.annotation for n, f in Settings.model_fields.items() if isinstance(f.default, BaseModel)}
    for group, model in groups.items():
        known |= {f"{ENV_PREFIX}{group.upper()}_{field.upper()}" for field in model.model_fields}  # type: ignore[union-attr]
    return frozenset(known)


def unknown_variables(environ: dict[str, str] | None = None) -> list[str]:
    """Warnings for ``TENANTFLOW_*`` variables that name no setting (otherwise silently ignored).

    Returns:
        One line per such variable, sorted: a renamed variable names its new name, any other
        says it may be a typo.
    """
    environ = dict(os.environ if environ is None else environ)
    known = setting_variables() | TOOL_VARIABLES
    lines = []
    for name in sorted(k for k in environ if k.startswith(ENV_PREFIX) and k not in known):
        if name in RENAMED:
            lines.append(f"{name} is no longer read: it is now {RENAMED[name]}")
        elif name in RETIRED:
            lines.append(f"{name} is no longer read: {RETIRED[name]}")
        else:
            lines.append(f"{name} is not a Tenantflow setting (a typo?); the settings are in ml/core/settings.py")
    return lines
