"""The landing contract: what every event a tenant sends must look like once read.

Batch drops, history imports and the webhook all land rows of these columns (the generator
writes the first ten: a content platform's events). A tenant's own export reaches them through
its source spec (:mod:`ml.data.ingest.spec`). Ingestion validates them (the rules: :mod:`ml.data.landing_checks`; applied by
:mod:`ml.data.ingest.validation` through Great Expectations, :mod:`ml.data.quality`), the webhook's request body mirrors
them (:mod:`ml.serving.schemas`), and the lake stores them typed.
"""

from __future__ import annotations

import re
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
    "value",  # a rating's score; a purchase's or return's amount (quantity x price, the tenant's currency)
    "quantity",  # units bought, added or returned, as sent (a shop's return may send it negative)
    "price",  # unit price, the tenant's currency
)
# The webhook's landing files (ml.serving.webhook): these columns as JSON lines, named events-api-<HHMMSS>-<12 hex>
# .jsonl; read with the contract whatever the tenant's source spec (the platform writes them, not the tenant).
WEBHOOK_FILE = re.compile(r"events-api-\d{6}-[0-9a-f]{12}\.jsonl")


def webhook_file_name(hhmmss: str, token: str) -> str:
    """A webhook landing file's name (:data:`WEBHOOK_FILE`): its write time (UTC, ``HHMMSS``) and 12 hex digits."""
    name = f"events-api-{hhmmss}-{token}.jsonl"
    if not WEBHOOK_FILE.fullmatch(name):
        raise ValueError(f"not a webhook file name: {name!r}")
    return name


# What a file must send (by name or through the spec); the others may be absent: tenant_id is then
# the tenant whose landing folder holds the file, the rest null.
REQUIRED_COLUMNS = ("event_id", "user_id", "item_id", "event_type", "event_at")
NUMERIC_COLUMNS = ("dwell_seconds", "value", "quantity", "price")  # parsed as numbers; text that is not one is bad
# Order matters: the lake and the generator use it for dictionary codes (new types go at the end).
EVENT_TYPES = (
    "click",
    "view",
    "complete",
    "skip",
    "like",
    "cancel_subscription",
    "item_published",
    "purchase",
    "add_to_cart",
    "return",
    "rating",
    "charge",  # an order line that is not a product: postage, a fee, a discount (never an item)
)
USER_EVENT_TYPES = tuple(t for t in EVENT_TYPES if t != "item_published")  # events of a user: they need a user_id
# they need an item_id (a charge may carry its code there, but a fee line without one is a charge all the same)
ITEM_EVENT_TYPES = tuple(t for t in EVENT_TYPES if t not in ("cancel_subscription", "charge"))
# what a user does (drift monitoring's event mix): a charge is a line of an order, not an action of its own
ACTION_EVENT_TYPES = tuple(t for t in USER_EVENT_TYPES if t != "charge")
VALUE_EVENT_TYPES = ("rating",)  # they need a value
# Positive interactions of a user with an item, the signal recommenders learn from (and the
# feature store counts as "clicks"): a content platform's clicks, a shop's purchases and carts,
# a rating. The platform's default; a tenant may declare its own (Tenant.interaction_types).
INTERACTION_EVENT_TYPES = ("click", "purchase", "add_to_cart", "rating")
# what a tenant may declare an interaction: a user taking an item (skip and return say the user did
# not want it; the others are no user taking an item)
POSITIVE_EVENT_TYPES = ("click", "view", "complete", "like", "purchase", "add_to_cart", "rating")
MAX_LATENESS = timedelta(days=7)  # an event may arrive up to a week after it happened
CLOCK_SKEW = timedelta(hours=1)  # and up to an hour "in the future" of the drop's day
MAX_DWELL_SECONDS = 86_400
