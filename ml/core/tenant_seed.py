"""Tenants from a file: the demo's seed and ``tenantflow tenants seed``, and :func:`tenant_from_dict`,
which builds a :class:`~ml.core.tenants.Tenant` from any plain mapping (a seed file's entry, JSON).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from collections.abc import Callable
from datetime import date
from pathlib import Path

import yaml

from ml.core.errors import TenantError
from ml.core.tenant_fields import names, optional_number, optional_whole_number, parse_bool, refuse_moving
from ml.core.tenants import DEFAULT_QUOTA_EVENTS_PER_DAY, DEFAULT_QUOTA_REQUESTS_PER_MINUTE, Tenant, TenantStore


def seed_from_file(
    path: Path,
    store: TenantStore | None = None,
    check: Callable[[Tenant], object] | None = None,
    stored: dict[str, Tenant] | None = None,
) -> list[Tenant]:
    """Load tenants from a JSON or YAML list (the demo's seed), adding new ones and changing those there.
    An entry's keys are a tenant's fields, as ``tenants show`` prints them (its :data:`SHOWN` keys too).

    An entry changes the fields it names of a tenant that is there (the others kept, its consent to
    share data too); every entry is parsed and checked (never another region or tier, a removed id
    or an id twice; ``check``: the CLI's model kinds) before any is stored: a bad one stores none.
    ``stored``: the tenants as the caller read them (default: read here); the store refuses if one of
    those the file names changed since, so what the caller reports as changed is what was.

    Raises:
        TenantError: the file is not a list of tenants, or an entry is invalid; names the
            file and the entry.
    """
    store = store or TenantStore()
    try:
        text = path.read_text()
    except OSError as exc:
        raise TenantError(f"{path}: cannot be read ({exc.strerror or exc}).") from None
    try:
        items = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise TenantError(f"{path}: not valid {'YAML' if path.suffix != '.json' else 'JSON'}: {exc}") from None
    if not isinstance(items, list):
        raise TenantError(
            f"{path}: expected a list of tenants (entries such as `tenants show` prints), got {type(items).__name__}."
        )
    tenants: list[Tenant] = []
    stored = {t.tenant_id: t for t in store.list()} if stored is None else stored
    for i, item in enumerate(items):
        try:
            if not isinstance(item, dict):
                raise TenantError(f"expected a mapping, got {type(item).__name__}")
            shown = {k: item[k] for k in SHOWN if k in item}  # an entry copied from `tenants show`
            item = {k: v for k, v in item.items() if k not in SHOWN}
            _refuse_unknown(item)
            old = stored.get(str(item.get("tenant_id")))
            tenant = tenant_from_dict({**old.to_json(), **item} if old else item)
            _check_shown(tenant, shown, store.source_spec(tenant.tenant_id) if old and "source_spec" in shown else None)
            if tenant.tenant_id in {t.tenant_id for t in tenants}:
                raise TenantError(f"tenant {tenant.tenant_id} is in the file twice; keep one entry.")
            if old:
                refuse_moving(old.tenant_id, (old.region, old.isolation), (tenant.region, tenant.isolation))
            elif store.removed(tenant.tenant_id):
                raise TenantError(f"tenant id {tenant.tenant_id!r} was removed and is never reused; choose another.")
            if check is not None:
                check(tenant)
        except KeyError as exc:
            raise TenantError(f"{path}: tenant #{i + 1}: missing field {exc}.") from None
        except (TenantError, ValueError) as exc:
            raise TenantError(f"{path}: tenant #{i + 1}: {exc}") from None
        tenants.append(tenant)
    try:  # one transaction: an entry changed meanwhile by another command stores none
        return store.add_all(tenants, replace=True, expect={t.tenant_id: stored.get(t.tenant_id) for t in tenants})
    except TenantError as exc:
        raise TenantError(f"{path}: {exc}") from None


def tenant_from_dict(d: dict[str, object]) -> Tenant:
    """Build a tenant from a plain mapping (seed files, JSON), validating every field."""
    onboarded = d.get("onboarded_at")
    return Tenant(
        tenant_id=str(d["tenant_id"]),
        region=str(d["region"]),
        isolation=str(d.get("isolation", "pool")),
        share_data=parse_bool(d.get("share_data", True)),
        display_name=str(d.get("display_name", "")),
        onboarded_at=date.fromisoformat(str(onboarded)) if onboarded else date.today(),
        model_kinds=names(d.get("model_kinds"), "model_kinds"),
        quota_events_per_day=_quota(d, "quota_events_per_day", DEFAULT_QUOTA_EVENTS_PER_DAY),
        quota_requests_per_minute=_quota(d, "quota_requests_per_minute", DEFAULT_QUOTA_REQUESTS_PER_MINUTE),
        seen_items=str(d.get("seen_items", "exclude")),
        label_window_days=optional_whole_number(d.get("label_window_days"), "label_window_days"),
        global_region=str(d["global_region"]) if d.get("global_region") else None,
        holdout_protocol=str(d.get("holdout_protocol") or "auto"),
        churn_window_days=optional_whole_number(d.get("churn_window_days"), "churn_window_days"),
        feature_window_days=optional_whole_number(d.get("feature_window_days"), "feature_window_days"),
        min_rating=optional_number(d.get("min_rating"), "min_rating"),
        interaction_types=names(d.get("interaction_types"), "interaction_types"),
    )


def _quota(d: dict[str, object], name: str, default: int) -> int:
    """A quota of an entry: absent, the platform's default (a tenant that is there: its own, merged in first);
    empty is refused (a blank left by a template would lift a suspension, or set one, unseen)."""
    value = optional_whole_number(d.get(name, default), name)
    if value is None:
        raise TenantError(
            f"{name} is empty: give a whole number (0 suspends) or leave the field out (default {default:,})."
        )
    return value


# what `tenants show` prints beside a tenant's fields: derived from them (interactions, suspended), or set by
# another command (source_spec: `tenants source`); a seed entry may carry them only as they are
SHOWN = {
    "interactions": "derived from interaction_types",
    "suspended": "derived from the quotas (0 suspends)",
    "source_spec": "set by `tenantflow tenants source ID --file SPEC`",
}


def _check_shown(tenant: Tenant, shown: dict[str, object], spec: dict[str, object] | None) -> None:
    """Refuse a key of :data:`SHOWN` whose value is not the tenant's own (the entry would say it changes it)."""
    actual = {"interactions": list(tenant.interactions), "suspended": list(tenant.suspended), "source_spec": spec}
    for key, value in shown.items():
        if value != actual[key]:
            raise TenantError(f"{key} is {SHOWN[key]}: it would be {actual[key]!r}, not {value!r}; leave it out.")


def _refuse_unknown(item: dict[str, object]) -> None:
    """A key that is no field of a tenant is refused, naming the field it is likely a slip for (a misspelt
    ``quota_request_per_minute: 0`` would otherwise leave the tenant as it was, saying nothing)."""
    fields = [f.name for f in dataclasses.fields(Tenant)]
    for key in item:
        if key not in fields:
            near = difflib.get_close_matches(str(key), fields, n=1)
            hint = f"did you mean {near[0]}?" if near else f"the fields are {', '.join(fields)}."
            raise TenantError(f"unknown field {key!r}: {hint}")
