"""Per-tenant API keys for the serving API: created once, stored only as hashes, revocable.

Where a presented key is checked on a request: :mod:`ml.serving.auth`.

A key reads ``tf_<key_id>_<secret>``: the key id finds the row, and the SHA-256 of the whole key
is compared with the stored hash in constant time (:func:`hmac.compare_digest`). Keys are 32
random bytes, so a fast hash is enough (no password stretching needed); the plain key is
printed once by ``tenantflow tenants keys create`` and never stored.

The tenant of a request comes only from its key: nothing in a body or header can name another.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ml.core import audit, control_db
from ml.core.errors import TenantError
from ml.core.ids import validate_slug
from ml.core.settings import Settings, get_settings
from ml.core.tenants import TenantStore

KEY_PATTERN = re.compile(r"^tf_([a-z0-9]{12})_([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    tenant_id: str
    key_hash: str
    label: str
    created_at: str
    revoked_at: str | None

    def public(self) -> dict[str, Any]:
        """What may be shown: never the hash."""
        return {
            "key_id": self.key_id,
            "tenant_id": self.tenant_id,
            "label": self.label,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
        }


def hash_key(key: str) -> str:
    """SHA-256 of the whole key, hex (keys are 32 random bytes: no stretching needed)."""
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(tenant_id: str, label: str = "", settings: Settings | None = None) -> tuple[ApiKey, str]:
    """A new key for the tenant: (its record, the plain key, to be shown once)."""
    settings = settings or get_settings()
    tenant_id = validate_slug(tenant_id)
    TenantStore(settings).get(tenant_id)  # an unknown tenant is an error
    key_id = secrets.token_hex(6)
    plain = f"tf_{key_id}_{secrets.token_urlsafe(32)}"
    record = ApiKey(key_id, tenant_id, hash_key(plain), label, datetime.now(UTC).isoformat(timespec="seconds"), None)
    with control_db.connect(settings) as con:
        con.execute(
            "insert into api_keys (key_id, tenant_id, key_hash, label, created_at) values (?, ?, ?, ?, ?)",
            [record.key_id, record.tenant_id, record.key_hash, record.label, record.created_at],
        )
        audit.append(con, "key_create", tenant_id, record.key_id, {"label": label})
    return record, plain


def revoke_key(tenant_id: str, key_id: str, settings: Settings | None = None) -> ApiKey:
    """End a key. The tenant must own it: a key id alone never revokes another tenant's key."""
    settings = settings or get_settings()
    tenant_id = validate_slug(tenant_id)
    with control_db.connect(settings) as con:
        cur = con.execute(
            "update api_keys set revoked_at = ? where key_id = ? and tenant_id = ? and revoked_at is null",
            [datetime.now(UTC).isoformat(timespec="seconds"), key_id, tenant_id],
        )
        if cur.rowcount == 0:
            raise TenantError(
                f"tenant {tenant_id} has no active key {key_id!r}; `tenantflow tenants keys list {tenant_id}` shows its keys"
            )
        audit.append(con, "key_revoke", tenant_id, key_id)
    return next(k for k in list_keys(tenant_id, settings) if k.key_id == key_id)


def list_keys(tenant_id: str | None = None, settings: Settings | None = None) -> list[ApiKey]:
    settings = settings or get_settings()
    sql, args = "select key_id, tenant_id, key_hash, label, created_at, revoked_at from api_keys", []
    if tenant_id:
        sql += " where tenant_id = ?"
        args.append(validate_slug(tenant_id))
    with control_db.connect(settings) as con:
        return [ApiKey(*row) for row in con.execute(sql + " order by created_at, key_id", args).fetchall()]


def active_hashes(settings: Settings | None = None) -> dict[str, tuple[str, str]]:
    """key_id -> (tenant_id, key hash) of every active key: what the service keeps in memory."""
    return {k.key_id: (k.tenant_id, k.key_hash) for k in list_keys(None, settings) if k.revoked_at is None}
