"""Auto-rollback: a freshly promoted champion whose live metrics fall below the one it replaced goes back.

A promotion is watched for ``watch_days`` after its first batch can be judged (the kind's horizon:
a churn score waits the tenant's churn window, 14 days or more, for its cancellations); the new champion is judged on its batches, the
previous one on its batches before the promotion (the kind's watch: for recommendations, next-day
live HitRate@10 pooled over batches, each side needing ``min_users`` active users; for churn, live
ROC-AUC weighted by users scored, each side needing ``min_positives`` churned users). The rollback
is audited with actor ``monitor``.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd

from ml.core.settings import Settings, get_settings
from ml.models import audit, registry
from ml.models.kinds import all_kinds
from ml.models.kinds.base import RollbackWatch
from ml.monitoring import policy as policies

log = logging.getLogger(__name__)


def watch_promotions(
    live: pd.DataFrame, settings: Settings | None = None, today: date | None = None
) -> list[dict[str, Any]]:
    """Roll back recent promotions whose live metric fell below the champion they replaced.

    ``live`` holds ``monitoring_live_metrics`` rows. Only kinds with a rollback watch
    (:class:`ml.models.kinds.base.RollbackWatch`) are watched. Returns the rollbacks made.
    """
    settings = settings or get_settings()
    actions = []
    for kind in all_kinds():
        watch = kind.live.rollback
        if watch is None or live.empty:
            continue
        rows = live[live["kind"] == kind.name]
        for tid in sorted(rows["tenant_id"].unique()):
            mine = rows[rows["tenant_id"] == tid]
            if watch.horizon_days is not None:
                judged = mine[mine["horizon_days"] == watch.horizon_days]
            else:  # each version over the window its newest batch was scored for (a window that moved
                # between the two versions leaves each judged over its own)
                own = mine.sort_values("as_of").groupby("model_version")["horizon_days"].transform("last")
                judged = mine[mine["horizon_days"] == own]
            if judged.empty:
                continue
            action = _watch_tenant(kind.name, watch, int(judged["horizon_days"].max()), tid, judged, settings)
            if action:
                actions.append(action)
    return actions


def _watch_tenant(
    kind: str, watch: RollbackWatch, horizon: int, tid: str, rows: pd.DataFrame, settings: Settings
) -> dict[str, Any] | None:
    policy = policies.for_tenant(tid, settings)
    moves = [e for e in audit.entries(settings, tid, kind) if e.action in ("promote", "rollback")]
    if not moves or moves[-1].action != "promote" or not moves[-1].from_version:
        return None  # nothing promoted over an earlier champion, or already rolled back
    last = moves[-1]
    promoted_at = datetime.fromisoformat(last.at.replace("Z", "+00:00"))
    if datetime.now(UTC) - promoted_at > timedelta(days=horizon + policy.watch_days):
        return None
    new, new_users = watch.pooled(rows, str(last.to_version))
    old, old_users = watch.pooled(rows, str(last.from_version))
    if new is None or old is None or min(new_users, old_users) < getattr(policy, watch.min_count):
        return None
    if new >= old * (1 - policy.rollback_tolerance):
        return None
    reason = (
        f"auto-rollback: live {watch.metric} of v{last.to_version} is {new:.3f} over {new_users} active users, "
        f"below v{last.from_version}'s {old:.3f} over {old_users} (tolerance {policy.rollback_tolerance:.0%})"
    )
    entry = registry.rollback(kind, tid, reason, settings, who="monitor")
    log.warning("tenant %s: %s", tid, reason)
    return {
        "tenant_id": tid,
        "kind": kind,
        "from_version": entry.from_version,
        "to_version": entry.to_version,
        "reason": reason,
    }
