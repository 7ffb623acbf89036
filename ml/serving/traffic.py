"""Traffic splits: the share of a tenant's users the API serves with the challenger (an A/B test).

Which user lands in which arm is a stable hash of (tenant, user), so a user always sees the same
model while a split lasts. Splits are rows of the control database (``tenantflow tenants ab``).
Not to be confused with the time holdout, which is how models are evaluated offline.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from ml.core import audit, control_db
from ml.core.errors import TenantError
from ml.core.ids import validate_slug
from ml.core.settings import Settings
from ml.core.tenants import TenantStore
from ml.models.kinds import get_kind


def set_traffic_split(tenant_id: str, kind: str, percent: float, settings: Settings) -> None:
    """Send ``percent`` of a tenant's users (by a stable hash) to its challenger; 0 ends the test.

    Raises:
        TenantError: an unknown tenant or kind, or a share outside 0-100.
    """
    TenantStore(settings).get(validate_slug(tenant_id))
    get_kind(kind)
    if not 0 <= percent <= 100:
        raise TenantError(f"tenant {tenant_id}: the challenger share must be between 0 and 100 percent, not {percent}")
    with control_db.connect(settings) as con:
        con.execute(
            "insert or replace into traffic_splits values (?, ?, ?, ?)",
            [tenant_id, kind, float(percent), datetime.now(UTC).isoformat(timespec="seconds")],
        )
        audit.append(con, "traffic_split", tenant_id, kind, {"challenger_percent": float(percent)})


def traffic_splits(settings: Settings) -> dict[tuple[str, str], float]:
    """(tenant, kind) -> percent of users served by the challenger."""
    if not settings.stores.control_db.exists():
        return {}
    with control_db.connect(settings) as con:
        return {(t, k): p for t, k, p in con.execute("select tenant_id, kind, challenger_percent from traffic_splits")}


def in_challenger_arm(tenant_id: str, user_id: str, percent: float) -> bool:
    """Stable per user: the same user always lands in the same arm for a given split."""
    if percent <= 0:
        return False
    h = int.from_bytes(hashlib.blake2b(f"{tenant_id}\x00{user_id}".encode(), digest_size=8).digest(), "big")
    return (h % 10_000) < percent * 100
