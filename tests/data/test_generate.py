"""The synthetic SaaS: deterministic, structured, learnable, different per tenant."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import timedelta

import numpy as np
import pandas as pd
import pyarrow.compute as pc
import pytest

from ml.data.generate import generate
from ml.data.generate.config import Drift, Faults, TenantSpec
from ml.data.generate.simulate import simulate_tenant
from tests.world import small_config


def _digests(root):
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    cfg = small_config(faults=True)
    generate(cfg, tmp_path / "a")
    generate(cfg, tmp_path / "b")
    generate(replace(cfg, seed=8), tmp_path / "c")
    a, b, c = _digests(tmp_path / "a"), _digests(tmp_path / "b"), _digests(tmp_path / "c")
    assert a == b and len(a) >= 12
    common = a.keys() & c.keys()
    assert len(common) >= 12 and all(a[k] != c[k] for k in common if "events-0001" in k)


def test_adding_a_tenant_leaves_the_others_unchanged():
    cfg = small_config()
    more = replace(cfg, tenants=[*cfg.tenants, TenantSpec("zeta", "eu", users=100, items=30)])
    assert simulate_tenant(cfg.tenants[0], cfg).equals(simulate_tenant(more.tenants[0], more))


def test_events_are_structured():
    cfg = small_config(days=10)
    t = simulate_tenant(cfg.tenants[0], cfg).to_pandas()
    assert set(t.event_type.astype(str)) == {
        "click",
        "view",
        "complete",
        "skip",
        "like",
        "cancel_subscription",
        "item_published",
    }
    assert t.event_id.is_unique
    assert t.event_at.is_monotonic_increasing
    published = t[t.event_type == "item_published"].groupby("item_id", observed=True).event_at.min()
    clicks = t[t.event_type == "click"]
    # every clicked item exists in the catalogue and was published before the click
    assert (clicks.event_at.to_numpy() >= published.reindex(clicks.item_id.astype(str)).to_numpy()).all()
    cancels = t[t.event_type == "cancel_subscription"]
    assert cancels.user_id.is_unique and len(cancels) > 0
    last_cancel = cancels.set_index("user_id").event_at
    after = t[t.user_id.isin(last_cancel.index) & (t.event_type != "cancel_subscription")]
    assert (after.event_at.to_numpy() < last_cancel.reindex(after.user_id).to_numpy()).all(), (
        "no activity after cancelling"
    )
    assert (t.loc[t.event_type == "view", "dwell_seconds"] > 0).all()


def _topic_clicks(table):
    df = table.to_pandas()
    topic = df[df.event_type == "item_published"].set_index("item_id").topic
    c = df[df.event_type == "click"].copy()
    c["topic"] = topic.reindex(c.item_id.astype(str)).to_numpy()
    c["day"] = (c.event_at.dt.normalize() - df.event_at.min().normalize()).dt.days
    return c


def test_tastes_are_learnable_personalisation_beats_popularity():
    cfg = small_config(days=20)
    c = _topic_clicks(simulate_tenant(cfg.tenants[0], cfg))
    train, test = c[c.day < 14], c[c.day >= 14]
    fav = train.groupby("user_id", observed=True).topic.agg(lambda s: s.value_counts().index[0])
    popular = train.topic.value_counts().index[0]
    test = test[test.user_id.isin(fav.index)]
    personal = (test.topic.to_numpy() == fav.reindex(test.user_id).to_numpy()).mean()
    global_ = (test.topic == popular).mean()
    assert personal > 1.5 * global_, (personal, global_)


def test_tenants_differ():
    cfg = small_config(days=5)
    mixes = []
    for spec in cfg.tenants:
        t = simulate_tenant(spec, cfg)
        published = t.filter(pc.equal(t.column("event_type"), "item_published"))
        counts = published.column("topic").to_pandas().value_counts(normalize=True)
        mixes.append(counts)
    assert mixes[0].index[0] != mixes[1].index[0] or abs(mixes[0].iloc[0] - mixes[1].iloc[0]) > 0.05


def test_taste_shift_drift_changes_topics_after_the_day():
    cfg = small_config(days=20)
    base = _topic_clicks(simulate_tenant(cfg.tenants[0], cfg))
    drifted = _topic_clicks(simulate_tenant(cfg.tenants[0], replace(cfg, drifts=[Drift("acme", "taste_shift", 10)])))
    before = lambda c: c[c.day < 10].topic.value_counts(normalize=True)  # noqa: E731
    after = lambda c: c[c.day >= 10].topic.value_counts(normalize=True)  # noqa: E731
    assert before(base).round(6).equals(before(drifted).round(6))  # identical before the drift day
    tv = 0.5 * after(base).subtract(after(drifted), fill_value=0).abs().sum()
    assert tv > 0.3, tv


@pytest.mark.parametrize("kind", ["dwell_change", "new_category"])
def test_other_drifts_move_their_distribution(kind):
    cfg = small_config(days=14)
    base = simulate_tenant(cfg.tenants[0], cfg).to_pandas()
    drifted = simulate_tenant(cfg.tenants[0], replace(cfg, drifts=[Drift("acme", kind, 7)])).to_pandas()
    late = lambda df: df[df.event_at >= df.event_at.min() + np.timedelta64(8, "D")]  # noqa: E731
    if kind == "dwell_change":
        assert late(drifted).dwell_seconds.median() < 0.7 * late(base).dwell_seconds.median()
    else:
        assert "ai-shorts" in set(late(drifted).topic.dropna()) and "ai-shorts" not in set(base.topic.dropna())


def test_fault_injection_writes_every_fault_kind(tmp_path):
    cfg = small_config(faults=True)
    generate(cfg, tmp_path)
    folder = tmp_path / "region=eu" / "tenant=globex"
    texts = b"".join(p.read_bytes() for p in folder.rglob("*.jsonl"))
    assert b'"page_scroll"' in texts and b"someone-else" in texts and b"2099-01-01" in texts
    # month-old events in a day's drop (past the 7-day lateness rule, but real times)
    times = [
        json.loads(line)["event_at"] for line in texts.splitlines() if line.startswith(b"{") and b'"event_at"' in line
    ]
    oldest = min(pd.Timestamp(t) for t in times if t and isinstance(t, str))
    assert pd.Timestamp(cfg.start_date, tz="UTC") - oldest >= pd.Timedelta(days=20)
    assert b"not json at all" in texts or b'{"event_id": "x", "user_id": \n' in texts
    assert any(p.stat().st_size == 0 for p in folder.rglob("*.jsonl")), "an empty file"
    with pytest.raises(ValueError, match="unknown fault kinds"):
        Faults("globex", kinds=("gremlins",))


def test_drops_follow_the_landing_contract():
    from ml.core.contract import LANDING_COLUMNS

    cfg = small_config(days=2)
    # a content platform's ten columns: no value, quantity or price
    assert simulate_tenant(cfg.tenants[0], cfg).column_names == list(LANDING_COLUMNS[:10])


def test_landing_days_in_two_parts_gives_the_same_bytes_as_at_once(tmp_path):
    cfg = small_config(days=6, drifts=[Drift("acme", "taste_shift", 4)])
    generate(cfg, tmp_path / "all")
    generate(replace(cfg, land_days=(0, 4)), tmp_path / "parts")
    first = _digests(tmp_path / "parts")
    fourth_day = (cfg.start_date + timedelta(days=4)).isoformat()
    assert first and all(k.split("date=")[1][:10] < fourth_day for k in first), "only days 0..3 landed"
    generate(replace(cfg, land_days=(4, 6)), tmp_path / "parts")
    assert _digests(tmp_path / "parts") == _digests(tmp_path / "all")


def test_generate_writes_for_tenants_onboarded_by_name(settings, capsys):
    """``generate --tenant ID`` writes for a tenant onboarded with ``tenants add`` (in its region, its registry row
    untouched, ``--register`` or not); a tenant not onboarded is refused with what to do, and nothing is written."""
    from ml.core.tenants import TenantStore
    from ml.ops.cli import main

    common = ["--users", "40", "--items", "20", "--days", "2", "--end-date", "2026-11-20"]
    assert main(["tenants", "add", "news-co", "--region", "us", "--seen-items", "allow"]) == 0
    assert main(["generate", "--tenant", "news-co", "--register", *common]) == 0
    assert "for 1 tenants" in capsys.readouterr().out
    landing = settings.stores.landing
    assert landing.days("us", "news-co") and not list(landing.root.glob("region=eu/*"))
    assert TenantStore(settings).get("news-co").seen_items == "allow"  # kept, not registered again
    assert main(["generate", "--tenant", "shop-co", *common]) == 2
    assert "tenant 'shop-co' is not onboarded: `tenantflow tenants add shop-co --region eu` first" in " ".join(
        capsys.readouterr().err.split()
    )
    # the same days again would land beside the first run's files: refused; so are an id that is none, and a
    # removed tenant's (never reused)
    assert main(["generate", "--tenant", "news-co", *common]) == 2
    assert "tenant 'news-co' already has landing files on 2 day(s)" in " ".join(capsys.readouterr().err.split())
    assert main(["generate", "--tenant", "Bad Id!", *common]) == 2 and "Bad Id!" in capsys.readouterr().err
    assert main(["tenants", "add", "gone-co", "--region", "eu"]) == main(["tenants", "remove", "gone-co"]) == 0
    assert main(["generate", "--tenant", "gone-co", "--register", *common]) == 2
    assert "was removed, and a removed id is never reused" in " ".join(capsys.readouterr().err.split())


def test_registering_a_fleet_keeps_onboarded_tenants_entries_and_refuses_one_in_another_region(settings, capsys):
    """``generate --tenants 2 --register`` keeps the entry of a fleet tenant already onboarded (its consent to
    share data, its settings) and registers the others; a fleet that would land an onboarded tenant's events in
    another region is refused before anything is stored or written."""
    from ml.core.tenants import TenantStore
    from ml.ops.cli import main

    common = ["--tenants", "2", "--users", "30", "--items", "15", "--days", "2", "--end-date", "2026-11-20"]
    assert main(["tenants", "add", "t0001", "--region", "eu", "--share-data", "no", "--min-rating", "4"]) == 0
    assert main(["generate", "--register", *common]) == 0
    kept = TenantStore(settings).get("t0001")
    assert (kept.share_data, kept.min_rating) == (False, 4.0) and TenantStore(settings).get("t0002").region == "us"
    capsys.readouterr()
    assert main(["tenants", "add", "t0004", "--region", "eu"]) == 0  # the fourth of a fleet of four is in us
    assert main(["generate", "--register", *common[2:], "--tenants", "4"]) == 2
    said = " ".join(capsys.readouterr().err.split())
    assert "tenant t0004 is onboarded in region eu, and the generated tenants put it in us" in said, said
    assert not settings.stores.landing.days("us", "t0004") and len(TenantStore(settings).list()) == 3, "t0003 too"


def test_a_named_tenants_events_do_not_depend_on_the_others_named_with_it():
    """``generate --tenant b`` writes b's events whether or not ``--tenant a`` comes first (the same seed, the same
    events: a second part of a run, or one tenant generated again)."""
    from ml.data.generate.config import fleet_config

    alone = fleet_config(1, seed=3, named=[("b", "eu")]).tenants
    second = fleet_config(2, seed=3, named=[("a", "us"), ("b", "eu")]).tenants
    assert alone == second[1:]
