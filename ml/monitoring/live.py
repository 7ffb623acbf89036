"""How each tenant's served predictions did once their outcome was known: the kinds' live metrics.

Each kind measures its own (:attr:`ml.models.kinds.base.ModelKind.live`), on batch predictions
and the API's prediction log alike: e.g. live HitRate@10 and CTR of recommendations.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from ml.core.prediction_log import ServedLog
from ml.core.tenants import Tenant
from ml.models.kinds.base import ModelKind


def live_metrics(
    con: Any, tenant: Tenant, serving_cutoff: date, kinds: list[ModelKind], served_log: ServedLog | None = None
) -> list[dict[str, Any]]:
    """Rows of ``monitoring_live_metrics`` for every kind, from an open warehouse connection."""
    return [row for kind in kinds for row in kind.live.metrics(con, tenant, serving_cutoff, served_log)]
