"""The recommender's competition: classic families and LightGBM re-rankers on one temporal holdout,
the winner registered with its family, and a family champion served in batch and by the API.

Runs on the trained world of tests/models/conftest.py (before test_training.py, which it leaves
as it found it: the champion it replaces is put back).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ml.core.settings import TrainSettings
from ml.core.tenants import TenantStore
from ml.core.warehouse import connect as warehouse_connect
from ml.core.warehouse import warehouses
from ml.data import publish, snapshots
from ml.models import fit, ranking, ranking_holdout, recsys, registry, score, tracking
from ml.models.kinds import get_kind, online_marts
from ml.models.kinds.recommender import RecommendationRequest, recommend
from ml.ops.status import format_table, status
from ml.serving.models import ModelStore

RECOMMENDER = get_kind("recommender")
FAMILIES = {"popularity", "popularity_7d", "item_knn", "sar", "ease", "als"}


def test_every_family_competes_on_one_holdout_and_the_winner_never_loses_to_popularity(world):
    settings, results = world
    c = registry.client(settings)
    for tid in ("acme", "globex", "umbra", "initech"):
        r = results[(tid, "recommender")]
        run = c.get_run(r["run_id"])
        m = run.data.metrics
        candidates = {k.split(".")[1]: v for k, v in m.items() if k.startswith("candidate.")}
        assert FAMILIES | {"tenant"} <= set(candidates), (tid, sorted(candidates))
        assert m["ndcg_at_10"] >= max(m["baseline_ndcg_at_10"], candidates["popularity"], candidates["popularity_7d"])
        chosen = run.data.params["chosen"]  # the best, or the random protocol's pick a re-ranker did not beat
        assert (
            m["ndcg_at_10"] == max(candidates.values())
            or "not better beyond chance" in chosen
            or ("best by the random protocol" in chosen and "random_ndcg_at_10" in m)
        ), (tid, chosen)
        assert m["ndcg_at_10_low"] <= m["ndcg_at_10"] <= m["ndcg_at_10_high"]
        assert 0 < m["candidate_recall"] <= 1 and m["users"] > 0
        mv = c.get_model_version(registry.model_name("recommender", tid), r["version"])
        assert mv.tags["family"] == r["family"] == run.data.tags["family"]
        # status says how many users the metrics stand on, and by which protocol
        judged = registry.describe("recommender", tid, settings)["holdout"]
        assert judged.pop("temporal_judged_share") >= ranking_holdout.MIN_JUDGED_SHARE  # it speaks for the users served
        # the random protocol picks the strongest family unless the temporal holdout's best beats it beyond chance
        assert judged.pop("families_protocol") in ("random", "temporal")
        assert judged == {"users": int(m["users"]), "protocol": "temporal"}
        shown = format_table(status(settings, [tid]))
        assert f"{int(m['users']):,} users judged, temporal holdout" in shown, shown


def _candidate(name: str, per_user: np.ndarray, family: str) -> fit.Candidate:
    return fit.Candidate(name, None, metrics={"ndcg_at_10": float(per_user.mean())}, family=family, per_user=per_user)


def test_a_reranker_must_beat_the_strongest_family_beyond_chance():
    rng = np.random.default_rng(0)
    ease = rng.uniform(0, 1, 400)
    popular = np.clip(ease - 0.2, 0, 1)
    barely = _candidate("tenant", np.clip(ease + rng.normal(0.002, 0.05, 400), 0, 1), fit.LIGHTGBM)
    clearly = _candidate("tenant", np.clip(ease + 0.05, 0, 1), fit.LIGHTGBM)
    families = [_candidate("tenant", ease, "ease"), _candidate("tenant", popular, "popularity")]
    assert barely.metrics["ndcg_at_10"] > families[0].metrics["ndcg_at_10"]
    winner, why = ranking.choose([barely, *families])
    assert winner.family == "ease" and "not better beyond chance" in why
    winner, why = ranking.choose([clearly, *families])
    assert winner is clearly and "vs ease" in why
    # a re-ranker below popularity never wins, and the champion's family is refreshed unless beaten by the margin
    worse = _candidate("tenant", np.clip(popular - 0.1, 0, 1), fit.LIGHTGBM)
    assert ranking.choose([worse, *families])[0].family == "ease"
    sar = _candidate("tenant", np.clip(ease + 0.001, 0, 1), "sar")
    assert ranking.choose([sar, *families], incumbent="ease", margin=0.002)[0].family == "ease"
    assert ranking.choose([sar, *families], incumbent=None)[0].family == "sar"
    # a re-ranker champion is no family to keep: the best candidate wins, not the first re-ranker
    weaker = _candidate("global", np.clip(ease + 0.04, 0, 1), fit.LIGHTGBM)
    assert ranking.choose([weaker, clearly, *families], incumbent=fit.LIGHTGBM)[0] is clearly


@dataclass
class _Context:
    """What the API hands an endpoint (ml.serving.state), built from the real stores."""

    tenant_id: str
    seen_items: str
    published: Any
    loaded: Any

    @property
    def features(self) -> Any:
        return self.published

    def model(self, arm: str) -> Any:
        return self.loaded

    def arm(self, user_id: str) -> str:
        return "champion"


def test_a_family_champion_is_served_in_batch_and_by_the_api_with_personal_lists_for_inactive_users(world):
    settings, _ = world
    tid, name = "umbra", registry.model_name("recommender", "umbra")
    c = registry.client(settings)
    before = str(c.get_model_version_by_alias(name, "champion").version)
    tenant = TenantStore(settings).get(tid)
    snap = snapshots.latest(settings, tenant.region, tid)
    history = pd.read_parquet(snap.table("interaction_history"))
    train, holdout = fit.split(snap, RECOMMENDER)
    judged = ranking.RankingHoldout.build(history, holdout, RECOMMENDER.label_window_days)
    [ease] = [f for f in ranking.judge_families(judged) if f.model.name == "ease"]
    cand = fit.Candidate(
        "tenant",
        None,
        metrics=ease.judged.metrics,
        family="ease",
        recommender=ranking.refit(ease.model, history, snap.serving_cutoff),
        per_user=ease.judged.per_user_ndcg,
    )
    training = tracking.Training(
        RECOMMENDER, tenant, cand, [cand], [], snap.snapshot_id, snap.manifest_hash, "test", len(train), holdout,
        {}, None, ranking=judged,
    )  # fmt: skip
    # the re-ranker champion first: its candidates come from every user's whole history too
    wh = next(w for w in warehouses(TenantStore(settings).list()) if w.key == tenant.warehouse_key)
    score.score_warehouse(wh, settings, tenants=[tid])
    with warehouse_connect(wh.path(settings), read_only=True) as con:
        served = con.execute(
            "select r.user_id, r.item_id, r.rank, c.user_events_long from predictions.recommendations r "
            "join ranking_candidates c using (tenant_id, user_id, item_id) where r.tenant_id = ? and r.model_version = ?",
            [tid, before],
        ).df()
    asleep = served[served["user_events_long"] == 0]
    assert set(served["user_id"]) == set(history["user_id"]) and asleep["user_id"].nunique() > 0
    assert asleep[asleep["rank"] == 1]["item_id"].nunique() > 1, "inactive users got one list for all"

    r = tracking.log_and_register(training, TrainSettings(), settings)
    assert r["promoted"] is False and "vs champion" in r["reason"], r  # the re-ranker champion is better here
    # both named as status names a version: family and what it was trained on
    assert re.match(r"challenger \(ease, tenant\) at \d\.\d{4} vs ", r["reason"]), r
    assert "ndcg_at_10 worse by " in r["reason"] and r["reason"].endswith("whose lower end is below the margin 0.002")
    assert re.search(r" vs champion v\d+ \(lightgbm, (tenant|fine_tuned|global)\) at \d\.\d{4} ", r["reason"]), r
    mv = c.get_model_version(name, r["version"])
    assert mv.tags["family"] == "ease" and mv.tags["features"] == "[]"
    registry.promote("recommender", tid, r["version"], "test: serve a classic family", settings, who="tester")
    try:
        wh = next(w for w in warehouses(TenantStore(settings).list()) if w.key == tenant.warehouse_key)
        out = score.score_warehouse(wh, settings, tenants=[tid])
        assert out["tenants"][tid]["recommender"]["model_version"] == r["version"]
        with warehouse_connect(wh.path(settings), read_only=True) as con:
            recs = con.execute("select * from predictions.recommendations where tenant_id = ?", [tid]).df()
            recs = recs[recs["model_version"] == r["version"]]
            hist = con.execute("select * from interaction_history where tenant_id = ?", [tid]).df()
            active = {u for (u,) in con.execute(
                "select distinct user_id from ranking_candidates where tenant_id = ? and user_events_long > 0", [tid]
            ).fetchall()}  # fmt: skip
        users = set(hist["user_id"])
        inactive = users - active
        assert inactive and users == set(recs["user_id"])  # every user with history, active or not
        assert recs.groupby("user_id")["rank"].max().min() == 10
        consumed = recs.merge(hist[["user_id", "item_id"]].drop_duplicates(), on=["user_id", "item_id"])
        assert consumed.empty, "a consumed item was recommended under the exclude policy"
        firsts = recs[recs["user_id"].isin(inactive) & (recs["rank"] == 1)]["item_id"]
        assert firsts.nunique() > 1, "inactive users got one list for all, not personal lists"

        # the API: the same model from the registry, the published history, the same list
        loaded = ModelStore(settings)._load(name, r["version"])
        assert isinstance(loaded.recommender, recsys.EASE) and loaded.booster is None
        with warehouse_connect(wh.path(settings), read_only=True) as con:
            publish.publish_tenant(con, settings, tenant.region, tid, online_marts())
        meta = publish.current(settings, tenant.region, tid)
        assert meta is not None
        feats = publish.PublishedFeatures.load(meta, online_marts(), settings)
        user = sorted(inactive)[0]
        served = recommend(RecommendationRequest(user_id=user), _Context(tid, "exclude", feats, loaded))
        batch = recs[recs["user_id"] == user].sort_values("rank")["item_id"].tolist()
        assert served.body["arm"] == "champion" and [i["item_id"] for i in served.body["items"]] == batch
        explained = recommend(
            RecommendationRequest(user_id=user, explain=True), _Context(tid, "exclude", feats, loaded)
        )
        reasons = [i["explanation"] for i in explained.body["items"]]
        assert all(r and all(t["feature"].startswith("history:") for t in r) for r in reasons), reasons
        skip = batch[:2]
        served = recommend(RecommendationRequest(user_id=user, exclude=skip), _Context(tid, "exclude", feats, loaded))
        items = [i["item_id"] for i in served.body["items"]]
        assert len(items) == 10 and items[:8] == batch[2:] and not set(skip) & set(items)
        unknown = recommend(RecommendationRequest(user_id="nobody-at-all"), _Context(tid, "exclude", feats, loaded))
        assert unknown.body["arm"] == "cold_start"
    finally:
        registry.promote("recommender", tid, before, "test: back to the re-ranker", settings, who="tester")
