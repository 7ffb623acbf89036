"""The tenant registry: onboarding a tenant is a row here, never a code change.

The registry is a small SQLite table (many readers, rare writers, safe across processes,
which a DuckDB file is not). Every tenant id and region that enters Tenantflow passes
through :func:`validate_slug` before it reaches a path, a SQL statement or a model name.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path

from ml.settings import Settings, get_settings

SLUG_RE = re.compile(r"^[a-z][a-z0-9]*(?:[_-][a-z0-9]+)*$")
SLUG_MAX_LEN = 40
ISOLATION_TIERS = ("pool", "silo")
MODEL_KINDS = ("recommender", "churn")
RESERVED_IDS = ("global",)  # `<kind>.global` names the shared model in the MLflow registry


class TenantError(ValueError):
    """A tenant request that cannot be honoured; the message says why and what to do."""


def validate_slug(value: object, what: str = "tenant id") -> str:
    """Return ``value`` if it is a lower-case slug, else raise a :class:`TenantError`.

    Slugs name directories, DuckDB files, dbt variables and MLflow models, so anything else
    (upper case, dots, slashes, quotes, spaces) is refused rather than escaped.
    """
    if not isinstance(value, str) or not value:
        raise TenantError(f"{what} must be a non-empty string, got {value!r}.")
    if len(value) > SLUG_MAX_LEN or not SLUG_RE.fullmatch(value):
        raise TenantError(
            f"invalid {what} {value!r}: use a lower-case slug of letters, digits, '-' or '_', "
            f"starting with a letter, at most {SLUG_MAX_LEN} characters (e.g. 'acme' or 'news-co')."
        )
    return value


@dataclass(frozen=True)
class Tenant:
    """One customer company of the SaaS."""

    tenant_id: str
    region: str
    isolation: str = "pool"
    share_data: bool = True
    display_name: str = ""
    onboarded_at: date = field(default_factory=date.today)
    model_kinds: tuple[str, ...] = MODEL_KINDS
    quota_events_per_day: int = 5_000_000
    quota_requests_per_minute: int = 6_000

    def __post_init__(self) -> None:
        validate_slug(self.tenant_id)
        validate_slug(self.region, "region")
        if self.tenant_id in RESERVED_IDS:
            raise TenantError(f"tenant id {self.tenant_id!r} is reserved (it names the global model); choose another.")
        if self.isolation not in ISOLATION_TIERS:
            raise TenantError(
                f"tenant {self.tenant_id}: isolation must be one of {ISOLATION_TIERS}, got {self.isolation!r}."
            )
        unknown = set(self.model_kinds) - set(MODEL_KINDS)
        if unknown:
            raise TenantError(
                f"tenant {self.tenant_id}: unknown model kinds {sorted(unknown)}; known: {MODEL_KINDS}."
            )
        if self.isolation == "silo" and self.share_data:
            raise TenantError(
                f"tenant {self.tenant_id}: a silo tenant cannot share data with the global model; "
                "use --share-data no, or --isolation pool."
            )

    @property
    def warehouse_key(self) -> str:
        """Which warehouse file holds this tenant's features: its region's pool, or its own."""
        return f"{self.region}/pool" if self.isolation == "pool" else f"{self.region}/silo_{self.tenant_id}"

    def to_json(self) -> dict[str, object]:
        d = asdict(self)
        d["onboarded_at"] = self.onboarded_at.isoformat()
        d["model_kinds"] = list(self.model_kinds)
        return d


def warehouse_path(settings: Settings, warehouse_key: str) -> Path:
    """Path of the DuckDB file for a warehouse key (``region/pool`` or ``region/silo_<id>``)."""
    region, name = warehouse_key.split("/", 1)
    validate_slug(region, "region")
    return settings.warehouse / f"region={region}" / f"{name}.duckdb"


_SCHEMA = """
create table if not exists tenants (
    tenant_id text primary key,
    display_name text not null,
    region text not null,
    isolation text not null check (isolation in ('pool', 'silo')),
    share_data integer not null,
    onboarded_at text not null,
    model_kinds text not null,
    quota_events_per_day integer not null,
    quota_requests_per_minute integer not null
);
"""


class TenantRegistry:
    """CRUD over the tenants table of one Tenantflow home."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self.path = self.settings.registry_db

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.path, timeout=30)
        try:
            con.execute(_SCHEMA)
            yield con
            con.commit()
        finally:
            con.close()

    def add(self, tenant: Tenant, *, replace: bool = False) -> Tenant:
        row = (
            tenant.tenant_id,
            tenant.display_name or tenant.tenant_id,
            tenant.region,
            tenant.isolation,
            int(tenant.share_data),
            tenant.onboarded_at.isoformat(),
            ",".join(tenant.model_kinds),
            tenant.quota_events_per_day,
            tenant.quota_requests_per_minute,
        )
        verb = "insert or replace" if replace else "insert"
        with self._connect() as con:
            try:
                con.execute(f"{verb} into tenants values (?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
            except sqlite3.IntegrityError:
                raise TenantError(
                    f"tenant {tenant.tenant_id} already exists; remove it first or use --replace."
                ) from None
        return tenant

    def get(self, tenant_id: str) -> Tenant:
        validate_slug(tenant_id)
        with self._connect() as con:
            row = con.execute("select * from tenants where tenant_id = ?", (tenant_id,)).fetchone()
        if row is None:
            raise TenantError(
                f"unknown tenant {tenant_id!r}; `tenantflow tenants list` shows the registered ones."
            )
        return _row_to_tenant(row)

    def list(self) -> list[Tenant]:
        with self._connect() as con:
            rows = con.execute("select * from tenants order by tenant_id").fetchall()
        return [_row_to_tenant(r) for r in rows]

    def remove(self, tenant_id: str) -> None:
        validate_slug(tenant_id)
        with self._connect() as con:
            cur = con.execute("delete from tenants where tenant_id = ?", (tenant_id,))
        if cur.rowcount == 0:
            raise TenantError(f"unknown tenant {tenant_id!r}; nothing removed.")

    def seed_from_file(self, path: Path) -> list[Tenant]:
        """Load tenants from a JSON or YAML list (the demo's seed), replacing existing rows."""
        text = path.read_text()
        if path.suffix in (".yaml", ".yml"):
            import yaml

            items = yaml.safe_load(text)
        else:
            items = json.loads(text)
        tenants = [tenant_from_dict(d) for d in items]
        for t in tenants:
            self.add(t, replace=True)
        return tenants


def tenant_from_dict(d: dict[str, object]) -> Tenant:
    """Build a tenant from a plain mapping (seed files, JSON), validating every field."""
    kinds = d.get("model_kinds", MODEL_KINDS)
    if isinstance(kinds, str):
        kinds = tuple(k for k in kinds.split(",") if k)
    onboarded = d.get("onboarded_at")
    return Tenant(
        tenant_id=str(d["tenant_id"]),
        region=str(d["region"]),
        isolation=str(d.get("isolation", "pool")),
        share_data=parse_bool(d.get("share_data", True)),
        display_name=str(d.get("display_name", "")),
        onboarded_at=date.fromisoformat(str(onboarded)) if onboarded else date.today(),
        model_kinds=tuple(kinds),  # type: ignore[arg-type]
        quota_events_per_day=int(d.get("quota_events_per_day", 5_000_000)),  # type: ignore[call-overload]
        quota_requests_per_minute=int(d.get("quota_requests_per_minute", 6_000)),  # type: ignore[call-overload]
    )


def parse_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    s = str(value).strip().lower()
    if s in ("yes", "y", "true", "1"):
        return True
    if s in ("no", "n", "false", "0"):
        return False
    raise TenantError(f"expected yes or no, got {value!r}.")


def _row_to_tenant(row: tuple) -> Tenant:
    return Tenant(
        tenant_id=row[0],
        display_name=row[1],
        region=row[2],
        isolation=row[3],
        share_data=bool(row[4]),
        onboarded_at=date.fromisoformat(row[5]),
        model_kinds=tuple(k for k in row[6].split(",") if k),
        quota_events_per_day=row[7],
        quota_requests_per_minute=row[8],
    )


def warehouse_groups(tenants: list[Tenant]) -> dict[str, list[Tenant]]:
    """Tenants grouped by the warehouse file that holds their features."""
    groups: dict[str, list[Tenant]] = {}
    for t in tenants:
        groups.setdefault(t.warehouse_key, []).append(t)
    return groups
