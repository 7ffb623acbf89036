"""What to generate: tenants' sizes and formats, injected drift and faults, the demo's world.

The landing contract's columns and event types are :mod:`ml.core.contract`'s.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import numpy as np

from ml.core.ids import validate_slug

TOPICS = (
    "news",
    "sports",
    "tech",
    "finance",
    "health",
    "travel",
    "food",
    "music",
    "film",
    "gaming",
    "science",
    "fashion",
    "parenting",
    "cars",
    "diy",
    "comedy",
)
NEW_TOPIC = "ai-shorts"  # the category that appears under ``new_category`` drift
DEVICES = ("web", "ios", "android", "tv")
FORMATS = ("csv", "jsonl", "parquet")
FAULT_KINDS = (
    "null_keys",
    "duplicate_event_ids",
    "future_timestamps",
    "past_timestamps",
    "unknown_event_types",
    "wrong_tenant",
    "malformed_lines",
    "empty_files",
)
DRIFT_KINDS = ("taste_shift", "new_category", "dwell_change")


@dataclass(frozen=True)
class TenantSpec:
    """How big and busy one tenant's platform is, and how it sends its data."""

    tenant_id: str
    region: str = "eu"
    users: int = 2_000
    items: int = 500
    fmt: str = "csv"
    history_days: int | None = None  # None: the whole generation window; else only the last N days
    activity: float = 1.0  # multiplies sessions per user-day

    def __post_init__(self) -> None:
        validate_slug(self.tenant_id)
        validate_slug(self.region, "region")
        if self.fmt not in FORMATS:
            raise ValueError(f"tenant {self.tenant_id}: format must be one of {FORMATS}, got {self.fmt!r}")


@dataclass(frozen=True)
class Drift:
    """From ``from_day`` (0-based day of the window) on, tenant ``tenant_id`` changes."""

    tenant_id: str
    kind: str
    from_day: int

    def __post_init__(self) -> None:
        if self.kind not in DRIFT_KINDS:
            raise ValueError(f"drift kind must be one of {DRIFT_KINDS}, got {self.kind!r}")


@dataclass(frozen=True)
class Faults:
    """Faults to inject into one tenant's drops; ``rate`` is the share of rows per row fault."""

    tenant_id: str
    kinds: tuple[str, ...] = FAULT_KINDS
    rate: float = 0.01

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {FAULT_KINDS}")


@dataclass(frozen=True)
class GenerationConfig:
    tenants: Sequence[TenantSpec]
    days: int = 35
    end_date: date = field(default_factory=lambda: datetime.now(UTC).date() - timedelta(days=1))
    seed: int = 42
    drifts: Sequence[Drift] = ()
    faults: Sequence[Faults] = ()
    # Write only the drops of days [first, last) of the window (0-based); None: every day. The
    # simulation still covers the whole window, so landing days 0..D now and D.. later gives the
    # same bytes as landing them all at once: "the next days arrive" without changing the past.
    land_days: tuple[int, int] | None = None

    @property
    def start_date(self) -> date:
        return self.end_date - timedelta(days=self.days - 1)


# The demo plays two weeks of a platform's life: the first DEMO_TRAINED_DAYS land and train the
# first champions; then DEMO_LATER_DAYS more arrive, in which DEMO_DRIFT_TENANT's users' tastes
# shift from the first day on (the monitor should notice that tenant, and no other).
DEMO_TRAINED_DAYS = 40
DEMO_LATER_DAYS = 14
DEMO_DRIFT_TENANT = "umbrella"


def demo_config(
    end_date: date | None = None, seed: int = 42, scale: float = 1.0
) -> tuple[GenerationConfig, list[dict]]:
    """The demo's five tenants over two regions, and their tenant rows.

    ``acme`` (eu, CSV), ``globex`` (eu, JSONL, its drops carry injected faults), ``initech``
    (us, Parquet, a ``silo`` that shares nothing), ``umbrella`` (us, CSV, does not share data;
    its tastes shift after the first training), ``hooli`` (eu, JSONL, onboarded ten days before
    the first training). The window is ``DEMO_TRAINED_DAYS + DEMO_LATER_DAYS`` days ending
    ``end_date`` (default yesterday); land it in two parts with ``land_days``.
    """
    end = end_date or datetime.now(UTC).date() - timedelta(days=1)
    days = DEMO_TRAINED_DAYS + DEMO_LATER_DAYS

    def sz(x: int) -> int:
        return max(50, int(x * scale))

    specs = [
        TenantSpec("acme", "eu", users=sz(3000), items=sz(600), fmt="csv"),
        TenantSpec("globex", "eu", users=sz(2000), items=sz(400), fmt="jsonl", activity=1.3),
        TenantSpec("initech", "us", users=sz(1500), items=sz(300), fmt="parquet", activity=0.8),
        TenantSpec("umbrella", "us", users=sz(2500), items=sz(800), fmt="csv", activity=1.1),
        TenantSpec("hooli", "eu", users=sz(800), items=sz(200), fmt="jsonl", history_days=DEMO_LATER_DAYS + 10),
    ]
    config = GenerationConfig(
        tenants=specs,
        days=days,
        end_date=end,
        seed=seed,
        faults=[Faults("globex", rate=0.005)],
        drifts=[Drift(DEMO_DRIFT_TENANT, "taste_shift", DEMO_TRAINED_DAYS)],
    )
    start = config.start_date
    rows = [
        {
            "tenant_id": "acme",
            "display_name": "Acme Media",
            "region": "eu",
            "isolation": "pool",
            "share_data": True,
            "onboarded_at": start,
        },
        {
            "tenant_id": "globex",
            "display_name": "Globex News",
            "region": "eu",
            "isolation": "pool",
            "share_data": True,
            "onboarded_at": start,
        },
        {
            "tenant_id": "initech",
            "display_name": "Initech Learning",
            "region": "us",
            "isolation": "silo",
            "share_data": False,
            "onboarded_at": start,
        },
        {
            "tenant_id": "umbrella",
            "display_name": "Umbrella Video",
            "region": "us",
            "isolation": "pool",
            "share_data": False,
            "onboarded_at": start,
        },
        {
            "tenant_id": "hooli",
            "display_name": "Hooli Shorts",
            "region": "eu",
            "isolation": "pool",
            "share_data": True,
            "onboarded_at": start + timedelta(days=DEMO_TRAINED_DAYS - 10),
        },
    ]
    return config, rows


def _fleet_spec(tenant_id: str, region: str, fmt: str, users: int, items: int, rng: np.random.Generator) -> TenantSpec:
    """One fleet tenant: its sizes and activity drawn from ``rng`` around the fleet's means."""
    return TenantSpec(
        tenant_id=tenant_id,
        region=region,
        users=max(20, int(users * rng.uniform(0.5, 1.5))),
        items=max(20, int(items * rng.uniform(0.5, 1.5))),
        fmt=fmt,
        activity=float(rng.uniform(0.7, 1.3)),
    )


def _named_spec(tenant_id: str, region: str, users: int, items: int, seed: int, formats: Sequence[str]) -> TenantSpec:
    """A tenant named by its id (``fleet_config``'s ``named``): sizes, activity and format drawn from the seed and
    the id alone."""
    key = int(hashlib.sha256(tenant_id.encode()).hexdigest()[:8], 16)
    return _fleet_spec(
        tenant_id, region, formats[key % len(formats)], users, items, np.random.default_rng([seed, 7, key])
    )


def fleet_config(
    n_tenants: int,
    users: int = 2_000,
    items: int = 500,
    days: int = 35,
    seed: int = 42,
    end_date: date | None = None,
    formats: Sequence[str] = FORMATS,
    regions: Sequence[str] = ("eu", "us"),
    named: Sequence[tuple[str, str]] = (),
) -> GenerationConfig:
    """``n_tenants`` tenants (``t0001``…) that differ in size and activity around the given
    means, cycling through landing formats and regions; ``named``: (tenant id, region) pairs to
    generate instead (tenants onboarded by name; ``n_tenants`` is then their number)."""
    if named:  # each tenant's sizes and format from its id: the same events whichever others are named with it
        specs = [_named_spec(tid, region, users, items, seed, formats) for tid, region in named]
    else:
        rng = np.random.default_rng([seed, 7])
        specs = [
            _fleet_spec(f"t{i + 1:04d}", regions[i % len(regions)], formats[i % len(formats)], users, items, rng)
            for i in range(n_tenants)
        ]
    if end_date is None:
        return GenerationConfig(tenants=specs, days=days, seed=seed)
    return GenerationConfig(tenants=specs, days=days, seed=seed, end_date=end_date)
