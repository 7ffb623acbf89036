"""Which training cutoffs make a tenant's retrained re-ranker what it is: refitted on subsets of its cutoffs.

A tenant's recommender re-ranker (``tenant``: LightGBM LambdaRank on the candidates' features) learns from weekly
cutoffs, each the features of that day and the label window after it. After an abrupt change of the users' tastes
(the demo's ``umbrella``), one cutoff has features from before the change and labels from after it. This refits the
re-ranker on the tenant's latest snapshot as its training does (``ml.models.train.train_tenant``: the same examples,
holdout and features), on every cutoff, on every cutoff but one (each in turn) and on the newest alone, and judges
each on the training's temporal holdout beside the champion's served booster. Read-only: nothing is registered.
``--params`` (JSON) and ``--rounds`` override the kind's LightGBM parameters and boosting rounds (the same
fits with another recipe). ``--subsamples N`` adds N fits, each on a random share of the queries (a user at a cutoff)
as large as all cutoffs but one, drawn across every week (seeds 0..N-1): how much the re-ranker moves with which
examples it learns from when no week is left out, and the bag of them: the mean of their scores (bagging).
``--seeds N`` adds N fits on every cutoff with LightGBM's ``seed`` 0..N-1: how much a fit moves with its seed alone
(the columns each tree draws; with the kind's bagging by query, the queries too), and the bag of them.
``--every-cutoff-only`` skips the subsets of cutoffs (one fit on every cutoff, then the subsamples and seeds): to
compare recipes by their spread.

    .venv/bin/python benchmarks/retrain_cutoffs.py --home var --tenant umbrella   # after `make demo`
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", type=Path, default=Path("var"), help="a home with a trained tenant (make demo's: var)")
    ap.add_argument("--tenant", default="umbrella")
    ap.add_argument("--params", default="{}", help='LightGBM parameters to override, JSON: {"learning_rate": 0.04}')
    ap.add_argument("--rounds", type=int, default=0, help="boosting rounds (default: the kind's)")
    ap.add_argument("--subsamples", type=int, default=0, help="fits on random shares of the queries (all weeks)")
    ap.add_argument("--seeds", type=int, default=0, help="fits on every cutoff with LightGBM's seed 0..N-1")
    ap.add_argument("--every-cutoff-only", action="store_true", help="skip the fits that leave out cutoffs")
    args = ap.parse_args()
    os.environ["TENANTFLOW_HOME"] = str(args.home.resolve())
    import json
    from dataclasses import replace

    import numpy as np
    import pandas as pd
    from _common import report

    from ml.core.settings import get_settings
    from ml.core.tenants import TenantStore
    from ml.data import snapshots
    from ml.models import registry
    from ml.models.fit import catalogue_size, feature_names, fit, load_examples, predict, time_holdout
    from ml.models.kinds import get_kind
    from ml.models.refit import load_booster
    from ml.models.train import _history, _ranking_holdout

    settings = get_settings()
    kind, tenant = get_kind("recommender"), TenantStore(settings).get(args.tenant)
    overrides = json.loads(args.params)
    kind = replace(kind, params={**kind.params, **overrides}, num_boost_round=args.rounds or kind.num_boost_round)
    snap = snapshots.latest(settings, tenant.region, tenant.tenant_id)
    assert snap is not None and snap.serving_cutoff, f"tenant {tenant.tenant_id}: no snapshot in {args.home}"
    window = kind.label_days(snap.windows)
    features, history = feature_names(snap, kind), _history(kind, snap)
    latest = pd.Timestamp(snap.serving_cutoff) - pd.Timedelta(days=window)
    train, holdout = time_holdout(load_examples(snap, kind), window, latest)
    recent = int(snap.windows.get("short_window_days") or 7)
    judged = _ranking_holdout(
        tenant, history, holdout, window, catalogue_size(snap, holdout), snap.serving_cutoff, True, recent_days=recent
    )
    assert judged is not None

    def ndcg(booster: Any = None, scores: Any = None) -> float:
        scores = predict(kind, booster, judged.examples, features) if scores is None else scores
        return round(float(judged.judge(judged.reranker_lists(scores)).metrics["ndcg_at_10"]), 4)

    champion = registry.version_by_alias(registry.model_name(kind.name, tenant.tenant_id), "champion", settings)
    rows = {
        "champion": {
            "version": str(champion.version),
            "ndcg_at_10": ndcg(load_booster(champion.name, str(champion.version), settings)),
        }
    }
    cutoffs = [str(pd.Timestamp(c).date()) for c in sorted(train["cutoff_date"].unique())]
    subsets = {"every cutoff": cutoffs, **{f"all but {c}": [x for x in cutoffs if x != c] for c in cutoffs}}
    subsets[f"{cutoffs[-1]} alone"] = cutoffs[-1:]
    subsets = {"every cutoff": cutoffs} if args.every_cutoff_only else subsets
    dates = pd.to_datetime(train["cutoff_date"]).dt.date.astype(str)
    masks = {name: dates.isin(keep) for name, keep in subsets.items()}  # (masks: a frame each would not fit)
    queries = train[kind.group].unique()
    share = (len(cutoffs) - 1) / len(cutoffs)  # as many queries as all cutoffs but one hold, on average
    for seed in range(args.subsamples):
        picked = np.random.default_rng(seed).choice(queries, size=round(share * len(queries)), replace=False)
        masks[f"random {share:.0%} of the queries, seed {seed}"] = train[kind.group].isin(picked)
    recipes = dict.fromkeys(masks, kind)
    for seed in range(args.seeds):
        masks[f"every cutoff, LightGBM seed {seed}"] = masks["every cutoff"]
        recipes[f"every cutoff, LightGBM seed {seed}"] = replace(kind, params={**kind.params, "seed": seed})
    bags: dict[str, list[Any]] = {"random shares": [], "seeds": []}  # the fits' scores of the holdout's candidates
    for name, mask in masks.items():
        rows_ = train[mask]
        started = time.perf_counter()
        booster = fit(recipes[name], rows_, features, settings.train)
        seconds = round(time.perf_counter() - started, 1)
        scores = predict(kind, booster, judged.examples, features)
        for bag, picked in (("random shares", "random "), ("seeds", "every cutoff, LightGBM")):
            bags[bag] += [scores] if name.startswith(picked) else []
        rows[name] = {"rows": len(rows_), "ndcg_at_10": ndcg(scores=scores), "fit_seconds": seconds}
        print(f"{name:>44}: nDCG@10 {rows[name]['ndcg_at_10']:.4f} ({len(rows_):,} rows)", flush=True)
    for name, picked in (("the random shares", "random "), ("every cutoff, the seeds", "every cutoff, LightGBM")):
        figures = [r["ndcg_at_10"] for fitted, r in rows.items() if fitted.startswith(picked)]
        if len(figures) > 1:  # the fits' spread: their mean and sample standard deviation
            rows[name] = {"mean": round(float(np.mean(figures)), 4), "sd": round(float(np.std(figures, ddof=1)), 4)}
            print(f"{name:>44}: mean {rows[name]['mean']:.4f}, sd {rows[name]['sd']:.4f}", flush=True)
    for fits, bag in bags.items():  # bagging (Breiman 1996): the mean of the fits' scores ranks a query's candidates
        if len(bag) > 1:
            name = f"mean of the {len(bag)} {fits}' scores"
            rows[name] = {"ndcg_at_10": ndcg(scores=np.mean(bag, axis=0))}
            print(f"{name:>44}: nDCG@10 {rows[name]['ndcg_at_10']:.4f}", flush=True)
    print(f"{'champion v' + rows['champion']['version']:>44}: nDCG@10 {rows['champion']['ndcg_at_10']:.4f}")
    report(
        "retrain_cutoffs",
        tenant=tenant.tenant_id,
        holdout_cutoff=str(latest.date()),
        holdout_users=len(judged.users),
        params=overrides,
        every_cutoff_only=args.every_cutoff_only,
        rounds=kind.num_boost_round,
        snapshot=snap.snapshot_id,
        results=rows,
    )


if __name__ == "__main__":
    main()
