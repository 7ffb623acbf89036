"""What one tenant's checks compare, read from its warehouse (under the lock) in one go.

The **reference window** is what the data looked like when the champion was trained: the
champion's training snapshot's serving rows, and the lake's events of the weeks before. The
**current window** is today's serving marts and the last week of events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import pandas as pd

from ml.core.contract import ACTION_EVENT_TYPES
from ml.core.prediction_log import ServedLog
from ml.core.tenants import Tenant
from ml.models.kinds.base import ModelKind
from ml.monitoring.live import live_metrics
from ml.monitoring.policy import MonitorPolicy

# What a tenant's behaviour looks like, over every event a user does (whatever the tenant sends: a
# click-only or purchase-only tenant is judged on its clicks or purchases): the mix of event types,
# the topic of the item, the device, and the dwell time (which only views carry).
EVENT_COLUMNS = {"numerical": ["dwell_seconds"], "categorical": ["event_type", "topic", "device"]}
# the warehouse relations the windows are read from (besides each kind's serving mart and live metrics')
CUTOFFS, EVENTS, ITEMS = "int_feature_cutoffs", "stg_lake__events", "int_items__catalogued"


@dataclass
class TenantWindows:
    """What one tenant's checks compare, read from its warehouse under the lock."""

    tenant_id: str
    region: str
    serving_cutoff: date | None
    reference_end: date | None
    events_reference: pd.DataFrame
    events_current: pd.DataFrame
    features_current: dict[str, pd.DataFrame] = field(default_factory=dict)  # serving mart -> sample
    live: list[dict[str, Any]] = field(default_factory=list)


def _serving_cutoff(con: Any, tenant_id: str) -> date | None:
    row = con.execute(f"select max(cutoff_date) from {CUTOFFS} where tenant_id = ?", [tenant_id]).fetchone()
    return row[0] if row else None


def _events(con: Any, tenant_id: str, start: date, end: date, n: int) -> pd.DataFrame:
    """Users' events in [start, end): their type, the item's topic, the dwell time and the device
    (a repeatable sample of ``n`` rows)."""
    return con.execute(
        f"""
        select * from (
            select e.event_date, cast(e.event_type as varchar) as event_type, e.dwell_seconds, i.topic, e.device
            from {EVENTS} e
            left join {ITEMS} i on i.tenant_id = e.tenant_id and i.item_id = e.item_id
            where e.tenant_id = $t and e.user_id is not null and list_contains($types, cast(e.event_type as varchar))
              and e.event_date >= $start and e.event_date < $end
            order by e.event_id
        ) using sample reservoir({int(n)} rows) repeatable (7)
        """,
        {"t": tenant_id, "start": start, "end": end, "types": list(ACTION_EVENT_TYPES)},
    ).df()


def read_windows(
    con: Any,
    tenant: Tenant,
    reference_end: date | None,
    policy: MonitorPolicy,
    kinds: list[ModelKind],
    served_log: ServedLog | None = None,
) -> TenantWindows:
    """The tenant's events (both windows), its serving marts now, and its live metrics."""
    tenant_id, region = tenant.tenant_id, tenant.region
    cutoff = _serving_cutoff(con, tenant_id)
    empty = pd.DataFrame(columns=["event_date", "event_type", "dwell_seconds", "topic", "device"])
    w = TenantWindows(tenant_id, region, cutoff, reference_end, empty, empty)
    if cutoff is None:
        return w
    w.events_current = _events(con, tenant_id, cutoff - timedelta(days=policy.current_days), cutoff, policy.sample_rows)
    if reference_end is not None:
        w.events_reference = _events(
            con, tenant_id, reference_end - timedelta(days=policy.reference_days), reference_end, policy.sample_rows
        )
    for mart, population in sorted({(k.serving_mart, k.drift_population or "true") for k in kinds}):
        w.features_current[mart] = con.execute(
            f"select * from (select * from {mart} where tenant_id = ? and ({population}) order by all) "
            f"using sample reservoir({int(policy.sample_rows)} rows) repeatable (7)",
            [tenant_id],
        ).df()
    w.live = live_metrics(con, tenant, cutoff, kinds, served_log)
    return w


def relations_read(con: Any, w: TenantWindows, kinds: list[ModelKind]) -> list[str]:
    """The warehouse relations (``schema.name``) :func:`read_windows` read for ``w``, for the
    monitor's lineage: the cutoffs; then the events, the items, each kind's serving mart and what
    its live metrics read (:attr:`ml.models.kinds.base.LiveMonitoring.reads`) of what exists."""
    if w.serving_cutoff is None:
        return [f"main.{CUTOFFS}"]
    named = {CUTOFFS, EVENTS, ITEMS, *(k.serving_mart for k in kinds), *(r for k in kinds for r in k.live.reads)}
    existing = con.execute(
        "select schema_name || '.' || table_name from duckdb_tables() where database_name = current_database() "
        "union all select schema_name || '.' || view_name from duckdb_views() where database_name = current_database()"
    ).fetchall()
    return sorted({r if "." in r else f"main.{r}" for r in named} & {r for (r,) in existing})
