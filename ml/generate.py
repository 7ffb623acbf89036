"""A synthetic content SaaS: realistic, learnable, per-tenant product events.

Each tenant runs a content platform with its own catalogue (items with a topic, a quality and a
publish time) and users with latent topic tastes and activity levels. Users open sessions,
click items, view them for a dwell time, complete or skip them, sometimes like them, and
sometimes cancel their subscription (activity decays before they do). Users pick items mostly
from the topics they like, so a personalised ranker beats popularity; tenants differ in size,
activity and taste mix.

Everything is vectorised with NumPy and Arrow (one pass per tenant, no Python loop per event),
and the random stream of a tenant depends only on ``(seed, tenant_id)``: the same arguments give
the same bytes, and adding a tenant does not change the others.

Landing layout (what a tenant drops, one batch per tenant and day)::

    landing/region=<r>/tenant=<t>/date=<YYYY-MM-DD>/events-<n>.<csv|jsonl|parquet>

Landing contract v1 columns: ``event_id, tenant_id, user_id, item_id, event_type, event_at,
session_id, dwell_seconds, topic, device``. The catalogue travels in the same stream as
``item_published`` events (``item_id``, ``topic``, ``event_at`` = publish time).
"""

from __future__ import annotations

import functools
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ml.quality import ALLOWED_EVENT_TYPES as EVENT_TYPES  # dictionary codes follow this order
from ml.tenants import validate_slug

TOPICS = (
    "news", "sports", "tech", "finance", "health", "travel", "food", "music",
    "film", "gaming", "science", "fashion", "parenting", "cars", "diy", "comedy",
)  # fmt: skip
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


@dataclass
class GenerationResult:
    files: list[Path]
    events: int  # rows written (including injected faulty rows, excluding malformed lines)
    events_by_tenant: dict[str, int]


def generate(config: GenerationConfig, landing: Path, workers: int | None = None) -> GenerationResult:
    """Write every tenant's daily drops under ``landing``; return what was written.

    Tenants are generated in parallel processes (``workers``, default: one per core); each
    tenant's random stream depends only on ``(seed, tenant_id)``, so the bytes do not depend
    on how many workers ran.
    """
    files: list[Path] = []
    by_tenant: dict[str, int] = {}
    workers = min(len(config.tenants), workers or os.cpu_count() or 1)
    if workers > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        # largest tenants first, so no worker starts a big one while the others sit idle at the end
        order = sorted(config.tenants, key=_expected_events, reverse=True)
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("forkserver")) as pool:
            done = dict(zip((s.tenant_id for s in order),
                            pool.map(_generate_tenant, order, [config] * len(order), [landing] * len(order)), strict=True))
        results = [done[spec.tenant_id] for spec in config.tenants]
    else:
        results = [_generate_tenant(spec, config, landing) for spec in config.tenants]
    for spec, (written, n) in zip(config.tenants, results, strict=True):
        files += written
        by_tenant[spec.tenant_id] = n
    return GenerationResult(files=files, events=sum(by_tenant.values()), events_by_tenant=by_tenant)


def _expected_events(spec: TenantSpec) -> float:
    """A tenant's cost, roughly: users × activity × days of history, a JSONL row costing about
    1.4 times a CSV or Parquet row to generate and write (only to order the work)."""
    return spec.users * spec.activity * (spec.history_days or 10_000) * (1.4 if spec.fmt == "jsonl" else 1.0)


def _generate_tenant(spec: TenantSpec, config: GenerationConfig, landing: Path) -> tuple[list[Path], int]:
    """Simulate, corrupt (if asked) and write one tenant: the unit of parallel work."""
    table = simulate_tenant(spec, config)
    faults = next((f for f in config.faults if f.tenant_id == spec.tenant_id), None)
    rng = _tenant_rng(config.seed, spec.tenant_id, stream=1)
    if faults is not None:
        table = inject_row_faults(table, faults, config, rng)
    return write_daily_drops(table, spec, config, landing, faults, rng)


def _tenant_rng(seed: int, tenant_id: str, stream: int = 0) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(tenant_id.encode()), stream])


def _categorical_rows(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """Sample one category per row of a (rows × K) probability matrix."""
    cum = np.cumsum(probs, axis=1)
    r = rng.random(len(probs))[:, None] * cum[:, -1:]
    return (cum < r).sum(axis=1).clip(0, probs.shape[1] - 1)


def _hex_ids(values: np.ndarray, prefix: bytes = b"") -> pa.Array:
    """Fixed-width lower-case hex strings for uint64 values, built without a Python loop."""
    lut = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    raw = values.astype(">u8").view(np.uint8).reshape(-1, 8)
    chars = np.empty((len(values), 16), dtype=np.uint8)
    chars[:, 0::2] = lut[raw >> 4]
    chars[:, 1::2] = lut[raw & 0x0F]
    if prefix:
        p = np.frombuffer(prefix, dtype=np.uint8)
        chars = np.hstack([np.broadcast_to(p, (len(values), len(p))), chars])
    width = chars.shape[1]
    offsets = np.arange(0, width * len(values) + 1, width, dtype=np.int32)
    return pa.Array.from_buffers(
        pa.string(), len(values), [None, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(chars))]
    )


def _dictionary(indices: np.ndarray, names: Sequence[str]) -> pa.Array:
    return pa.DictionaryArray.from_arrays(pa.array(indices.astype(np.int32)), pa.array(list(names)))


def simulate_tenant(spec: TenantSpec, config: GenerationConfig) -> pa.Table:
    """All of one tenant's clean events over the window, sorted by time (an Arrow table)."""
    rng = _tenant_rng(config.seed, spec.tenant_id)
    days = config.days
    first_day = 0 if spec.history_days is None else max(0, days - spec.history_days)
    drifts = {d.kind: d.from_day for d in config.drifts if d.tenant_id == spec.tenant_id}
    topics = list(TOPICS) + [NEW_TOPIC]
    k = len(topics)

    # The tenant's taste mix: a few strong topics, some absent; the new topic only under drift.
    mix = rng.dirichlet(np.full(len(TOPICS), 0.6))
    mix[mix < 0.02] = 0.0
    mix = np.append(mix, 0.0)
    mix /= mix.sum()

    # Catalogue: back-catalogue on the first day, the rest published along the window.
    n_items = spec.items
    item_topic = rng.choice(k, size=n_items, p=mix)
    item_quality = rng.normal(0.0, 1.0, n_items)
    back = rng.random(n_items) < 0.6
    item_day = np.where(back, first_day, rng.integers(first_day, days, n_items))
    if "new_category" in drifts:
        # A burst of popular items in a category the tenant never had.
        n_new = max(10, n_items // 10)
        item_topic = np.concatenate([item_topic, np.full(n_new, k - 1)])
        item_quality = np.concatenate([item_quality, rng.normal(1.5, 0.5, n_new)])
        item_day = np.concatenate([item_day, rng.integers(drifts["new_category"], days, n_new).clip(max=days - 1)])
        n_items += n_new
    item_second = np.where(item_day == first_day, 0, rng.integers(0, 86_400, n_items))
    # An item can be picked from the day after it was published (the back-catalogue at once).
    avail_day = np.where(item_day == first_day, first_day, item_day + 1)
    present = np.bincount(item_topic[item_day <= first_day], minlength=k) > 0

    # Users: a concentrated taste over the topics the tenant has, an activity level, a churn day.
    n_users = spec.users
    taste = rng.gamma(0.25, size=(n_users, k)) * present + 1e-9
    taste /= taste.sum(axis=1, keepdims=True)
    activity = rng.lognormal(np.log(0.5 * spec.activity), 0.7, n_users)
    signup = np.where(rng.random(n_users) < 0.7, first_day, rng.integers(first_day, days, n_users))
    hazard = 0.004 * np.exp(-0.9 * np.log(activity / (0.5 * spec.activity)))
    churn_day = signup + rng.geometric(np.clip(hazard, 1e-4, 0.2))
    churns = churn_day < days

    # Sessions per user-day: Poisson, with a weekly rhythm and decay before churn.
    day_idx = np.arange(days)
    weekly = 1.0 + 0.25 * np.sin(2 * np.pi * (day_idx + config.start_date.weekday()) / 7)
    lam = activity[:, None] * weekly[None, :]
    alive = (day_idx[None, :] >= signup[:, None]) & (day_idx[None, :] < churn_day[:, None])
    to_churn = churn_day[:, None] - day_idx[None, :]
    lam = np.where((to_churn <= 10) & churns[:, None], lam * 0.35, lam) * alive
    n_sessions = rng.poisson(lam)
    s_user, s_day = np.nonzero(n_sessions)
    reps = n_sessions[s_user, s_day]
    s_user, s_day = np.repeat(s_user, reps), np.repeat(s_day, reps)
    n_s = len(s_user)
    s_start = rng.integers(0, 86_400 - 3_600, n_s)
    s_device = rng.choice(len(DEVICES), size=n_s, p=[0.35, 0.3, 0.25, 0.1])

    # Interactions: 1 + Poisson(2) items per session.
    n_inter_s = 1 + rng.poisson(2.0, n_s)
    i_sess = np.repeat(np.arange(n_s), n_inter_s)
    i_user, i_day = s_user[i_sess], s_day[i_sess]
    i_pos = np.arange(len(i_sess)) - np.repeat(np.cumsum(n_inter_s) - n_inter_s, n_inter_s)
    n_i = len(i_sess)

    # Topic: mostly the user's taste (rotated after a taste shift), sometimes the tenant's mix.
    user_taste = taste[i_user]
    if "taste_shift" in drifts:
        shifted = i_day >= drifts["taste_shift"]
        user_taste[shifted] = np.roll(user_taste[shifted], 3, axis=1) * present + 1e-9
    if "new_category" in drifts:
        boost = i_day >= drifts["new_category"]
        user_taste[boost, k - 1] += 0.5
    explore = rng.random(n_i) < 0.2
    probs = np.where(explore[:, None], mix[None, :] + 1e-9, user_taste)
    i_topic = _categorical_rows(rng, probs)

    # Item within topic, by quality, among items already published; a quarter from the last 3 days.
    i_item = np.full(n_i, -1)
    fresh = rng.random(n_i) < 0.25
    r = rng.random(n_i)
    for t in range(k):
        sel = np.nonzero(i_topic == t)[0]
        cand = np.nonzero(item_topic == t)[0]
        if len(sel) == 0 or len(cand) == 0:
            continue
        order = cand[np.lexsort((item_second[cand], avail_day[cand]))]
        pub = avail_day[order]
        cumw = np.concatenate([[0.0], np.cumsum(np.exp(item_quality[order]))])
        hi = np.searchsorted(pub, i_day[sel], side="right")
        lo = np.where(fresh[sel], np.searchsorted(pub, i_day[sel] - 3, side="left"), 0)
        lo = np.minimum(lo, hi)
        ok = hi > 0
        lo = np.where(hi > lo, lo, 0)
        target = cumw[lo] + r[sel] * (cumw[hi] - cumw[lo])
        pick = np.searchsorted(cumw, target, side="right") - 1
        pick = np.clip(pick, 0, len(order) - 1)
        i_item[sel[ok]] = order[pick[ok]]
    keep = i_item >= 0
    i_sess, i_user, i_day, i_pos, i_item, i_topic = (
        a[keep] for a in (i_sess, i_user, i_day, i_pos, i_item, i_topic)
    )
    n_i = len(i_sess)

    # Engagement: completion and likes follow taste match and quality; dwell follows both.
    match = taste[i_user, item_topic[i_item]] * present.sum()
    logit = 0.9 * np.log(match + 0.05) + 0.6 * item_quality[i_item] - 0.2
    complete = rng.random(n_i) < 1 / (1 + np.exp(-logit))
    like = rng.random(n_i) < 0.25 / (1 + np.exp(-logit + 1.0))
    dwell_scale = np.where(complete, 90.0, 12.0)
    if "dwell_change" in drifts:
        dwell_scale = np.where(i_day >= drifts["dwell_change"], dwell_scale * 0.4, dwell_scale)
    dwell = np.round(rng.lognormal(np.log(dwell_scale), 0.5), 1)

    # Expand interactions into events: click, view (dwell), complete|skip (dwell), like?
    t0 = (i_day * 86_400 + s_start[i_sess] + i_pos * 150).astype(np.int64)
    n_ev = 3 + like.astype(np.int64)
    e_i = np.repeat(np.arange(n_i), n_ev)
    e_k = np.arange(len(e_i)) - np.repeat(np.cumsum(n_ev) - n_ev, n_ev)
    etype = np.select(
        [e_k == 0, e_k == 1, (e_k == 2) & complete[e_i], e_k == 2],
        [0, 1, 2, 3],
        default=4,
    )
    d = dwell[e_i]
    e_sec = t0[e_i] + np.select([e_k == 0, e_k == 1], [0, 1], default=np.round(d).astype(np.int64) + 1 + e_k)
    e_dwell = np.where((e_k >= 1) & (e_k <= 2), d, np.nan)

    # Catalogue and cancellation events.
    pub_sec = (item_day * 86_400 + item_second).astype(np.int64)
    c_user = np.nonzero(churns)[0]
    c_sec = (churn_day[c_user] * 86_400 + rng.integers(0, 86_400, len(c_user))).astype(np.int64)

    n_e, n_p, n_c = len(e_i), n_items, len(c_user)
    sess_of = np.concatenate([i_sess[e_i], np.full(n_p + n_c, -1)])
    user_of = np.concatenate([i_user[e_i], np.full(n_p, -1), c_user])
    item_of = np.concatenate([i_item[e_i], np.arange(n_items), np.full(n_c, -1)])
    type_of = np.concatenate([etype, np.full(n_p, 6), np.full(n_c, 5)])
    sec_of = np.concatenate([e_sec, pub_sec, c_sec])
    dwell_of = np.concatenate([e_dwell, np.full(n_p + n_c, np.nan)])
    topic_of = np.concatenate([np.full(n_e, -1), item_topic, np.full(n_c, -1)])
    device_of = np.concatenate([s_device[i_sess[e_i]], np.full(n_p + n_c, -1)])

    order = np.argsort(sec_of, kind="stable")
    sess_of, user_of, item_of, type_of, sec_of, dwell_of, topic_of, device_of = (
        a[order] for a in (sess_of, user_of, item_of, type_of, sec_of, dwell_of, topic_of, device_of)
    )
    sec_of = np.minimum(sec_of, days * 86_400 - 1)  # a late completion stays inside the window
    n = len(order)

    base = datetime.combine(config.start_date, datetime.min.time(), tzinfo=UTC)
    micros = (int(base.timestamp()) + sec_of) * 1_000_000
    salt = np.uint64(zlib.crc32(f"{config.seed}:{spec.tenant_id}".encode()))
    event_key = (np.arange(n, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)) ^ (salt << np.uint64(32))
    session_key = (sess_of.astype(np.uint64) * np.uint64(0xBF58476D1CE4E5B9)) ^ salt

    def masked(values: pa.Array, missing: np.ndarray) -> pa.Array:
        return pc.if_else(pa.array(missing), pa.nulls(len(values), values.type), values)

    user_names = [f"u{j:06d}" for j in range(n_users)]
    item_names = [f"i{j:06d}" for j in range(n_items)]
    return pa.table(
        {
            "event_id": _hex_ids(event_key),
            "tenant_id": _dictionary(np.zeros(n), [spec.tenant_id]),
            "user_id": masked(_dictionary(np.maximum(user_of, 0), user_names), user_of < 0),
            "item_id": masked(_dictionary(np.maximum(item_of, 0), item_names), item_of < 0),
            "event_type": _dictionary(type_of, EVENT_TYPES),
            "event_at": pa.array(micros, pa.timestamp("us", tz="UTC")),
            "session_id": masked(_hex_ids(session_key, b"s"), sess_of < 0),
            "dwell_seconds": pa.array(dwell_of, pa.float64(), from_pandas=True),
            "topic": masked(_dictionary(np.maximum(topic_of, 0), topics), topic_of < 0),
            "device": masked(_dictionary(np.maximum(device_of, 0), DEVICES), device_of < 0),
        }
    )


def inject_row_faults(
    table: pa.Table, faults: Faults, config: GenerationConfig, rng: np.random.Generator
) -> pa.Table:
    """Corrupt a share of rows with each requested row-level fault (positions are seeded)."""
    n = table.num_rows
    cols = {name: table.column(name).combine_chunks() for name in table.column_names}
    cols = {k: (v.dictionary_decode() if pa.types.is_dictionary(v.type) else v) for k, v in cols.items()}

    def pick() -> np.ndarray:
        mask = np.zeros(n, dtype=bool)
        mask[rng.choice(n, size=max(1, int(n * faults.rate)), replace=False)] = True
        return mask

    if "null_keys" in faults.kinds:
        m = pick()
        half = rng.random(n) < 0.5
        cols["event_id"] = pc.if_else(pa.array(m & half), pa.nulls(n, pa.string()), cols["event_id"])
        cols["user_id"] = pc.if_else(pa.array(m & ~half), pa.nulls(n, pa.string()), cols["user_id"])
    if "unknown_event_types" in faults.kinds:
        cols["event_type"] = pc.if_else(pa.array(pick()), pa.scalar("page_scroll"), cols["event_type"])
    if "wrong_tenant" in faults.kinds:
        cols["tenant_id"] = pc.if_else(pa.array(pick()), pa.scalar("someone-else"), cols["tenant_id"])
    ts = cols["event_at"]
    if "future_timestamps" in faults.kinds:
        future = pa.scalar(datetime(2099, 1, 1, tzinfo=UTC), pa.timestamp("us", tz="UTC"))
        cols["event_at"] = ts = pc.if_else(pa.array(pick()), future, ts)
    if "past_timestamps" in faults.kinds:
        past = pa.scalar(datetime(1970, 1, 2, tzinfo=UTC), pa.timestamp("us", tz="UTC"))
        cols["event_at"] = pc.if_else(pa.array(pick()), past, ts)
    out = pa.table(cols)
    if "duplicate_event_ids" in faults.kinds:
        # Resends: the same event again (same id, same content) a little later in the stream.
        dup = np.nonzero(pick())[0]
        out = pa.concat_tables([out, out.take(pa.array(dup))])
        positions = np.concatenate([np.arange(n), dup + 1])
        out = out.take(pa.array(np.argsort(positions, kind="stable")))
    return out


def write_daily_drops(
    table: pa.Table,
    spec: TenantSpec,
    config: GenerationConfig,
    landing: Path,
    faults: Faults | None,
    rng: np.random.Generator,
) -> tuple[list[Path], int]:
    """Split a tenant's events by day (of the clean timeline) and write one drop per day.

    Rows whose timestamp was corrupted stay in the drop of their neighbours: the day a file
    lands is the day it was sent, whatever timestamps it carries.
    """
    n = table.num_rows
    day_seconds = pc.divide(
        pc.cast(table.column("event_at"), pa.int64()), 86_400 * 1_000_000
    ).to_numpy()
    base_day = int(datetime.combine(config.start_date, datetime.min.time(), tzinfo=UTC).timestamp()) // 86_400
    day = day_seconds - base_day
    # Corrupted timestamps take the day of the previous row (forward fill of valid days).
    valid = (day >= 0) & (day < config.days)
    idx = np.where(valid, np.arange(n), 0)
    np.maximum.accumulate(idx, out=idx)
    day = np.where(valid, day, day[idx])
    day = np.where((day >= 0) & (day < config.days), day, 0)
    day_order = np.argsort(day, kind="stable")
    table, day = table.take(pa.array(day_order)), day[day_order]
    bounds = np.searchsorted(day, np.arange(config.days + 1))

    written: list[Path] = []
    rows_written = 0
    empty_day = None
    if faults is not None and "empty_files" in faults.kinds:
        empty_day = int(rng.integers(0, config.days))
    first, last = config.land_days or (0, config.days)
    for d in range(max(0, first), min(config.days, last)):
        lo, hi = bounds[d], bounds[d + 1]
        if hi <= lo and d != empty_day:
            continue
        the_date = config.start_date + timedelta(days=d)
        folder = landing / f"region={spec.region}" / f"tenant={spec.tenant_id}" / f"date={the_date.isoformat()}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"events-0001.{spec.fmt}"
        _write_atomically(table.slice(lo, hi - lo), path, spec.fmt)
        written.append(path)
        rows_written += int(hi - lo)
        if faults is not None and "malformed_lines" in faults.kinds and spec.fmt != "parquet" and hi > lo:
            _append_malformed(path, spec.fmt, rng)
        if d == empty_day:
            empty = folder / f"events-0002.{spec.fmt}"
            _write_atomically(table.slice(0, 0), empty, spec.fmt, truly_empty=True)
            written.append(empty)
    return written, rows_written


def _iso_utc(ts: pa.ChunkedArray | pa.Array) -> pa.Array:
    """ISO-8601 UTC strings (``2026-11-20T08:01:02Z``) from two small lookup tables (one string
    per day, one per second of the day) instead of formatting every value."""
    seconds = pc.cast(pc.cast(ts, pa.timestamp("s", tz="UTC")), pa.int64()).to_numpy(zero_copy_only=False)
    days, second_of_day = np.divmod(seconds, 86_400)
    first = int(days.min()) if len(days) else 0
    day_text = np.datetime_as_string(np.arange(first, int(days.max()) + 1 if len(days) else 1).astype("datetime64[D]"))
    return pc.binary_join_element_wise(
        pa.array(day_text.tolist()).take(pa.array(days - first)), _clock().take(pa.array(second_of_day)), ""
    )


@functools.cache
def _clock() -> pa.Array:
    """``T00:00:00Z`` … ``T23:59:59Z``, one entry per second of a day."""
    hms = np.arange(86_400)
    return pa.array([f"T{h:02d}:{m:02d}:{s:02d}Z" for h, m, s in zip(hms // 3600, hms // 60 % 60, hms % 60, strict=True)])


def _text_columns(table: pa.Table) -> pa.Table:
    """Event times as ISO-8601 UTC strings, the way tenants' exports write them."""
    return table.set_column(table.schema.get_field_index("event_at"), "event_at", _iso_utc(table.column("event_at")))


@functools.cache
def _duckdb():
    """This process's DuckDB connection for writing JSON lines (one thread: tenants are the
    parallel unit, and one thread keeps the rows in order)."""
    import duckdb

    con = duckdb.connect()
    con.execute("set threads = 1")
    return con


def _write_json_lines(table: pa.Table, path: Path) -> None:
    """One JSON object per row (DuckDB's writer: 3-4x faster than joining Arrow string kernels)."""
    con = _duckdb()
    con.register("drop_rows", table)
    try:
        quoted = str(path).replace("'", "''")
        con.execute(f"copy drop_rows to '{quoted}' (format json)")
    finally:
        con.unregister("drop_rows")


def _write_atomically(table: pa.Table, path: Path, fmt: str, truly_empty: bool = False) -> None:
    tmp = path.with_name(path.name + ".tmp")
    if truly_empty:
        tmp.write_bytes(b"")
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, tmp, compression="zstd")
    elif fmt == "csv":
        import pyarrow.csv as pacsv

        pacsv.write_csv(_text_columns(table), tmp)
    else:
        _write_json_lines(_text_columns(table), tmp)
    os.replace(tmp, path)


def _append_malformed(path: Path, fmt: str, rng: np.random.Generator) -> None:
    """A few broken lines, as a buggy exporter writes them."""
    junk = [
        b'"unterminated,quote,line\n' if fmt == "csv" else b'{"event_id": "x", "user_id": \n',
        b"garbage line with no separators\n" if fmt == "csv" else b"not json at all\n",
    ]
    with open(path, "ab") as f:
        for _ in range(int(rng.integers(1, 3))):
            f.write(junk[int(rng.integers(0, 2))])


# The demo plays two weeks of a platform's life: the first DEMO_TRAINED_DAYS land and train the
# first champions; then DEMO_LATER_DAYS more arrive, in which DEMO_DRIFT_TENANT's users' tastes
# shift from the first day on (the monitor should notice that tenant, and no other).
DEMO_TRAINED_DAYS = 40
DEMO_LATER_DAYS = 14
DEMO_DRIFT_TENANT = "umbrella"


def demo_config(end_date: date | None = None, seed: int = 42, scale: float = 1.0) -> tuple[GenerationConfig, list[dict]]:
    """The demo's five tenants over two regions, and their registry rows.

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
        tenants=specs, days=days, end_date=end, seed=seed, faults=[Faults("globex", rate=0.005)],
        drifts=[Drift(DEMO_DRIFT_TENANT, "taste_shift", DEMO_TRAINED_DAYS)],
    )
    start = config.start_date
    registry = [
        dict(tenant_id="acme", display_name="Acme Media", region="eu", isolation="pool", share_data=True, onboarded_at=start),
        dict(tenant_id="globex", display_name="Globex News", region="eu", isolation="pool", share_data=True, onboarded_at=start),
        dict(tenant_id="initech", display_name="Initech Learning", region="us", isolation="silo", share_data=False, onboarded_at=start),
        dict(tenant_id="umbrella", display_name="Umbrella Video", region="us", isolation="pool", share_data=False, onboarded_at=start),
        dict(tenant_id="hooli", display_name="Hooli Shorts", region="eu", isolation="pool", share_data=True,
             onboarded_at=start + timedelta(days=DEMO_TRAINED_DAYS - 10)),
    ]  # fmt: skip
    return config, registry


def fleet_config(
    n_tenants: int,
    users: int = 2_000,
    items: int = 500,
    days: int = 35,
    seed: int = 42,
    end_date: date | None = None,
    formats: Sequence[str] = FORMATS,
    regions: Sequence[str] = ("eu", "us"),
) -> GenerationConfig:
    """``n_tenants`` tenants (``t0001``…) that differ in size and activity around the given
    means, cycling through landing formats and regions."""
    rng = np.random.default_rng([seed, 7])
    specs = [
        TenantSpec(
            tenant_id=f"t{i + 1:04d}",
            region=regions[i % len(regions)],
            users=max(20, int(users * rng.uniform(0.5, 1.5))),
            items=max(20, int(items * rng.uniform(0.5, 1.5))),
            fmt=formats[i % len(formats)],
            activity=float(rng.uniform(0.7, 1.3)),
        )
        for i in range(n_tenants)
    ]
    kwargs = {"end_date": end_date} if end_date else {}
    return GenerationConfig(tenants=specs, days=days, seed=seed, **kwargs)
