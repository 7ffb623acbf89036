"""Training snapshots: a tenant's training data frozen as Parquet, with a content id.

Training never reads the live warehouse while it learns. It first copies each tenant's
training marts out of its warehouse file (read-only, under the warehouse lock, so it never
meets a half-built table) into ``snapshots/region=R/tenant=T/<snapshot_id>/``, next to the
tenant's other data in its region. The snapshot id is a hash of the files' content (their bytes;
a silo tenant's encrypted files, whose bytes differ on every write, their rows): the same data
gives the same id, every model version is tagged with it, and retraining on a snapshot
reproduces the model (see ``tests/models``). A silo tenant's files are encrypted with its key
(:mod:`ml.core.tenant_parquet`): read them with :meth:`Snapshot.read`.

The dbt manifest hash recorded with the snapshot is a hash of the model nodes' checksums (not
of the manifest file, which carries timestamps), so it changes exactly when the SQL or yml does.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ml.core import atomic, lineage, tenant_parquet
from ml.core.settings import Settings, get_settings
from ml.core.tenants import TenantStore
from ml.core.warehouse import Warehouse, connect, warehouse_lock
from ml.data.dbt import feature_columns, manifest_hash, manifest_path

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

# Beside the training marts, a repeatable sample of the serving marts as they were when the
# snapshot was taken: the monitor's reference window for feature and prediction drift (not part
# of the snapshot id, which names the training data).
REFERENCE_SAMPLE_ROWS = 50_000
WINDOWS = "int_tenant_windows"  # each tenant's label, churn and feature windows, recorded with its snapshot
KEEP_SNAPSHOTS = 3  # per tenant, newest first; older ones are removed


@dataclass(frozen=True)
class Snapshot:
    """One tenant's frozen training data."""

    tenant_id: str
    region: str
    snapshot_id: str
    path: Path
    manifest_hash: str
    created_at: str
    rows: dict[str, int]
    catalogue_items: dict[str, int]  # cutoff date -> items available then (recommender coverage)
    features: dict[str, list[dict]]  # mart -> declared feature columns
    history_days: int  # days from the tenant's first to its last activity
    serving_cutoff: str | None = None  # the day after the last event in the snapshot (ISO date)
    # the tenant's windows as its build chose them (dbt model int_tenant_windows): label_window_days,
    # churn_window_days, feature_window_days, each one's source (setting | cadence),
    # short_window_days, cadence_days; empty for a snapshot taken before windows were recorded
    windows: dict[str, Any] = field(default_factory=dict)

    def table(self, mart: str) -> Path:
        return self.path / f"{mart}.parquet"

    def reference(self, mart: str) -> Path:
        """The sampled rows of a serving mart at snapshot time (the drift reference)."""
        return self.path / f"reference_{mart}.parquet"

    def read(self, path: Path, settings: Settings | None = None) -> pd.DataFrame:
        """One of this snapshot's files (:meth:`table`, :meth:`reference`) as a frame, decrypted when
        the tenant is a silo (:mod:`ml.core.tenant_parquet`)."""
        return tenant_parquet.read_table(path, settings or get_settings(), self.tenant_id).to_pandas()

    def to_json(self) -> dict:
        return {
            "tenant_id": self.tenant_id,
            "region": self.region,
            "snapshot_id": self.snapshot_id,
            "path": str(self.path),
            "manifest_hash": self.manifest_hash,
            "created_at": self.created_at,
            "rows": self.rows,
            "catalogue_items": self.catalogue_items,
            "features": self.features,
            "history_days": self.history_days,
            "serving_cutoff": self.serving_cutoff,
            "windows": self.windows,
        }

    @classmethod
    def from_json(cls, d: dict) -> Snapshot:
        return cls(**{**d, "path": Path(d["path"])})


def tenant_root(settings: Settings, region: str, tenant_id: str) -> Path:
    return settings.stores.snapshots.tenant_dir(region, tenant_id)


def lineage_dataset(settings: Settings, region: str, tenant_id: str, snap: Snapshot) -> lineage.LineageDataset:
    """A tenant's snapshots as one lineage dataset, this snapshot's id its version."""
    return lineage.file_dataset(
        tenant_root(settings, region, tenant_id), "snapshot", region, [tenant_id], snap.snapshot_id
    )


def latest(settings: Settings, region: str, tenant_id: str) -> Snapshot | None:
    """The tenant's most recent snapshot, or None before its first training."""
    try:
        d = json.loads(settings.stores.snapshots.pointer(region, tenant_id).read_text())
    except FileNotFoundError:
        return None
    # the folder is derived from this home, not stored: a moved or restored home still works
    return Snapshot.from_json({**d, "path": str(tenant_root(settings, region, tenant_id) / d["snapshot_id"])})


def load(settings: Settings, region: str, tenant_id: str, snapshot_id: str) -> Snapshot:
    path = settings.stores.snapshots.meta(region, tenant_id, snapshot_id)
    if not path.exists():
        raise FileNotFoundError(
            f"tenant {tenant_id}: training snapshot {snapshot_id} is gone ({path}); retrain from a new snapshot."
        )
    return Snapshot.from_json({**json.loads(path.read_text()), "path": str(path.parent)})


def export_warehouse(
    wh: Warehouse,
    marts: dict[str, str],
    reference_marts: list[str],
    settings: Settings | None = None,
    tenants: list[str] | None = None,
) -> dict[str, Snapshot]:
    """Snapshot the training marts of this warehouse's tenants (all, or the named ones).

    ``marts``: training mart -> ORDER BY of a tenant's rows; ``reference_marts``: serving marts
    sampled as the drift reference (the model kinds' marts, :mod:`ml.models.kinds`).

    Raises:
        FileNotFoundError: the warehouse has no dbt manifest yet (the features DAG has not run).
        RuntimeError: a training mart is missing from the warehouse.
    """
    settings = settings or get_settings()
    region = wh.region
    wanted = [t for t in wh.tenants if tenants is None or t in tenants]
    mpath = manifest_path(settings, wh)
    if not mpath.exists():
        raise FileNotFoundError(
            f"warehouse {wh.key}: no dbt manifest at {mpath}; run the features DAG (or `tenantflow features build`) first."
        )
    manifest = json.loads(mpath.read_text())
    m_hash = manifest_hash(manifest)
    declared = {mart: feature_columns(manifest, mart) for mart in marts}
    store = TenantStore(settings)
    out: dict[str, Snapshot] = {}
    path = wh.path(settings)
    if not path.exists():
        log.warning("warehouse %s has not been built yet; no snapshots", wh.key)
        return out
    with warehouse_lock(path):
        con = connect(path, read_only=True)
        try:
            present = {r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()}
            missing = [m for m in [*marts, WINDOWS] if m not in present]
            if missing:
                raise RuntimeError(
                    f"warehouse {wh.key}: marts {missing} are missing; the features DAG "
                    "(or `tenantflow features build`) must build them first."
                )
            for tid in wanted:
                store.get(tid)  # a tenant removed since the build is not exported
                out[tid] = _export_tenant(con, settings, region, tid, m_hash, declared, marts, reference_marts)
        finally:
            con.close()
    if out:
        lineage.record(
            inputs=[lineage.table_dataset(path, m, region, list(out)) for m in [*marts, *reference_marts]],
            outputs=[lineage_dataset(settings, region, t, s) for t, s in out.items()],
        )
    return out


def _export_tenant(
    con,
    settings: Settings,
    region: str,
    tenant_id: str,
    m_hash: str,
    declared: dict,
    marts: dict[str, str],
    reference_marts: list[str],
) -> Snapshot:
    root = tenant_root(settings, region, tenant_id)
    tmp = atomic.staging_dir(root)
    rows: dict[str, int] = {}
    digest = hashlib.sha256(m_hash.encode())
    sealed = tenant_parquet.copy_options(con, settings, tenant_id)  # a silo tenant's files are encrypted
    for mart, order in marts.items():
        target = tmp / f"{mart}.parquet"
        (rows[mart],) = con.execute(
            f"copy (select * from {mart} where tenant_id = $tenant order by {order}) "
            f"to '{target}' (format parquet, compression zstd, row_group_size 1000000{sealed})",
            {"tenant": tenant_id},
        ).fetchone()
        digest.update(mart.encode())
        digest.update(tenant_parquet.content_digest(target, settings, tenant_id))
    for mart in reference_marts:
        con.execute(
            f"copy (select * from (select * from {mart} where tenant_id = $tenant order by all) "
            f"using sample reservoir({REFERENCE_SAMPLE_ROWS} rows) repeatable (42)) "
            f"to '{tmp / f'reference_{mart}.parquet'}' (format parquet, compression zstd{sealed})",
            {"tenant": tenant_id},
        )
    catalogue = {
        str(d): int(n)
        for d, n in con.execute(
            "select cutoff_date, count(*) from int_item_features__as_of where tenant_id = ? group by 1 order by 1",
            [tenant_id],
        ).fetchall()
    }
    first, last = con.execute(
        "select min(activity_date), max(activity_date) from int_user_activity__daily where tenant_id = ?", [tenant_id]
    ).fetchone()
    history_days = (last - first).days + 1 if first is not None else 0
    serving = con.execute(
        "select max(cutoff_date) from int_feature_cutoffs where tenant_id = ?", [tenant_id]
    ).fetchone()[0]
    found = con.execute(f"select * exclude (tenant_id) from {WINDOWS} where tenant_id = ?", [tenant_id])
    row = found.fetchone()
    windows = dict(zip([d[0] for d in found.description], row, strict=True)) if row else {}
    snapshot_id = digest.hexdigest()[:16]
    final = settings.stores.snapshots.snapshot_dir(region, tenant_id, snapshot_id)
    snap = Snapshot(
        tenant_id=tenant_id,
        region=region,
        snapshot_id=snapshot_id,
        path=final,
        manifest_hash=m_hash,
        created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        rows=rows,
        catalogue_items=catalogue,
        features=declared,
        history_days=history_days,
        serving_cutoff=str(serving) if serving is not None else None,
        windows=windows,
    )
    atomic.write_json(tmp / settings.stores.snapshots.meta_name, snap.to_json())
    if not atomic.commit_dir(tmp, final):  # the same bytes were snapshotted before: keep the original
        os.utime(final)
        snap = load(settings, region, tenant_id, snapshot_id)
    atomic.write_json(settings.stores.snapshots.pointer(region, tenant_id), snap.to_json())
    _prune(root, keep={snapshot_id})
    log.info("tenant %s: snapshot %s (%s)", tenant_id, snapshot_id, rows)
    return snap


def pin(settings: Settings, region: str, tenant_id: str, snapshot_id: str, kind: str) -> None:
    """Mark the snapshot a kind's champion was trained on: the monitor's reference, never pruned."""
    root = tenant_root(settings, region, tenant_id)
    for marker in root.glob(f"*/champion.{kind}"):
        marker.unlink(missing_ok=True)
    folder = settings.stores.snapshots.snapshot_dir(region, tenant_id, snapshot_id)
    if folder.is_dir():
        (folder / f"champion.{kind}").touch()


def _prune(root: Path, keep: set[str]) -> None:
    """Drop all but the newest snapshots (and stray temp dirs of dead exports); champions' stay."""
    snaps = sorted(
        (p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.stat().st_mtime
    )
    for p in snaps[:-KEEP_SNAPSHOTS]:
        if p.name not in keep and not any(p.glob("champion.*")):
            shutil.rmtree(p, ignore_errors=True)
    atomic.remove_stale_staging(root)
