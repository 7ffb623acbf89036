"""The registered model kinds: every module of this package that defines ``KIND``.

Adding a kind is adding a module here (plus its dbt mart and yml, and its predictions table in
``dbt_project/models/staging/_predictions__sources.yml``); no other code lists kinds.
Kinds are discovered on first use, not at import time, and always in name order.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from ml.core.errors import TenantError
from ml.core.tenants import Tenant
from ml.data.publish import OnlineMart
from ml.models.kinds.base import ModelKind


@cache
def _registered() -> dict[str, ModelKind]:
    kinds: dict[str, ModelKind] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_") or info.name == "base":
            continue
        kind = getattr(importlib.import_module(f"{__name__}.{info.name}"), "KIND", None)
        if isinstance(kind, ModelKind):
            kinds[kind.name] = kind
    return dict(sorted(kinds.items()))


def all_kinds() -> list[ModelKind]:
    """Every registered kind, in name order."""
    return list(_registered().values())


def kind_names() -> list[str]:
    return list(_registered())


def get_kind(name: str) -> ModelKind:
    """The kind called ``name``.

    Raises:
        TenantError: no such kind; the message lists the registered ones.
    """
    try:
        return _registered()[name]
    except KeyError:
        raise TenantError(f"unknown model kind {name!r}; known kinds: {', '.join(_registered())}") from None


def validate_kinds(names: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """``names`` if every one is a registered kind (see :func:`get_kind` for the error)."""
    return tuple(get_kind(n).name for n in names)


def kinds_of(tenant: Tenant) -> list[ModelKind]:
    """The kinds a tenant uses (every registered kind unless it lists some)."""
    return [k for k in all_kinds() if tenant.uses(k.name)]


def training_marts() -> dict[str, str]:
    """Every kind's training mart (and history mart) -> the ORDER BY of a tenant's rows in a snapshot."""
    out = {k.mart: k.mart_order for k in all_kinds()}
    out.update(dict(k.history_mart for k in all_kinds() if k.history_mart))
    return out


def serving_marts() -> list[str]:
    """The marts the kinds score (each once, in name order): the monitor's drift reference."""
    return sorted({k.serving_mart for k in all_kinds()})


def online_marts() -> dict[str, OnlineMart]:
    """What the API reads of each tenant: the union of the kinds' online marts (ml.data.publish)."""
    out: dict[str, OnlineMart] = {}
    for k in all_kinds():
        for mart, spec in k.online_marts.items():
            if out.setdefault(mart, spec) != spec:
                raise ValueError(f"model kinds disagree on how to publish {mart}: {out[mart]} vs {spec}")
    return out
