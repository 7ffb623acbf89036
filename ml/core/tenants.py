"""Tenants: the customer companies of the SaaS, one row each in the control database.

Onboarding a tenant is a row here, never a code change. Every tenant id and region that enters
Tenantflow passes :func:`ml.core.ids.validate_slug` before it reaches a path, a SQL statement or
a model name. Which model kinds exist is the models plane's business (:mod:`ml.models.kinds`):
here a tenant lists the kinds it uses, or none for "every registered kind".
"""

from __future__ import annotations

import builtins
import json
import sqlite3
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from types import EllipsisType

from ml.core import audit, control_db
from ml.core.contract import INTERACTION_EVENT_TYPES
from ml.core.errors import TenantError
from ml.core.ids import validate_slug
from ml.core.settings import Settings, get_settings
from ml.core.tenant_fields import finite, interaction_types, names, quota, refuse_moving

ISOLATION_TIERS = ("pool", "silo")
SEEN_ITEMS = ("exclude", "allow")  # recommendations: leave out what a user consumed, or allow repeats
# which holdout chooses the recommender's champion (ml.models.ranking): auto decides by how many of
# the users the last window judges; temporal: the next window's interactions (what comes next);
# random: a stratified random quarter of each user's items (what else a user takes, whenever)
HOLDOUT_PROTOCOLS = ("auto", "temporal", "random")
RESERVED_IDS = ("global",)  # `<kind>.global.<region>` names a region's shared model of each kind in the MLflow registry
DEFAULT_QUOTA_EVENTS_PER_DAY = 5_000_000
DEFAULT_QUOTA_REQUESTS_PER_MINUTE = 6_000
QUOTAS = ("quota_events_per_day", "quota_requests_per_minute")
# a window a tenant may set, and its bounds in days
WINDOW_BOUNDS = {"label_window_days": (1, 91), "churn_window_days": (7, 182), "feature_window_days": (14, 364)}


@dataclass(frozen=True)
class Tenant:
    """One customer company: where its data lives, whether it shares it, what it may use."""

    tenant_id: str
    region: str
    isolation: str = "pool"
    share_data: bool = True
    display_name: str = ""
    onboarded_at: date = field(default_factory=date.today)
    model_kinds: tuple[str, ...] = ()  # empty: every registered kind
    quota_events_per_day: int = DEFAULT_QUOTA_EVENTS_PER_DAY
    quota_requests_per_minute: int = DEFAULT_QUOTA_REQUESTS_PER_MINUTE
    seen_items: str = "exclude"  # SEEN_ITEMS: the recommender's policy for items a user consumed
    # days after a cutoff whose interactions judge the recommender's candidates, and within which a
    # user who cancels (or is not seen) has churned; days before it that the long feature columns
    # count (the short ones: a quarter of it); None: derived from the tenant's activity cadence at
    # each feature build (dbt model int_tenant_windows)
    label_window_days: int | None = None
    churn_window_days: int | None = None
    feature_window_days: int | None = None
    holdout_protocol: str = "auto"  # HOLDOUT_PROTOCOLS
    # whose global model serves and fine-tunes this tenant: None, its own region's; another region
    # only by this opt-in (that region's parameters reach its models; its data stays in its region)
    global_region: str | None = None
    # the lowest rating (a rating event's value) that is a positive interaction; a rating below it is
    # consumed (never recommended back under seen_items exclude) but not learnt from. None: every rating
    min_rating: float | None = None
    # the event types that are its positive interactions (ml.core.contract.POSITIVE_EVENT_TYPES), in
    # the contract's order; empty: the platform's (INTERACTION_EVENT_TYPES)
    interaction_types: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        validate_slug(self.tenant_id)
        validate_slug(self.region, "region")
        if self.global_region is not None:
            validate_slug(self.global_region, "global_region")
        for kind in self.model_kinds:
            validate_slug(kind, "model kind")
        if self.tenant_id in RESERVED_IDS:
            raise TenantError(f"tenant id {self.tenant_id!r} is reserved (it names the global model); choose another.")
        if self.isolation not in ISOLATION_TIERS:
            raise TenantError(
                f"tenant {self.tenant_id}: isolation must be one of {ISOLATION_TIERS}, got {self.isolation!r}."
            )
        if self.seen_items not in SEEN_ITEMS:
            raise TenantError(
                f"tenant {self.tenant_id}: seen_items must be one of {SEEN_ITEMS} (exclude: never recommend what a "
                f"user consumed; allow: repeats welcome), got {self.seen_items!r}."
            )
        if self.holdout_protocol not in HOLDOUT_PROTOCOLS:
            raise TenantError(
                f"tenant {self.tenant_id}: holdout_protocol must be one of {HOLDOUT_PROTOCOLS} (auto: decided by how "
                f"many users the last window judges; temporal: what users take next; random: a random quarter of "
                f"each user's items), got {self.holdout_protocol!r}."
            )
        for name in QUOTAS:
            quota(self.tenant_id, name, getattr(self, name))
        for name, (lo, hi) in WINDOW_BOUNDS.items():
            days = getattr(self, name)
            if days is not None and (type(days) is not int or not lo <= days <= hi):
                raise TenantError(
                    f"tenant {self.tenant_id}: {name} must be {lo}..{hi} days, a whole number (or unset: derived "
                    f"from its activity cadence), got {days!r}."
                )
        if self.min_rating is not None and not finite(self.min_rating):
            raise TenantError(
                f"tenant {self.tenant_id}: min_rating must be a finite number (the lowest rating that counts as a "
                f"positive interaction) or unset (every rating counts), got {self.min_rating!r}."
            )
        object.__setattr__(self, "interaction_types", interaction_types(self.tenant_id, self.interaction_types))
        if self.min_rating is not None and "rating" not in self.interactions:
            raise TenantError(
                f"tenant {self.tenant_id}: min_rating applies to rating events, and its interaction_types "
                f"({', '.join(self.interactions)}) leave ratings out; add rating to them or unset min_rating."
            )
        if self.isolation == "silo" and self.share_data:
            raise TenantError(
                f"tenant {self.tenant_id}: a silo tenant cannot share data with the global model; "
                "use --share-data no (a tenant not yet onboarded may be --isolation pool instead)."
            )

    @property
    def interactions(self) -> tuple[str, ...]:
        """The event types that are this tenant's positive interactions: its own, or the platform's."""
        return self.interaction_types or INTERACTION_EVENT_TYPES

    @property
    def global_model_region(self) -> str:
        """The region whose global model serves and fine-tunes this tenant (its own unless it opted in)."""
        return self.global_region or self.region

    @property
    def feeds_global_model(self) -> bool:
        """Whether this tenant's data may train its region's global models: a pool tenant that shares data."""
        return self.share_data and self.isolation == "pool"

    @property
    def suspended(self) -> tuple[str, ...]:
        """What a quota of 0 turns off: ``"webhook"`` (``quota_events_per_day``), ``"API"``
        (``quota_requests_per_minute``), both or neither."""
        return tuple(
            w for w, q in (("webhook", self.quota_events_per_day), ("API", self.quota_requests_per_minute)) if not q
        )

    def uses(self, kind: str) -> bool:
        """Whether this tenant gets models of ``kind``."""
        return not self.model_kinds or kind in self.model_kinds

    @property
    def warehouse_key(self) -> str:
        """Which warehouse file holds this tenant's features: its region's pool, or its own."""
        return f"{self.region}/pool" if self.isolation == "pool" else f"{self.region}/silo_{self.tenant_id}"

    def to_json(self) -> dict[str, object]:
        d = asdict(self)
        d["onboarded_at"] = self.onboarded_at.isoformat()
        d["model_kinds"] = list(self.model_kinds)
        d["interaction_types"] = list(self.interaction_types)
        return d


class TenantStore:
    """Create, read and delete tenants in one home's control database."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()

    def add(self, tenant: Tenant, *, replace: bool = False, expect: Tenant | None | EllipsisType = ...) -> Tenant:
        """Store ``tenant``; raises :class:`TenantError` if it exists (unless ``replace``), or when a
        replacement would move it to another region or isolation tier (its data stays where it is).
        ``expect``: the entry as the caller read it from the store (:meth:`get`, :meth:`list`) before changing
        it, None for no entry; refused when the stored one differs (another command changed it meanwhile:
        writing would undo that change). Left out (``...``): not checked."""
        return self.add_all([tenant], replace=replace, expect={tenant.tenant_id: expect})[0]

    def add_all(
        self, tenants: builtins.list[Tenant], *, replace: bool = False, expect: dict[str, Tenant | None | EllipsisType]
    ) -> builtins.list[Tenant]:
        """:meth:`add` for each of ``tenants`` in one transaction: one refused stores none of them. ``expect``:
        tenant id -> its entry as read (:meth:`add`'s), for each tenant to check."""
        ids = [t.tenant_id for t in tenants]
        if twice := sorted({i for i in ids if ids.count(i) > 1}):
            raise TenantError(f"tenant {', '.join(twice)} given twice in one change; keep one entry each.")
        with control_db.connect(self.settings) as con:
            for tenant in tenants:
                try:
                    _store(con, tenant, replace, expect.get(tenant.tenant_id, ...))
                except sqlite3.IntegrityError:
                    raise TenantError(f"tenant {tenant.tenant_id} already exists; change it with --replace.") from None
        return tenants

    def get(self, tenant_id: str) -> Tenant:
        """The tenant, or :class:`TenantError` naming the command that lists the known ones."""
        validate_slug(tenant_id)
        with control_db.connect(self.settings) as con:
            row = con.execute(f"select {_COLUMNS} from tenants where tenant_id = ?", (tenant_id,)).fetchone()
        if row is None:
            raise TenantError(f"unknown tenant {tenant_id!r}; `tenantflow tenants list` shows the registered ones.")
        return _row_to_tenant(row)

    def list(self) -> list[Tenant]:
        with control_db.connect(self.settings) as con:
            rows = con.execute(f"select {_COLUMNS} from tenants order by tenant_id").fetchall()
        return [_row_to_tenant(r) for r in rows]

    def select(self, tenant_ids: builtins.list[str] | None = None) -> builtins.list[Tenant]:
        """The named tenants (validated, each must exist), or every tenant when none are named."""
        return [self.get(t) for t in tenant_ids] if tenant_ids else self.list()

    def remove(self, tenant_id: str) -> Tenant:
        """Remove a tenant: its row, source spec, monitor policy, traffic splits and open retrain
        requests go, its API keys are revoked, and its id is kept in ``removed_tenants`` so that it
        is never re-added (a new company under the same id would inherit its keys, models and
        data). Audited as ``key_revoke`` per key and ``tenant_remove``, in one transaction. Its data
        and models stay until :func:`ml.ops.erasure.purge_tenant`. Returns the removed entry.

        Raises:
            TenantError: no such tenant.
        """
        validate_slug(tenant_id)
        with control_db.connect(self.settings) as con:
            row = con.execute(f"select {_COLUMNS} from tenants where tenant_id = ?", (tenant_id,)).fetchone()
            if row is None:
                raise TenantError(f"unknown tenant {tenant_id!r}; nothing removed.")
            tenant = _row_to_tenant(row)
            now = datetime.now(UTC).isoformat(timespec="seconds")
            keys = con.execute(
                "select key_id from api_keys where tenant_id = ? and revoked_at is null", (tenant_id,)
            ).fetchall()
            con.execute(
                "update api_keys set revoked_at = ? where tenant_id = ? and revoked_at is null", (now, tenant_id)
            )
            for (key_id,) in keys:
                audit.append(con, "key_revoke", tenant_id, key_id, {"why": "tenant removed"})
            for table in ("tenants", "source_specs", "source_spec_versions", "monitor_policies", "traffic_splits"):
                con.execute(f"delete from {table} where tenant_id = ?", (tenant_id,))  # fixed table names
            con.execute("delete from retrain_requests where tenant_id = ? and status = 'requested'", (tenant_id,))
            con.execute(
                "insert into removed_tenants (tenant_id, region, isolation, share_data, removed_at) values (?, ?, ?, ?, ?)",
                (tenant_id, tenant.region, tenant.isolation, int(tenant.share_data), now),
            )
            audit.append(con, "tenant_remove", tenant_id, detail={"keys_revoked": len(keys)})
        return tenant

    def removed(self, tenant_id: str) -> dict[str, object] | None:
        """A removed tenant's ``region``, ``isolation``, ``share_data``, ``removed_at`` and
        ``purged_at`` (None until purged), or None if the id was never removed."""
        validate_slug(tenant_id)
        fields = ("region", "isolation", "share_data", "removed_at", "purged_at")
        with control_db.connect(self.settings) as con:
            row = con.execute(
                f"select {', '.join(fields)} from removed_tenants where tenant_id = ?", (tenant_id,)
            ).fetchone()
        return dict(zip(fields, row, strict=True)) if row else None

    def regions(self) -> set[str]:
        """Every region a tenant is in or was in (a removed tenant's data may still be there)."""
        with control_db.connect(self.settings) as con:
            rows = con.execute("select region from tenants union select region from removed_tenants").fetchall()
        return {r[0] for r in rows}

    def set_source_spec(self, tenant_id: str, spec: dict[str, object] | None) -> None:
        """Store a tenant's source spec (already validated by :mod:`ml.data.ingest.spec`), or
        forget it (``None``: the landing contract as is)."""
        self.get(tenant_id)
        with control_db.connect(self.settings) as con:
            if spec is None:
                con.execute("delete from source_specs where tenant_id = ?", (tenant_id,))
            else:
                con.execute(
                    "insert or replace into source_specs values (?, ?, datetime('now'))",
                    (tenant_id, json.dumps(spec, sort_keys=True)),
                )

    def source_spec(self, tenant_id: str) -> dict[str, object] | None:
        """A tenant's stored source spec as a mapping, or None."""
        validate_slug(tenant_id)
        with control_db.connect(self.settings) as con:
            row = con.execute("select spec from source_specs where tenant_id = ?", (tenant_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def remember_source_spec(self, tenant_id: str, spec_id: str, spec: dict[str, object]) -> None:
        """Keep a spec the tenant's files were read with, under its content id (kept once; never forgotten while
        the tenant is registered: a landed file is read again with it)."""
        with control_db.connect(self.settings) as con:
            con.execute(
                "insert or ignore into source_spec_versions values (?, ?, ?, datetime('now'))",
                (tenant_id, spec_id, json.dumps(spec, sort_keys=True)),
            )

    def source_spec_version(self, tenant_id: str, spec_id: str) -> dict[str, object] | None:
        """A spec the tenant's files were read with (:meth:`remember_source_spec`), or None."""
        with control_db.connect(self.settings) as con:
            row = con.execute(
                "select spec from source_spec_versions where tenant_id = ? and spec_id = ?", (tenant_id, spec_id)
            ).fetchone()
        return json.loads(row[0]) if row else None


_COLUMNS = (
    "tenant_id, display_name, region, isolation, share_data, onboarded_at, model_kinds, "
    "quota_events_per_day, quota_requests_per_minute, seen_items, label_window_days, global_region, "
    "holdout_protocol, churn_window_days, feature_window_days, min_rating, interaction_types"
)


def _store(con: sqlite3.Connection, tenant: Tenant, replace: bool, expect: Tenant | None | EllipsisType) -> None:
    """Write one entry in ``con``'s transaction (:meth:`TenantStore.add`)."""
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
        tenant.seen_items,
        tenant.label_window_days,
        tenant.global_region,
        tenant.holdout_protocol,
        tenant.churn_window_days,
        tenant.feature_window_days,
        tenant.min_rating,
        ",".join(tenant.interaction_types),
    )
    _refuse_removed(con, tenant.tenant_id)
    old = con.execute(f"select {_COLUMNS} from tenants where tenant_id = ?", (tenant.tenant_id,)).fetchone()
    if expect is not ... and (_row_to_tenant(old) if old else None) != expect:
        raise TenantError(
            f"tenant {tenant.tenant_id} changed while this command ran (another `tenants add --replace` or seed?); "
            "nothing stored: run it again to change the entry as it is now."
        )
    if old and replace:
        refuse_moving(tenant.tenant_id, old[2:4], (tenant.region, tenant.isolation))
    verb = "insert or replace" if replace else "insert"
    con.execute(f"{verb} into tenants ({_COLUMNS}) values ({', '.join('?' * len(row))})", row)
    _audit_change(con, _row_to_tenant(row), _row_to_tenant(old) if old else None)


def _audit_change(con: sqlite3.Connection, new: Tenant, old: Tenant | None) -> None:
    """``tenant_add`` with the entry's fields, or the changed fields (``quota_change`` when only quotas moved)."""
    if old is None:
        audit.append(con, "tenant_add", new.tenant_id, detail=new.to_json())
        return
    if changed := changed_fields(old, new):
        action = "quota_change" if set(changed) <= set(QUOTAS) else "tenant_change"
        audit.append(con, action, new.tenant_id, detail=changed)


def changed_fields(old: Tenant, new: Tenant) -> dict[str, list[object]]:
    """``field -> [old, new]`` of the fields that differ, as JSON values (:meth:`Tenant.to_json`)."""
    before, after = old.to_json(), new.to_json()
    return {k: [before[k], v] for k, v in after.items() if before[k] != v}


def _refuse_removed(con: sqlite3.Connection, tenant_id: str) -> None:
    row = con.execute("select removed_at from removed_tenants where tenant_id = ?", (tenant_id,)).fetchone()
    if row:
        raise TenantError(
            f"tenant id {tenant_id!r} was removed on {row[0]} and is never reused (a new tenant under it would "
            "inherit its keys, models and data); choose another id."
        )


def _row_to_tenant(row: tuple) -> Tenant:
    d = dict(zip(_COLUMNS.split(", "), row, strict=True))
    kinds, interactions = names(d.pop("model_kinds"), ""), names(d.pop("interaction_types"), "")
    share, onboarded = bool(d.pop("share_data")), date.fromisoformat(d.pop("onboarded_at"))
    return Tenant(**d, share_data=share, onboarded_at=onboarded, model_kinds=kinds, interaction_types=interactions)
