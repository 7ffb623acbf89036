"""Where every store keeps its files: the one module that spells a path under the home.

::

    home/
      landing/region=R/tenant=T/date=D/<file>            tenants' drops and webhook files (immutable)
      lake/region=R/tenant=T/date=D/part-0.parquet       validated events, + _manifest.json
      quarantine/region=R/tenant=T/date=D/part-0.parquet rejected rows with reason and raw text
      warehouse/region=R/pool.duckdb | silo_T.duckdb     the feature store (dbt-duckdb), + .lock
      snapshots/region=R/tenant=T/<snapshot id>/         frozen training marts, + latest.json
      published/region=R/tenant=T/<snapshot id>/         online features for the API, + CURRENT
      prediction_log/region=R/tenant=T/date=D/*.jsonl    every answer the API gave (a silo tenant's sealed)
      reports/monitoring/region=R/tenant=T/date=D/*.html Evidently drift reports
      reports/gx/...                                     Great Expectations validation results
      reports/health/tenant=T.json                       a tenant's feature health
      control.sqlite                                     tenants, keys, audit, monitor state (ml.core.control_db)
      audit.head                                         the audit log's last entry (ml.core.audit)
      serving/events.sqlite, serving/models/             the API's webhook ledger and model copies
      secrets/                                           generated secrets, 0700 (ml.core.secret_files)
      lineage/openlineage.jsonl                          the DAGs' OpenLineage events (ml.ops.lineage)
      mlflow/, airflow/, dbt/, gx/, logs/                the tools' own homes

Every ``region`` and ``tenant`` passes :func:`ml.core.ids.validate_slug` before it becomes a
path segment. Every file the platform writes under the home is its owner's only (0600, folders
0700): the processes that write them run with :data:`PRIVATE_UMASK` (:func:`keep_private`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from ml.core.ids import validate_slug, validate_snapshot_id


def tenant_key_file(root: Path, tenant_id: str) -> Path:
    """A tenant's key file in a keys folder outside the home (:mod:`ml.core.tenant_keys`)."""
    return root / f"tenant={validate_slug(tenant_id)}.key"


def silo_tenant_of(path: Path) -> str | None:
    """The tenant whose silo warehouse ``path`` is (``.../region=R/silo_T.duckdb``), or None."""
    if path.suffix == ".duckdb" and path.stem.startswith("silo_") and path.parent.name.startswith("region="):
        return validate_slug(path.stem.removeprefix("silo_"))
    return None


def _tenant_segments(region: str, tenant_id: str) -> tuple[str, str]:
    return f"region={validate_slug(region, 'region')}", f"tenant={validate_slug(tenant_id)}"


@dataclass(frozen=True)
class DailyStore:
    """A store partitioned ``region=R/tenant=T/date=D/`` (Hive style: DuckDB and Arrow read the keys)."""

    root: Path

    def tenant_dir(self, region: str, tenant_id: str) -> Path:
        return self.root.joinpath(*_tenant_segments(region, tenant_id))

    def day_dir(self, region: str, tenant_id: str, day: date) -> Path:
        return self.tenant_dir(region, tenant_id) / f"date={day.isoformat()}"

    def days(self, region: str, tenant_id: str) -> list[date]:
        """The tenant's partition dates, oldest first."""
        root = self.tenant_dir(region, tenant_id)
        if not root.is_dir():
            return []
        return sorted(
            date.fromisoformat(p.name[5:]) for p in root.iterdir() if p.name.startswith("date=") and p.is_dir()
        )

    def files(self, region: str, tenant_id: str, file_pattern: str) -> list[Path]:
        """The tenant's files matching ``file_pattern`` in any day's folder."""
        return sorted(self.tenant_dir(region, tenant_id).glob(f"date=*/{file_pattern}"))

    @staticmethod
    def day_of(folder: Path) -> date:
        """The date of a ``date=D`` folder."""
        return date.fromisoformat(folder.name.removeprefix("date="))

    def glob(self, region: str, tenant_id: str, file_pattern: str) -> str:
        """A glob over every day of the tenant (for DuckDB's readers)."""
        return str(self.tenant_dir(region, tenant_id) / "date=*" / file_pattern)


@dataclass(frozen=True)
class SnapshotStore:
    """A store of immutable, content-addressed folders per tenant: ``region=R/tenant=T/<id>/``.

    Each folder holds a metadata file (``meta_name``); each tenant folder a pointer file
    (``pointer_name``) naming the snapshot in use, replaced atomically.
    """

    root: Path
    pointer_name: str
    meta_name: str

    def tenant_dir(self, region: str, tenant_id: str) -> Path:
        return self.root.joinpath(*_tenant_segments(region, tenant_id))

    def snapshot_dir(self, region: str, tenant_id: str, snapshot_id: str) -> Path:
        return self.tenant_dir(region, tenant_id) / validate_snapshot_id(snapshot_id)

    def pointer(self, region: str, tenant_id: str) -> Path:
        return self.tenant_dir(region, tenant_id) / self.pointer_name

    def meta(self, region: str, tenant_id: str, snapshot_id: str) -> Path:
        return self.snapshot_dir(region, tenant_id, snapshot_id) / self.meta_name


# A home holds tenants' data and the installation's secrets: what a process creates is readable by
# its owner only (files 0600, folders 0700), whatever umask its shell had.
PRIVATE_UMASK = 0o077


def keep_private() -> int:
    """Set this process's umask to :data:`PRIVATE_UMASK` (inherited by its children); the old one.

    Called by the CLI (and so by ``tenantflow up``'s Airflow, MLflow and API processes), the API's
    app factory, and :class:`ml.ops.airflow.Services`; ``tenantflow env`` prints ``umask 077`` for
    a shell that starts them by hand, and the image's entry point sets it.
    """
    return os.umask(PRIVATE_UMASK)


LAKE_FILE = "part-0.parquet"  # one file per lake and quarantine partition
MANIFEST_FILE = "_manifest.json"  # per lake partition: what was read, counts per reason


@dataclass(frozen=True)
class Layout:
    """The stores of one home (``Settings.stores``)."""

    home: Path

    @property
    def landing(self) -> DailyStore:
        return DailyStore(self.home / "landing")

    @property
    def lake(self) -> DailyStore:
        return DailyStore(self.home / "lake")

    @property
    def quarantine(self) -> DailyStore:
        return DailyStore(self.home / "quarantine")

    @property
    def prediction_log(self) -> DailyStore:
        return DailyStore(self.home / "prediction_log")

    @property
    def monitoring_reports(self) -> DailyStore:
        return DailyStore(self.home / "reports" / "monitoring")

    @property
    def snapshots(self) -> SnapshotStore:
        return SnapshotStore(self.home / "snapshots", pointer_name="latest.json", meta_name="snapshot.json")

    @property
    def published(self) -> SnapshotStore:
        return SnapshotStore(self.home / "published", pointer_name="CURRENT", meta_name="meta.json")

    @property
    def warehouse_root(self) -> Path:
        return self.home / "warehouse"

    def warehouse_file(self, key: str) -> Path:
        """The DuckDB file of a warehouse key: ``eu/pool`` or ``us/silo_initech``."""
        region, name = key.split("/", 1)
        if name != "pool":
            validate_slug(name.removeprefix("silo_"), "tenant id")
        return self.warehouse_root / f"region={validate_slug(region, 'region')}" / f"{name}.duckdb"

    @property
    def parse_warehouse(self) -> Path:
        """The DuckDB file a plain ``dbt parse`` is pointed at (it stays empty)."""
        return self.warehouse_root / "_parse.duckdb"

    def dbt_target(self, warehouse_key: str | None) -> Path:
        """dbt's target folder for one warehouse's builds (``_parse`` for a plain ``dbt parse``)."""
        return self.home / "dbt" / (warehouse_key.replace("/", "__") if warehouse_key else "_parse")

    def dbt_docs(self, warehouse_key: str) -> Path:
        """dbt docs of one warehouse (``static_index.html``; its own target: a docs run never
        rewrites the manifest the builds and snapshots read)."""
        return self.home / "reports" / "dbt-docs" / warehouse_key.replace("/", "__")

    @property
    def gx_results(self) -> Path:
        """Great Expectations validation results (JSON) that Data Docs are rendered from."""
        return self.home / "reports" / "gx"

    def gx_result(self, area: str, suite: str, tenant_id: str, stamp: str) -> Path:
        """One validation result: ``reports/gx/<area>/<suite>/tenant=T/<stamp>.json``."""
        return self.gx_results / area / suite / f"tenant={validate_slug(tenant_id)}" / f"{stamp}.json"

    @property
    def gx_home(self) -> Path:
        return self.home / "gx"

    @property
    def data_docs_index(self) -> Path:
        """The front page of the Great Expectations Data Docs (GX's file context writes it there)."""
        return self.gx_home / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"

    def gx_tenant_dirs(self, tenant_id: str) -> list[Path]:
        """Every folder of GX results of one tenant (``reports/gx/<area>/<suite>/tenant=T``)."""
        return sorted(self.gx_results.glob(f"*/*/tenant={validate_slug(tenant_id)}"))

    def health_file(self, tenant_id: str) -> Path:
        return self.home / "reports" / "health" / f"tenant={validate_slug(tenant_id)}.json"

    @property
    def control_db(self) -> Path:
        return self.home / "control.sqlite"

    @property
    def audit_head(self) -> Path:
        """The audit log's last entry (id and hash), written after each commit (:mod:`ml.core.audit`)."""
        return self.home / "audit.head"

    @property
    def webhook_ledger(self) -> Path:
        return self.home / "serving" / "events.sqlite"

    def serving_model_dir(self, model_name: str) -> Path:
        """The API's disk copies of one registered model's versions (served while MLflow is down)."""
        return self.home / "serving" / "models" / model_name

    @property
    def secrets(self) -> Path:
        """Secrets the installation generates for itself (:mod:`ml.core.secret_files`)."""
        return self.home / "secrets"

    @property
    def ops_token(self) -> Path:
        """The serving API's ops token: ``/metrics`` and the detailed ``/readyz`` ask for it."""
        return self.secrets / "serving-ops-token"

    def tenant_lock(self, region: str, tenant_id: str) -> Path:
        """The lock a tenant's lake is written under (ingestion, user erasure)."""
        return self.home.joinpath("locks", *_tenant_segments(region, tenant_id)).with_suffix(".lock")

    @property
    def erasure_key(self) -> Path:
        """The key of erased users' tombstone hashes (:mod:`ml.core.erased_users`)."""
        return self.secrets / "erasure-key"

    @property
    def mlflow_db(self) -> Path:
        return self.home / "mlflow" / "mlflow.db"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.home / "mlflow" / "artifacts"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def lineage_events(self) -> Path:
        """The DAGs' OpenLineage events, one JSON object per line (the default transport, :mod:`ml.ops.lineage`)."""
        return self.home / "lineage" / "openlineage.jsonl"
