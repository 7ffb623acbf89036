"""How well a holdout rule chooses a tenant's classic family: a backtest over many test windows.

The product chooses the recommender family a tenant serves on one temporal holdout, the label window
before its serving cutoff (:mod:`ml.models.ranking`). A tenant of a few dozen active customers
judges a few dozen users there, and on the forward test of 2011-09-19..10-16 (benchmarks/README.md)
France's holdout chose all-time popularity, which SAR and EASE beat beyond chance on the test
window. This asks how often a rule's choice is that wrong, over every test window the data allow.

For each tenant and each test cutoff t (every --step days while ``t + --window`` is within the data),
each family of :func:`ml.models.ranking.families` is fitted on the history before t and judged on
``[t, t + window)`` (the test; the product's holdout rules and lists: :class:`RankingHoldout`). The
rules choose from the --pool label windows before t, ``[t - j * window, t - (j - 1) * window)``,
each judged by the family fitted on the history before it, or from the history before t:

- ``latest``: the best nDCG@10 on the last window (ties go to the simpler family);
- ``random``: the best under the stratified random protocol over the history before t
  (:meth:`RankingHoldout.random_split`: 75/25 of each user's items, seed 42);
- ``random under <n>``: the product's ``auto`` rule (:mod:`ml.models.train`): ``random`` where the last
  window judges fewer than n users or under ``MIN_JUDGED_SHARE`` of the users with history, else
  ``latest``; n was 30 before 2026-12-04 and 100 until 2026-12-05 (``ranking_holdout.MIN_JUDGED_USERS``);
- ``random unless beaten``: ``random``, unless the last window's best family beats that choice
  beyond chance there (paired bootstrap, 95%): the temporal holdout overrules the random protocol
  only where it can tell;
- ``product``: the product's ``auto`` rule since 2026-12-05: ``random under 100`` below that line,
  ``random unless beaten`` above it;
- ``pooled_<n>``: the best mean over the (window, user) pairs of the last n windows;
- ``personal``: the best personal family of the last window unless the best popularity list beats it
  beyond chance there (paired bootstrap, 95%);
- ``oracle``: the best on the test window (the bound no rule reaches).

Reported per rule: the mean test nDCG@10 of its choices, the regret (oracle minus it), how often a
family beat its choice beyond chance on the test window, and the mean difference from ``random
under 30`` with a 95% paired-bootstrap interval over the test windows (which overlap when --step is
below --window, so the interval is narrower than it should be). Families only: the re-rankers'
features are point in time, and the backtest does not build them.

    TENANTFLOW_DATASETS=/work/shared/datasets .venv/bin/python benchmarks/holdout_choice.py --min-customers 20

Reads Online Retail from ../shared/datasets/online-retail/ (or $TENANTFLOW_DATASETS); never copies it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import fresh_home, report
from quality import lake_events, retail_fleet

from ml.core.settings import get_settings
from ml.models import evaluate, ranking, ranking_holdout


def history_rows(events: pd.DataFrame) -> pd.DataFrame:
    """Lake events as ``interaction_history`` mart rows (one row per user, item and UTC day)."""
    day = pd.to_datetime(events["event_at"], utc=True).dt.tz_localize(None).dt.normalize()
    rows = events.assign(event_date=day).groupby(["user_id", "item_id", "event_date"], as_index=False).size()
    return rows.rename(columns={"size": "interactions"}).astype({"user_id": str, "item_id": str})


def judged(history: pd.DataFrame, cutoff: pd.Timestamp, window: int, recent_days: int) -> tuple[dict, float]:
    """Each family's per-user nDCG@10 on ``[cutoff, cutoff + window)``, fitted on the history before
    ``cutoff`` (users in the holdout's order; empty when the window judges nobody), and the share of
    the users with history that the window judges."""
    examples = pd.DataFrame({"user_id": [""], "item_id": [""], "cutoff_date": [cutoff.date()]})
    holdout = ranking.RankingHoldout.build(history, examples, window, recent_days=recent_days)
    if holdout is None:
        return {}, 0.0
    return {f.model.name: f.judged.per_user_ndcg for f in ranking.judge_families(holdout)}, holdout.judged_share()


def random_choice(history: pd.DataFrame, as_of: pd.Timestamp, recent_days: int) -> str:
    """The family the stratified random protocol over the history before ``as_of`` chooses."""
    holdout = ranking.RankingHoldout.random_split(history, as_of, recent_days=recent_days)
    assert holdout is not None
    return simplest_best({f.model.name: float(f.judged.per_user_ndcg.mean()) for f in ranking.judge_families(holdout)})


def simplest_best(scores: dict[str, float]) -> str:
    """The family with the highest score, ties to the simpler one (the product's order)."""
    return max(scores, key=lambda name: (scores[name], -ranking._simpler(name)))


def choices(windows: list[dict[str, np.ndarray]], share: float, pool: int, by_random: str) -> dict[str, str]:
    """Each rule's family, from the label windows before the test cutoff (newest first), the share
    of the users with history that the newest judges, and the random protocol's choice."""
    latest = windows[0]
    out = {"latest": simplest_best({n: float(v.mean()) for n, v in latest.items()}), "random": by_random}
    for n in range(2, pool + 1):
        pooled = {name: np.concatenate([w[name] for w in windows[:n] if name in w]) for name in latest}
        out[f"pooled_{n}"] = simplest_best({name: float(v.mean()) for name, v in pooled.items()})
    personal = {n: float(v.mean()) for n, v in latest.items() if not n.startswith("popularity")}
    popular = {n: float(v.mean()) for n, v in latest.items() if n.startswith("popularity")}
    mine, theirs = simplest_best(personal), simplest_best(popular)
    _, low, _ = evaluate.paired_bootstrap(latest[theirs], latest[mine])
    out["personal"] = theirs if low > 0 else mine
    # the product's auto protocol (ml.models.train): the random one where the newest window judges under
    # MIN_JUDGED_USERS users (30 before 2026-12-04, 100 since) or too small a share of the users
    users = len(next(iter(latest.values())))
    for fewest in (30, 100):
        few = users < fewest or share < ranking_holdout.MIN_JUDGED_SHARE
        out[f"random under {fewest}"] = by_random if few else out["latest"]
    # the random protocol's pick unless the newest window's best beats it there beyond chance (2026-12-05)
    top = out["latest"]
    beaten = (
        top != by_random and by_random in latest and evaluate.paired_bootstrap(latest[top], latest[by_random])[1] > 0
    )
    out["random unless beaten"] = top if beaten else by_random
    # the product's auto rule since 2026-12-05: the random pick where the window judges under 100 users (or too
    # small a share); beyond that, the random pick unless the window's best beats it there beyond chance. Since
    # 2026-12-05's second change the product also asks the window's best to lead the pick on the product of its
    # figures under both protocols (ml.models.ranking.overrule): it overrules only where this rule does, and this
    # one overruled on no United Kingdom window (benchmarks/README.md), so the choices here are the product's.
    out["product"] = (
        out["random under 100"]
        if users < 100 or share < ranking_holdout.MIN_JUDGED_SHARE
        else out["random unless beaten"]
    )
    return out


def backtest(tenant_id: str, events: pd.DataFrame, a: argparse.Namespace) -> list[dict]:
    """One row per test cutoff: each rule's choice and the test nDCG@10 of every family."""
    history = history_rows(events)
    first, last = history["event_date"].min(), history["event_date"].max()
    t = first + pd.Timedelta(days=a.first_after_days)
    rows, seen = [], {}  # a window is judged once: it is one cutoff's test and later cutoffs' label windows

    def window_at(cutoff: pd.Timestamp) -> tuple[dict, float]:
        if cutoff not in seen:
            seen[cutoff] = judged(history, cutoff, a.window, a.recent_days)
        return seen[cutoff]

    while t + pd.Timedelta(days=a.window) <= last + pd.Timedelta(days=1):
        started = time.perf_counter()
        test, _ = window_at(t)
        before = [window_at(t - pd.Timedelta(days=j * a.window)) for j in range(1, a.pool + 1)]
        windows = [w for w, _ in before]
        if test and all(windows):
            ndcg = {name: float(v.mean()) for name, v in test.items()}
            best = simplest_best(ndcg)
            by_random = random_choice(history, t, a.recent_days)
            chosen = choices(windows, before[0][1], a.pool, by_random) | {"oracle": best}
            beaten = {
                rule: bool(evaluate.paired_bootstrap(test[best], test[name])[1] > 0) for rule, name in chosen.items()
            }
            row = {
                "tenant_id": tenant_id,
                "test_cutoff": t.date().isoformat(),
                "test_users": len(test[best]),
                "holdout_users": [len(next(iter(w.values()))) for w in windows],
                "test_ndcg": {n: round(v, 4) for n, v in ndcg.items()},
                "chosen": chosen,
                "beaten_beyond_chance": beaten,
                "seconds": round(time.perf_counter() - started, 1),
            }
            rows.append(row)
            print(tenant_id, row["test_cutoff"], row["test_users"], row["holdout_users"], chosen, flush=True)
        t += pd.Timedelta(days=a.step)
    return rows


def summary(rows: list[dict]) -> list[dict]:
    """Per rule and tenant (and ``all``): mean test nDCG@10 of its choices, regret, times beaten."""
    out = []
    for tenant in [*dict.fromkeys(r["tenant_id"] for r in rows), "all"]:
        mine = [r for r in rows if tenant in ("all", r["tenant_id"])]
        for rule in mine[0]["chosen"]:
            got = np.array([r["test_ndcg"][r["chosen"][rule]] for r in mine])
            best = np.array([r["test_ndcg"][r["chosen"]["oracle"]] for r in mine])
            old = np.array([r["test_ndcg"][r["chosen"]["random under 30"]] for r in mine])
            mean, low, high = evaluate.paired_bootstrap(got, old)  # test windows resampled (they overlap)
            out.append(
                {
                    "tenant_id": tenant,
                    "rule": rule,
                    "windows": len(mine),
                    "mean_test_ndcg": round(float(got.mean()), 4),
                    "regret": round(float((best - got).mean()), 4),
                    "beaten_beyond_chance": sum(r["beaten_beyond_chance"][rule] for r in mine),
                    "chose_popularity": sum(r["chosen"][rule].startswith("popularity") for r in mine),
                    "vs_random_under_30": [round(mean, 4), round(low, 4), round(high, 4)],
                }
            )
        for family in mine[0]["test_ndcg"]:  # one family whatever the holdouts say, for reference
            got = np.array([r["test_ndcg"][family] for r in mine])
            out.append({"tenant_id": tenant, "rule": f"always {family}", "mean_test_ndcg": round(float(got.mean()), 4)})
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--min-customers", type=int, default=20, help="tenants: countries with this many customers")
    ap.add_argument("--max-customers", type=int, default=1000, help="leave out larger tenants (the United Kingdom)")
    ap.add_argument("--window", type=int, default=28, help="label and test window, days")
    ap.add_argument("--pool", type=int, default=4, help="label windows the pooled rules may use")
    ap.add_argument("--step", type=int, default=14, help="days between test cutoffs")
    ap.add_argument("--first-after-days", type=int, default=150, help="first test cutoff, days after the data start")
    ap.add_argument("--recent-days", type=int, default=49, help="the tenants' short window (recent popularity)")
    a = ap.parse_args()
    home = fresh_home("holdout-choice")
    settings = get_settings()
    rows = []
    for region, tenant_id in retail_fleet(a.min_customers):
        events = lake_events(settings, region, tenant_id)
        if events["user_id"].nunique() <= a.max_customers:
            rows += backtest(tenant_id, events, a)
    table = summary(rows)
    for r in table:
        tail = (
            f"  regret {r['regret']:.4f}  beaten {r['beaten_beyond_chance']}/{r['windows']}  popularity {r['chose_popularity']}"
            "  vs random under 30 {:+.4f} [{:+.4f}, {:+.4f}]".format(*r["vs_random_under_30"])
            if "regret" in r
            else ""
        )
        print(f"{r['tenant_id']:>16} {r['rule']:>20}  test nDCG@10 {r['mean_test_ndcg']:.4f}{tail}")
    report("holdout_choice", home=str(home), args=vars(a), summary=table, rows=rows)


if __name__ == "__main__":
    main()
