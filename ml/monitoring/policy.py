"""The monitoring policy: the drift thresholds, and how often a tenant may be retrained for drift.

Defaults are the platform's (``TENANTFLOW_MONITOR_<FIELD>``, :class:`ml.core.settings.MonitorSettings`);
a tenant's own overrides (``tenantflow monitor policy TENANT --set field=value``, kept in the
control database) win over them.

============================  =======  ==============================================================
field                         default  meaning
============================  =======  ==============================================================
``column_threshold``          0.1      a feature column drifted: normed Wasserstein (numbers) or
                                       Jensen-Shannon (categories) distance above this
``drift_share``               0.5      a kind's features drifted: at least this share of its columns
``prediction_threshold``      0.15     a champion's score distribution drifted (normed Wasserstein;
                                       stationary test tenants measured 0.02-0.11, a new category 0.17)
``data_threshold``            0.1      the tenant's behaviour drifted: any event column beyond this
``drift_alpha``               0.05     a column's distance must also exceed what two windows of its
                                       sizes reach by chance in this share of draws when nothing
                                       changed (a permutation null, :func:`ml.monitoring.drift.
                                       chance_thresholds`): small windows need a larger distance
``drift_permutations``        100      re-splits of the pooled windows that estimate that level
``decay_tolerance``           0.15     live performance decayed: more than this share worse than the
                                       champion's holdout (per kind: :mod:`ml.models.kinds`)
``min_rows`` / ``min_users``  300/50   below these a window is ``insufficient_data``, never "no drift"
``min_positives``             10       positives (e.g. churned users) a live batch needs to be judged
``warmup_days``               28       feature drift waits until the reference covers the longest
                                       feature window, or the tenant's long feature window where
                                       longer (``int_tenant_windows``; their growth is not drift)
``sample_rows``               20,000   rows per window given to Evidently
``reference_days``            14       days of events before the champion's data ended
``current_days``              7        the most recent days of events
``cooldown_hours``            24       no drift retrain within this long of the tenant's last training
``daily_budget``              10       tenants retrained for drift per day, platform-wide
``watch_days``                7        after a promotion, watch its live metrics this long once its
                                       first batch can be judged (the kind's horizon: 1 day for
                                       recommendations, 14 for churn)
``rollback_tolerance``        0.1      roll back when the kind's rollback metric (its
                                       ``live.rollback``, e.g. next-day HitRate@10) is this share
                                       below the previous champion's
============================  =======  ==============================================================
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from ml.core import control_db
from ml.core.errors import TenantError
from ml.core.ids import validate_slug
from ml.core.settings import MonitorSettings, Settings, get_settings
from ml.core.tenants import TenantStore

MonitorPolicy = MonitorSettings  # one tenant's effective policy: the platform's, with its overrides


def platform_policy(settings: Settings | None = None) -> MonitorPolicy:
    return (settings or get_settings()).monitor


def tenant_overrides(tenant_id: str, settings: Settings | None = None) -> dict[str, Any]:
    """The fields a tenant overrides, as stored."""
    with control_db.connect(settings or get_settings()) as con:
        row = con.execute(
            "select overrides from monitor_policies where tenant_id = ?", [validate_slug(tenant_id)]
        ).fetchone()
    return json.loads(row[0]) if row else {}


def for_tenant(tenant_id: str, settings: Settings | None = None) -> MonitorPolicy:
    """The tenant's effective policy."""
    settings = settings or get_settings()
    return settings.monitor.model_copy(update=tenant_overrides(tenant_id, settings))


def set_tenant_policy(tenant_id: str, changes: dict[str, str], settings: Settings | None = None) -> MonitorPolicy:
    """Override policy fields for one tenant (values as strings from the CLI); returns the effective policy.

    Raises:
        TenantError: an unknown tenant or field, or a value of the wrong type (the message names it).
    """
    settings = settings or get_settings()
    TenantStore(settings).get(tenant_id)
    known = set(MonitorPolicy.model_fields)
    unknown = sorted(set(changes) - known)
    if unknown:
        raise TenantError(f"tenant {tenant_id}: unknown monitor policy fields {unknown}; known: {sorted(known)}")
    current = tenant_overrides(tenant_id, settings)
    try:
        checked = MonitorPolicy.model_validate({**settings.monitor.model_dump(), **current, **changes})
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise TenantError(
            f"tenant {tenant_id}: policy field {field}: {first['msg']} (got {first.get('input')!r})"
        ) from None
    current.update({k: getattr(checked, k) for k in changes})
    with control_db.connect(settings) as con:
        con.execute(
            "insert or replace into monitor_policies (tenant_id, overrides) values (?, ?)",
            [tenant_id, json.dumps(current, sort_keys=True)],
        )
    return for_tenant(tenant_id, settings)
