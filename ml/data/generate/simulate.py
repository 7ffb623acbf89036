"""One tenant's clean events over the window, simulated with NumPy and built as an Arrow table.

The steps run in a fixed order on one random stream per tenant (:func:`tenant_rng`), so the same
``(seed, tenant_id)`` always gives the same events: catalogue, users, sessions, what each session
picks, how engaged the user was, then the events themselves (click, view, complete or skip, like,
plus ``item_published`` and ``cancel_subscription``).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ml.core.contract import EVENT_TYPES  # dictionary codes follow this order
from ml.data.generate.config import DEVICES, NEW_TOPIC, TOPICS, GenerationConfig, TenantSpec

TOPIC_NAMES = (*TOPICS, NEW_TOPIC)
K = len(TOPIC_NAMES)  # the last topic appears only under ``new_category`` drift


def tenant_rng(seed: int, tenant_id: str, stream: int = 0) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(tenant_id.encode()), stream])


@dataclass
class Catalogue:
    mix: np.ndarray  # the tenant's taste mix over topics
    topic: np.ndarray
    quality: np.ndarray
    day: np.ndarray  # publish day
    second: np.ndarray  # publish second of the day
    avail_day: np.ndarray  # first day an item can be picked
    present: np.ndarray  # topics the back-catalogue has


@dataclass
class Users:
    taste: np.ndarray  # users x topics
    activity: np.ndarray
    signup: np.ndarray
    churn_day: np.ndarray
    churns: np.ndarray


@dataclass
class Sessions:
    user: np.ndarray
    day: np.ndarray
    start: np.ndarray  # second of the day
    device: np.ndarray


@dataclass
class Interactions:
    sess: np.ndarray
    user: np.ndarray
    day: np.ndarray
    pos: np.ndarray  # position within the session
    item: np.ndarray


def _catalogue(
    rng: np.random.Generator, spec: TenantSpec, days: int, first_day: int, drifts: dict[str, int]
) -> Catalogue:
    """A few strong topics, some absent; a back-catalogue on the first day, the rest along the window."""
    mix = rng.dirichlet(np.full(len(TOPICS), 0.6))
    mix[mix < 0.02] = 0.0
    mix = np.append(mix, 0.0)
    mix /= mix.sum()
    n_items = spec.items
    topic = rng.choice(K, size=n_items, p=mix)
    quality = rng.normal(0.0, 1.0, n_items)
    back = rng.random(n_items) < 0.6
    day = np.where(back, first_day, rng.integers(first_day, days, n_items))
    if "new_category" in drifts:  # a burst of popular items in a category the tenant never had
        n_new = max(10, n_items // 10)
        topic = np.concatenate([topic, np.full(n_new, K - 1)])
        quality = np.concatenate([quality, rng.normal(1.5, 0.5, n_new)])
        day = np.concatenate([day, rng.integers(drifts["new_category"], days, n_new).clip(max=days - 1)])
        n_items += n_new
    second = np.where(day == first_day, 0, rng.integers(0, 86_400, n_items))
    # an item can be picked from the day after it was published (the back-catalogue at once)
    avail_day = np.where(day == first_day, first_day, day + 1)
    present = np.bincount(topic[day <= first_day], minlength=K) > 0
    return Catalogue(mix, topic, quality, day, second, avail_day, present)


def _users(rng: np.random.Generator, spec: TenantSpec, days: int, first_day: int, present: np.ndarray) -> Users:
    """A concentrated taste over the topics the tenant has, an activity level, a churn day."""
    n = spec.users
    taste = rng.gamma(0.25, size=(n, K)) * present + 1e-9
    taste /= taste.sum(axis=1, keepdims=True)
    activity = rng.lognormal(np.log(0.5 * spec.activity), 0.7, n)
    signup = np.where(rng.random(n) < 0.7, first_day, rng.integers(first_day, days, n))
    hazard = 0.004 * np.exp(-0.9 * np.log(activity / (0.5 * spec.activity)))
    churn_day = signup + rng.geometric(np.clip(hazard, 1e-4, 0.2))
    return Users(taste, activity, signup, churn_day, churn_day < days)


def _sessions(rng: np.random.Generator, users: Users, days: int, config: GenerationConfig) -> Sessions:
    """Sessions per user-day: Poisson, with a weekly rhythm and a decay before churn."""
    day_idx = np.arange(days)
    weekly = 1.0 + 0.25 * np.sin(2 * np.pi * (day_idx + config.start_date.weekday()) / 7)
    lam = users.activity[:, None] * weekly[None, :]
    alive = (day_idx[None, :] >= users.signup[:, None]) & (day_idx[None, :] < users.churn_day[:, None])
    to_churn = users.churn_day[:, None] - day_idx[None, :]
    lam = np.where((to_churn <= 10) & users.churns[:, None], lam * 0.35, lam) * alive
    n_sessions = rng.poisson(lam)
    s_user, s_day = np.nonzero(n_sessions)
    reps = n_sessions[s_user, s_day]
    s_user, s_day = np.repeat(s_user, reps), np.repeat(s_day, reps)
    start = rng.integers(0, 86_400 - 3_600, len(s_user))
    device = rng.choice(len(DEVICES), size=len(s_user), p=[0.35, 0.3, 0.25, 0.1])
    return Sessions(s_user, s_day, start, device)


def _categorical_rows(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """Sample one category per row of a (rows x K) probability matrix."""
    cum = np.cumsum(probs, axis=1)
    r = rng.random(len(probs))[:, None] * cum[:, -1:]
    return (cum < r).sum(axis=1).clip(0, probs.shape[1] - 1)


def _topics(
    rng: np.random.Generator, user: np.ndarray, day: np.ndarray, users: Users, cat: Catalogue, drifts: dict[str, int]
) -> np.ndarray:
    """Each interaction's topic: mostly the user's taste (rotated after a taste shift), sometimes the tenant's mix."""
    user_taste = users.taste[user]
    if "taste_shift" in drifts:
        shifted = day >= drifts["taste_shift"]
        user_taste[shifted] = np.roll(user_taste[shifted], 3, axis=1) * cat.present + 1e-9
    if "new_category" in drifts:
        user_taste[day >= drifts["new_category"], K - 1] += 0.5
    explore = rng.random(len(user)) < 0.2
    probs = np.where(explore[:, None], cat.mix[None, :] + 1e-9, user_taste)
    return _categorical_rows(rng, probs)


def _pick_items(rng: np.random.Generator, topic: np.ndarray, day: np.ndarray, cat: Catalogue) -> np.ndarray:
    """An item within each topic, by quality, among items already published; a quarter from the last 3 days.

    -1 where the topic has no item available yet.
    """
    n = len(topic)
    item = np.full(n, -1)
    fresh = rng.random(n) < 0.25
    r = rng.random(n)
    for t in range(K):
        sel = np.nonzero(topic == t)[0]
        cand = np.nonzero(cat.topic == t)[0]
        if len(sel) == 0 or len(cand) == 0:
            continue
        order = cand[np.lexsort((cat.second[cand], cat.avail_day[cand]))]
        pub = cat.avail_day[order]
        cumw = np.concatenate([[0.0], np.cumsum(np.exp(cat.quality[order]))])
        hi = np.searchsorted(pub, day[sel], side="right")
        lo = np.where(fresh[sel], np.searchsorted(pub, day[sel] - 3, side="left"), 0)
        lo = np.minimum(lo, hi)
        ok = hi > 0
        lo = np.where(hi > lo, lo, 0)
        target = cumw[lo] + r[sel] * (cumw[hi] - cumw[lo])
        pick = np.clip(np.searchsorted(cumw, target, side="right") - 1, 0, len(order) - 1)
        item[sel[ok]] = order[pick[ok]]
    return item


def _interactions(
    rng: np.random.Generator, s: Sessions, users: Users, cat: Catalogue, drifts: dict[str, int]
) -> Interactions:
    """1 + Poisson(2) items per session; interactions whose topic had nothing to pick are dropped."""
    n_inter = 1 + rng.poisson(2.0, len(s.user))
    sess = np.repeat(np.arange(len(s.user)), n_inter)
    user, day = s.user[sess], s.day[sess]
    pos = np.arange(len(sess)) - np.repeat(np.cumsum(n_inter) - n_inter, n_inter)
    topic = _topics(rng, user, day, users, cat, drifts)
    item = _pick_items(rng, topic, day, cat)
    keep = item >= 0
    return Interactions(sess[keep], user[keep], day[keep], pos[keep], item[keep])


def _engagement(
    rng: np.random.Generator, i: Interactions, users: Users, cat: Catalogue, drifts: dict[str, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(completed, liked, dwell seconds) per interaction: they follow taste match and quality."""
    n = len(i.sess)
    match = users.taste[i.user, cat.topic[i.item]] * cat.present.sum()
    logit = 0.9 * np.log(match + 0.05) + 0.6 * cat.quality[i.item] - 0.2
    complete = rng.random(n) < 1 / (1 + np.exp(-logit))
    like = rng.random(n) < 0.25 / (1 + np.exp(-logit + 1.0))
    dwell_scale = np.where(complete, 90.0, 12.0)
    if "dwell_change" in drifts:
        dwell_scale = np.where(i.day >= drifts["dwell_change"], dwell_scale * 0.4, dwell_scale)
    return complete, like, np.round(rng.lognormal(np.log(dwell_scale), 0.5), 1)


@dataclass
class EventColumns:
    """Events as integer codes, sorted by time (-1: no value)."""

    sess: np.ndarray
    user: np.ndarray
    item: np.ndarray
    type: np.ndarray
    sec: np.ndarray  # seconds since the window's first midnight
    dwell: np.ndarray
    topic: np.ndarray
    device: np.ndarray


def _events(
    rng: np.random.Generator,
    i: Interactions,
    s: Sessions,
    users: Users,
    cat: Catalogue,
    engagement: tuple[np.ndarray, np.ndarray, np.ndarray],
    days: int,
) -> EventColumns:
    """Interactions as events (click, view with dwell, complete or skip with dwell, like?), plus the
    catalogue's ``item_published`` and the ``cancel_subscription`` of users who churn."""
    complete, like, dwell = engagement
    t0 = (i.day * 86_400 + s.start[i.sess] + i.pos * 150).astype(np.int64)
    n_ev = 3 + like.astype(np.int64)
    e_i = np.repeat(np.arange(len(i.sess)), n_ev)
    e_k = np.arange(len(e_i)) - np.repeat(np.cumsum(n_ev) - n_ev, n_ev)
    etype = np.select([e_k == 0, e_k == 1, (e_k == 2) & complete[e_i], e_k == 2], [0, 1, 2, 3], default=4)
    d = dwell[e_i]
    e_sec = t0[e_i] + np.select([e_k == 0, e_k == 1], [0, 1], default=np.round(d).astype(np.int64) + 1 + e_k)
    e_dwell = np.where((e_k >= 1) & (e_k <= 2), d, np.nan)

    n_items = len(cat.topic)
    pub_sec = (cat.day * 86_400 + cat.second).astype(np.int64)
    c_user = np.nonzero(users.churns)[0]
    c_sec = (users.churn_day[c_user] * 86_400 + rng.integers(0, 86_400, len(c_user))).astype(np.int64)
    n_e, n_p, n_c = len(e_i), n_items, len(c_user)
    cols = EventColumns(
        sess=np.concatenate([i.sess[e_i], np.full(n_p + n_c, -1)]),
        user=np.concatenate([i.user[e_i], np.full(n_p, -1), c_user]),
        item=np.concatenate([i.item[e_i], np.arange(n_items), np.full(n_c, -1)]),
        type=np.concatenate([etype, np.full(n_p, 6), np.full(n_c, 5)]),
        sec=np.concatenate([e_sec, pub_sec, c_sec]),
        dwell=np.concatenate([e_dwell, np.full(n_p + n_c, np.nan)]),
        topic=np.concatenate([np.full(n_e, -1), cat.topic, np.full(n_c, -1)]),
        device=np.concatenate([s.device[i.sess[e_i]], np.full(n_p + n_c, -1)]),
    )
    order = np.argsort(cols.sec, kind="stable")
    for name in cols.__dataclass_fields__:
        setattr(cols, name, getattr(cols, name)[order])
    cols.sec = np.minimum(cols.sec, days * 86_400 - 1)  # a late completion stays inside the window
    return cols


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


def _masked(values: pa.Array, missing: np.ndarray) -> pa.Array:
    return pc.if_else(pa.array(missing), pa.nulls(len(values), values.type), values)


def _table(e: EventColumns, spec: TenantSpec, config: GenerationConfig, n_users: int, n_items: int) -> pa.Table:
    """The landing contract's columns, ids derived from ``(seed, tenant)`` so they never collide."""
    n = len(e.sec)
    base = datetime.combine(config.start_date, datetime.min.time(), tzinfo=UTC)
    micros = (int(base.timestamp()) + e.sec) * 1_000_000
    salt = np.uint64(zlib.crc32(f"{config.seed}:{spec.tenant_id}".encode()))
    event_key = (np.arange(n, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)) ^ (salt << np.uint64(32))
    session_key = (e.sess.astype(np.uint64) * np.uint64(0xBF58476D1CE4E5B9)) ^ salt
    return pa.table(
        {
            "event_id": _hex_ids(event_key),
            "tenant_id": _dictionary(np.zeros(n), [spec.tenant_id]),
            "user_id": _masked(_dictionary(np.maximum(e.user, 0), [f"u{j:06d}" for j in range(n_users)]), e.user < 0),
            "item_id": _masked(_dictionary(np.maximum(e.item, 0), [f"i{j:06d}" for j in range(n_items)]), e.item < 0),
            "event_type": _dictionary(e.type, EVENT_TYPES),
            "event_at": pa.array(micros, pa.timestamp("us", tz="UTC")),
            "session_id": _masked(_hex_ids(session_key, b"s"), e.sess < 0),
            "dwell_seconds": pa.array(e.dwell, pa.float64(), from_pandas=True),
            "topic": _masked(_dictionary(np.maximum(e.topic, 0), TOPIC_NAMES), e.topic < 0),
            "device": _masked(_dictionary(np.maximum(e.device, 0), DEVICES), e.device < 0),
        }
    )


def simulate_tenant(spec: TenantSpec, config: GenerationConfig) -> pa.Table:
    """All of one tenant's clean events over the window, sorted by time (an Arrow table)."""
    rng = tenant_rng(config.seed, spec.tenant_id)
    days = config.days
    first_day = 0 if spec.history_days is None else max(0, days - spec.history_days)
    drifts = {d.kind: d.from_day for d in config.drifts if d.tenant_id == spec.tenant_id}
    cat = _catalogue(rng, spec, days, first_day, drifts)
    users = _users(rng, spec, days, first_day, cat.present)
    sessions = _sessions(rng, users, days, config)
    inter = _interactions(rng, sessions, users, cat, drifts)
    engagement = _engagement(rng, inter, users, cat, drifts)
    events = _events(rng, inter, sessions, users, cat, engagement, days)
    return _table(events, spec, config, spec.users, len(cat.topic))
