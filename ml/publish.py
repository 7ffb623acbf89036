"""Online feature snapshots: what the serving API reads instead of the warehouse.

After each feature build, every healthy tenant's serving marts are copied out of its warehouse
(read-only, under the warehouse lock) into an immutable folder

    published/region=R/tenant=T/<id>/{ranking_candidates,cold_start_items,user_features}.parquet

and the tenant's ``CURRENT`` file is replaced atomically to point at it. The API never opens a
warehouse (DuckDB allows one writer per file, and the pipeline is that writer): it watches
``CURRENT`` and swaps its in-memory copy when it moves. A tenant whose features failed their
checks keeps serving its last good snapshot. ``<id>`` is a hash of the files' bytes, so
publishing unchanged features changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from pathlib import Path

from ml.settings import Settings
from ml.tenants import validate_slug

ONLINE_MARTS = {
    "ranking_candidates": "user_id, item_id",  # candidates and their features, per user
    "cold_start_items": "list_kind, list_rank",  # popular and trending: unknown users, new tenants
    "user_features": "user_id",  # churn model inputs
}
KEEP = 3  # snapshots per tenant; older ones are removed (a reader holds its data in memory)


def tenant_dir(settings: Settings, region: str, tenant_id: str) -> Path:
    return settings.home / "published" / f"region={validate_slug(region, 'region')}" / f"tenant={validate_slug(tenant_id)}"


def current(settings: Settings, region: str, tenant_id: str) -> dict | None:
    """The tenant's published snapshot (``path``, ``snapshot_id``, ``serving_cutoff``, ...), or None."""
    pointer = tenant_dir(settings, region, tenant_id) / "CURRENT"
    try:
        meta = json.loads(pointer.read_text())
    except FileNotFoundError:
        return None
    meta["path"] = str(pointer.parent / meta["snapshot_id"])
    return meta


def publish_tenant(con, settings: Settings, region: str, tenant_id: str) -> dict:
    """Copy one tenant's serving marts out of an open (read-only) warehouse connection."""
    root = tenant_dir(settings, region, tenant_id)
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-{uuid.uuid4().hex}"
    tmp.mkdir()
    digest = hashlib.sha256()
    rows = {}
    for mart, order in ONLINE_MARTS.items():
        target = tmp / f"{mart}.parquet"
        (rows[mart],) = con.execute(
            f"copy (select * from {mart} where tenant_id = $tenant order by {order}) "
            f"to '{target}' (format parquet, compression zstd)",
            {"tenant": tenant_id},
        ).fetchone()
        digest.update(mart.encode() + target.read_bytes())
    (cutoff,) = con.execute("select max(cutoff_date) from int_feature_cutoffs where tenant_id = ?", [tenant_id]).fetchone()
    snapshot_id = digest.hexdigest()[:16]
    meta = {"tenant_id": tenant_id, "region": region, "snapshot_id": snapshot_id, "rows": rows,
            "serving_cutoff": str(cutoff) if cutoff else None,
            "published_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}  # fmt: skip
    final = root / snapshot_id
    if final.exists():  # the same features were published before
        shutil.rmtree(tmp)
    else:
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        os.replace(tmp, final)
    old = current(settings, region, tenant_id)
    if old is None or old["snapshot_id"] != snapshot_id:
        pointer = root / "CURRENT"
        staged = root / f".CURRENT.{uuid.uuid4().hex}"
        staged.write_text(json.dumps(meta))
        os.replace(staged, pointer)  # readers see the old snapshot or the new one, never half
    _prune(root, keep=snapshot_id)
    return meta


def _prune(root: Path, keep: str) -> None:
    snaps = sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.stat().st_mtime)
    for p in snaps[:-KEEP]:
        if p.name != keep:
            shutil.rmtree(p, ignore_errors=True)
    for p in root.glob(".tmp-*"):
        if time.time() - p.stat().st_mtime > 3600:
            shutil.rmtree(p, ignore_errors=True)
