"""Fairness across tenants: each tenant's headline metric against the median of the fleet's champions.

A tenant far below the median (``TENANTFLOW_TRAIN_FAIRNESS_TOLERANCE``, 0.8) is flagged on its
run (``fairness.flag``), so a platform that serves most tenants well cannot hide one it serves
badly. The median is over every tenant's current champion of the kind (read from the registry),
not over the tenants one run happened to train: a run that retrains one tenant compares it with
the fleet, not with itself.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ml.core.settings import Settings, TrainSettings, get_settings
from ml.core.tenants import TenantStore
from ml.models import registry
from ml.models.kinds import get_kind


def fleet_champions(kind: str, metric: str, settings: Settings) -> dict[str, float]:
    """Every tenant's current champion's ``metric`` (its run's holdout value), for tenants that have one."""
    c = registry.client(settings)
    out = {}
    for tenant in TenantStore(settings).select():
        if not tenant.uses(kind):
            continue
        champ = registry.version_by_alias(registry.model_name(kind, tenant.tenant_id), registry.CHAMPION, settings)
        run_id = champ and (champ.tags.get("run_id") or champ.run_id)
        if run_id:
            value = c.get_run(run_id).data.metrics.get(metric)
            if value is not None:
                out[tenant.tenant_id] = value
    return out


def fairness(
    results: list[dict[str, Any]], settings: Settings | None = None, policy: TrainSettings | None = None
) -> list[dict[str, Any]]:
    """Each trained tenant's headline metric against the median of the fleet's champions
    (:func:`fleet_champions`), logged on its run and flagged when far below.

    The ratio is ``value / median`` for metrics where higher is better and ``median / value`` for
    errors, so below 1 always means worse than the median tenant.
    """
    settings = settings or get_settings()
    policy = policy or settings.train
    out = []
    c = registry.client(settings)
    by_kind: dict[str, list[dict]] = {}
    for r in results:
        if r.get("run_id") and not registry.is_global(r["tenant_id"]):
            by_kind.setdefault(r["kind"], []).append(r)
    for kind_name, rs in by_kind.items():
        kind = get_kind(kind_name)
        h = kind.headline
        values = fleet_champions(kind_name, h, settings) or {
            r["tenant_id"]: r["metrics"][h] for r in rs if h in r.get("metrics", {})
        }  # no champion anywhere yet: this run's tenants are the fleet
        if not values:
            continue
        median = float(np.median(list(values.values())))
        for r in rs:
            v = r["metrics"].get(h)
            if v is None:
                continue
            if h in kind.lower_is_better:
                ratio = median / v if v else float("nan")
            else:
                ratio = v / median if median else float("nan")
            flagged = bool(ratio < policy.fairness_tolerance)
            c.log_metric(r["run_id"], f"{h}_vs_median", ratio)
            c.set_tag(r["run_id"], "fairness.flag", "below_median" if flagged else "ok")
            out.append(
                {
                    "tenant_id": r["tenant_id"],
                    "kind": kind_name,
                    "metric": h,
                    "value": v,
                    "median": median,
                    "ratio": ratio,
                    "flagged": flagged,
                }
            )
    return out
