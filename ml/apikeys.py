"""Per-tenant API keys for the serving API: created once, stored only as hashes, revocable.

A key reads ``tf_<key_id>_<secret>``: the key id finds the row, and the SHA-256 of the whole key
is compared with the stored hash in constant time (:func:`hmac.compare_digest`). Keys are 32
random bytes, so a fast hash is enough (no password stretching needed); the plain key is
printed once by ``tenantflow tenants keys create`` and never stored.

The tenant of a request comes only from its key: nothing in a body or header can name another.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from ml.settings import Settings, get_settings
from ml.tenants import TenantError, TenantRegistry, validate_slug

KEY_PATTERN = re.compile(r"^tf_([a-z0-9]{12})_([A-Za-z0-9_-]{43})$")

_SCHEMA = """
create table if not exists api_keys (
    key_id text primary key,
    tenant_id text not null,
    key_hash text not null,
    label text not null default '',
    created_at text not null,
    revoked_at text
);
create index if not exists api_keys_tenant on api_keys (tenant_id);
"""


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    tenant_id: str
    key_hash: str
    label: str
    created_at: str
    revoked_at: str | None

    def public(self) -> dict:
        """What may be shown: never the hash."""
        return {"key_id": self.key_id, "tenant_id": self.tenant_id, "label": self.label,
                "created_at": self.created_at, "revoked_at": self.revoked_at}  # fmt: skip


@contextmanager
def _db(settings: Settings) -> Iterator[sqlite3.Connection]:
    settings.registry_db.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(settings.registry_db, timeout=30)
    try:
        con.executescript(_SCHEMA)
        yield con
        con.commit()
    finally:
        con.close()


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(tenant_id: str, label: str = "", settings: Settings | None = None) -> tuple[ApiKey, str]:
    """A new key for the tenant: (its record, the plain key, to be shown once)."""
    settings = settings or get_settings()
    tenant_id = validate_slug(tenant_id)
    TenantRegistry(settings).get(tenant_id)  # an unknown tenant is an error
    key_id = secrets.token_hex(6)
    plain = f"tf_{key_id}_{secrets.token_urlsafe(32)}"
    record = ApiKey(key_id, tenant_id, hash_key(plain), label, datetime.now(UTC).isoformat(timespec="seconds"), None)
    with _db(settings) as con:
        con.execute("insert into api_keys (key_id, tenant_id, key_hash, label, created_at) values (?, ?, ?, ?, ?)",
                    [record.key_id, record.tenant_id, record.key_hash, record.label, record.created_at])  # fmt: skip
    return record, plain


def revoke_key(tenant_id: str, key_id: str, settings: Settings | None = None) -> ApiKey:
    """End a key. The tenant must own it: a key id alone never revokes another tenant's key."""
    settings = settings or get_settings()
    tenant_id = validate_slug(tenant_id)
    with _db(settings) as con:
        cur = con.execute("update api_keys set revoked_at = ? where key_id = ? and tenant_id = ? and revoked_at is null",
                          [datetime.now(UTC).isoformat(timespec="seconds"), key_id, tenant_id])  # fmt: skip
        if cur.rowcount == 0:
            raise TenantError(f"tenant {tenant_id} has no active key {key_id!r}; `tenantflow tenants keys list {tenant_id}` shows its keys")
    return next(k for k in list_keys(tenant_id, settings) if k.key_id == key_id)


def list_keys(tenant_id: str | None = None, settings: Settings | None = None) -> list[ApiKey]:
    settings = settings or get_settings()
    sql, args = "select key_id, tenant_id, key_hash, label, created_at, revoked_at from api_keys", []
    if tenant_id:
        sql += " where tenant_id = ?"
        args.append(validate_slug(tenant_id))
    with _db(settings) as con:
        return [ApiKey(*row) for row in con.execute(sql + " order by created_at, key_id", args).fetchall()]


def active_hashes(settings: Settings | None = None) -> dict[str, tuple[str, str]]:
    """key_id -> (tenant_id, key hash) of every active key: what the service keeps in memory."""
    return {k.key_id: (k.tenant_id, k.key_hash) for k in list_keys(None, settings) if k.revoked_at is None}


def verify(key: str, keys: dict[str, tuple[str, str]]) -> str | None:
    """The tenant a presented key belongs to, or None. Constant time in the secret."""
    m = KEY_PATTERN.match(key or "")
    if not m:
        return None
    entry = keys.get(m.group(1))
    presented = hash_key(key)
    if entry is None:
        hmac.compare_digest(presented, presented)  # same work whether or not the key id exists
        return None
    tenant_id, stored = entry
    return tenant_id if hmac.compare_digest(presented, stored) else None
