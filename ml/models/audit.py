"""Champion moves in the audit log (:mod:`ml.core.audit`): every promotion, refusal and rollback,
who did it, when and why, as entries whose subject is the model kind."""

from __future__ import annotations

from dataclasses import dataclass

from ml.core import audit as log
from ml.core.audit import actor
from ml.core.settings import Settings, get_settings

# retire: a promotion ended an older challenger's A/B test (registry._retire_challenger)
MODEL_ACTIONS = ("promote", "rollback", "refuse", "retire", "move_failed", "outside_move")

__all__ = ["MODEL_ACTIONS", "AuditEntry", "actor", "entries", "record"]


@dataclass(frozen=True)
class AuditEntry:
    at: str
    actor: str
    kind: str
    tenant_id: str
    action: str  # one of MODEL_ACTIONS
    from_version: str | None
    to_version: str | None
    reason: str


def record(
    kind: str,
    tenant_id: str,
    action: str,
    from_version: str | None,
    to_version: str | None,
    reason: str,
    settings: Settings | None = None,
    who: str | None = None,
) -> AuditEntry:
    """Append one champion move (``who`` defaults to :func:`ml.core.audit.actor`).

    Raises:
        ValueError: ``action`` is not one of :data:`MODEL_ACTIONS`.
    """
    if action not in MODEL_ACTIONS:
        raise ValueError(f"unknown model audit action {action!r} (known: {', '.join(MODEL_ACTIONS)})")
    detail = {"from_version": from_version, "to_version": to_version, "reason": reason}
    e = log.record(action, tenant_id, kind, detail, settings or get_settings(), who)
    return AuditEntry(e.at, e.actor, kind, tenant_id, action, from_version, to_version, reason)


def entries(
    settings: Settings | None = None, tenant_id: str | None = None, kind: str | None = None
) -> list[AuditEntry]:
    """The champion moves, oldest first, of one tenant and/or kind (or everything)."""
    return [
        AuditEntry(
            e.at,
            e.actor,
            e.subject,
            e.tenant_id,
            e.action,
            e.detail.get("from_version"),
            e.detail.get("to_version"),
            e.detail.get("reason", ""),
        )
        for e in log.entries(settings or get_settings(), tenant_id, kind, MODEL_ACTIONS)
    ]
