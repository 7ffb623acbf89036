"""The webhook's request and answer bodies (the model kinds' bodies are in :mod:`ml.models.kinds`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from ml.core.contract import (
    CLOCK_SKEW,
    EVENT_TYPES,
    ITEM_EVENT_TYPES,
    MAX_DWELL_SECONDS,
    MAX_LATENESS,
    VALUE_EVENT_TYPES,
)

EventType = Literal[EVENT_TYPES]  # type: ignore[valid-type]


class EventIn(BaseModel):
    """One product event, as in the landing contract; ``tenant_id`` is optional and must be the key's."""

    model_config = ConfigDict(extra="forbid")

    event_id: str = Field(min_length=1, max_length=128)
    tenant_id: str | None = Field(None, description="Optional; if given, must be the tenant of the API key")
    user_id: str = Field(min_length=1, max_length=128)
    item_id: str | None = Field(None, min_length=1, max_length=128)
    event_type: EventType
    event_at: AwareDatetime = Field(description="When it happened, with a timezone (ISO 8601)")
    session_id: str | None = Field(None, max_length=128)
    dwell_seconds: float | None = Field(None, ge=0, le=MAX_DWELL_SECONDS)
    topic: str | None = Field(None, max_length=64)
    device: str | None = Field(None, max_length=32)
    value: float | None = Field(None, allow_inf_nan=False, description="A rating's score; a purchase's amount")
    quantity: float | None = Field(None, allow_inf_nan=False, description="Units bought, added or returned")
    price: float | None = Field(None, allow_inf_nan=False, description="Unit price, the tenant's currency")

    @field_validator("event_at")
    @classmethod
    def _plausible_time(cls, v: datetime) -> datetime:
        now = datetime.now(UTC)
        if v > now + CLOCK_SKEW:
            raise ValueError(f"is in the future (more than {CLOCK_SKEW} ahead of the server clock)")
        if v < now - MAX_LATENESS:
            raise ValueError(f"is older than {MAX_LATENESS.days} days; send old history as a batch file")
        return v

    @model_validator(mode="after")
    def _item_events_name_an_item(self) -> EventIn:
        if self.event_type in ITEM_EVENT_TYPES and not self.item_id:
            raise ValueError(f"item_id is required for event_type {self.event_type!r}")
        if self.event_type in VALUE_EVENT_TYPES and self.value is None:
            raise ValueError(f"value is required for event_type {self.event_type!r}")
        return self


class EventBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: list[EventIn] = Field(min_length=1, description="At most TENANTFLOW_SERVE_MAX_EVENTS (1000) per request")


class EventResult(BaseModel):
    event_id: str
    status: Literal["accepted"]
    receipt_id: str
    received_at: str
    replayed: bool = Field(description="True when this event id was accepted before: the original answer is returned")


class EventsAnswer(BaseModel):
    tenant_id: str
    accepted: int
    replayed: int
    events: list[EventResult]
