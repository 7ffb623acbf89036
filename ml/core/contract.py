"""The landing contract: what every event a tenant sends must look like once read.

Batch drops and the webhook both land rows of these ten columns (the generator writes exactly
these). Ingestion validates them (the rules: :mod:`ml.data.landing_checks`; applied by
:mod:`ml.data.ingest.validation` through Great Expectations, :mod:`ml.data.quality`), the webhook's request body mirrors
them (:mod:`ml.serving.schemas`), and the lake stores them typed.
"""

from __future__ import annotations

from datetime import timedelta

LANDING_COLUMNS = (
    "event_id",
    "tenant_id",
    "user_id",
    "item_id",
    "event_type",
    "event_at",
    "session_id",
    "dwell_seconds",
    "topic",
    "device",
)
# Order matters: the lake and the generator use it for dictionary codes.
EVENT_TYPES = ("click", "view", "complete", "skip", "like", "cancel_subscription", "item_published")
USER_EVENT_TYPES = EVENT_TYPES[:6]  # events a user does: they need a user_id
ITEM_EVENT_TYPES = ("click", "view", "complete", "skip", "like", "item_published")  # they need an item_id
MAX_LATENESS = timedelta(days=7)  # an event may arrive up to a week after it happened
CLOCK_SKEW = timedelta(hours=1)  # and up to an hour "in the future" of the drop's day
MAX_DWELL_SECONDS = 86_400
