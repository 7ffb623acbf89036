"""A bursty ratings tenant through the README's commands, scored as the recommenders benchmark scores.

The shape of MovieLens 100k (943 users, 1,682 items, ~100,000 ratings from 1997-09 to 1998-04,
`u.data`: user, item, rating, Unix time, tab-separated, **no header line**; most users rate
dozens of films within a day or two and a third come back weeks later), synthesised (seed 42):
the data set itself is not shipped and nothing is downloaded. Taste is low-rank: 10 genres,
items of 1-3 genres with Zipf popularity, users with 1-3 favourite genres.

Each user's ratings are split 75/25 at random (seed 42, `ml.models.evaluate.stratified_random_split`,
the recommenders benchmark's protocol); the 75% goes through the product exactly as a tenant's
engineer would (`tenants add`, `tenants source` with a spec naming the header, `import`,
`features build`, `train`, `score`) and the served top 10 (`predictions.recommendations`) are
scored on the 25%: nDCG@10 (binary gain), P@10, R@10, MAP@10, HitRate@10, coverage, beside the
classic families fitted on the same 75% (`ml.models.recsys`).

    .venv/bin/python benchmarks/ratings_burst.py
    .venv/bin/python benchmarks/ratings_burst.py --users 6040 --items 3706 --ratings 1000209 \
        --start 2000-04-25 --end 2003-02-28   # the shape of MovieLens 1M (its counts and span)

`--retrain` trains again after scoring (the daily retrain's cost once EASE's weight is chosen).

`--min-rating R` onboards the tenant with `tenants add --min-rating R` (a lower rating is consumed, not liked) and
judges every list on the held-out ratings of R or more only (the liked films; the rest of the 25% is neither
relevant nor recommendable, as for the tenant); the families beside it learn from the same positives. `--judge-from R`
judges on those ratings without setting the threshold: the tenant's result without declaring it.
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import fresh_home, report

from ml.models import evaluate, recsys

K, DAY = 10, 86_400.0
SPEC = """format: csv
delimiter: "\\t"
header: [user_id, item_id, rating, timestamp]
columns:
  event_id: {hash: [user_id, item_id, timestamp]}
  user_id: user_id
  item_id: item_id
  event_type: {const: rating}
  event_at: timestamp
  value: rating
timestamp: {format: epoch_s}
"""


def span_seconds(span: tuple[str, str]) -> tuple[float, float]:
    """Unix seconds of the first day's start and the last day's last minute (``span``: ISO dates, UTC)."""
    start = datetime.fromisoformat(span[0]).replace(tzinfo=UTC).timestamp()
    return start, datetime.fromisoformat(span[1]).replace(tzinfo=UTC).timestamp() + DAY - 60


def ratings(
    seed: int = 42,
    users: int = 943,
    items: int = 1682,
    genres: int = 10,
    target: int = 100_000,
    span: tuple[str, str] = ("1997-09-20", "1998-04-22"),
    fewest: int = 20,
) -> pd.DataFrame:
    """MovieLens-100k-shaped ratings: ``user_id, item_id, rating, timestamp`` (module docstring); ``span``: the first
    and last day (ISO dates, UTC); ``fewest``: each user's fewest ratings (MovieLens keeps users with 20 or more;
    Amazon's "5-core" subsets 5)."""
    rng = np.random.default_rng(seed)
    start, end = span_seconds(span)
    item_genres = np.zeros((items, genres))
    for i in range(items):
        item_genres[i, rng.choice(genres, rng.choice([1, 2, 3], p=[0.5, 0.35, 0.15]), replace=False)] = 1.0
    item_genres /= item_genres.sum(1, keepdims=True)
    popularity = 1.0 / (rng.permutation(items) + 1)  # Zipf, exponent 1
    quality = rng.normal(0, 0.5, items) + 0.3 * np.log(popularity / popularity.mean())
    available = start + np.where(rng.random(items) < 0.85, 0.0, rng.uniform(0, end - start, items))
    taste = np.full((users, genres), 0.03)
    for u in range(users):
        k = rng.choice([1, 2, 3], p=[0.3, 0.45, 0.25])
        taste[u, rng.choice(genres, k, replace=False)] += rng.dirichlet(np.ones(k))
    taste /= taste.sum(1, keepdims=True)
    bias = rng.normal(0, 0.4, users)
    n = np.clip(np.exp(rng.normal(np.log(65), 1.0, users)), fewest, 700)
    for _ in range(20):
        n = np.clip(n * target / n.sum(), fewest, 700)
    n = np.minimum(np.round(n).astype(int), items // 2)
    first = start + rng.beta(1.2, 1.5, users) * (end - start - 3 * DAY)
    rows = []
    for u in range(users):
        bursts = 1 + int(rng.random() < 0.3) + int(rng.random() < 0.1)
        shares = rng.dirichlet(np.ones(bursts) * 2) if bursts > 1 else np.array([1.0])
        shares[0] = max(shares[0], 0.6)
        counts = rng.multinomial(n[u], shares / shares.sum())
        starts = [first[u]]
        for _ in range(1, bursts):
            starts.append(starts[-1] + rng.uniform(14, 60) * DAY)
        times = []
        for s, c in enumerate(counts):
            s0 = min(starts[s], end - 6 * DAY)  # a return after the window folds into the last week
            offsets = np.where(rng.random(c) < 0.7, rng.uniform(0, 0.2, c), np.minimum(rng.exponential(1.5, c), 5.0))
            times.extend(np.minimum(s0 + offsets * DAY, end))
        affinity = item_genres @ taste[u]
        weight, taken = popularity * (affinity + 0.02) ** 2, np.zeros(items, dtype=bool)
        for t in np.sort(times):
            p = np.where((available <= t) & ~taken, weight, 0.0)
            i = rng.choice(items, p=p / p.sum())
            taken[i] = True
            z = 2.9 + 4.0 * (affinity[i] - affinity.mean()) + quality[i] + bias[u] + rng.normal(0, 0.9)
            rows.append((u + 1, i + 1, int(np.clip(np.round(z), 1, 5)), int(t)))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"]).sort_values(
        ["timestamp", "user_id"]
    )


# each command's peak resident memory in GB (the largest process of it: ``wait4``'s ``ru_maxrss``), by its leading
# words (``features build``, ``import films``, ``train``)
PEAK_RSS_GB: dict[str, float] = {}


def cli(*args: str) -> float:
    """Run one `tenantflow` command as a user would; its seconds (its peak memory: :data:`PEAK_RSS_GB`).

    Raises:
        subprocess.CalledProcessError: the command failed (its output attached).
    """
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen([str(Path(sys.executable).parent / "tenantflow"), *args], stdout=out, stderr=out)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            out.seek(0)
            raise subprocess.CalledProcessError(proc.returncode, proc.args, out.read())
    words = " ".join(itertools.takewhile(str.isalpha, args))
    PEAK_RSS_GB[words] = max(PEAK_RSS_GB.get(words, 0.0), round(usage.ru_maxrss / 2**20, 2))  # Linux: KiB
    return round(time.perf_counter() - started, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=943)
    parser.add_argument("--items", type=int, default=1682)
    parser.add_argument(
        "--ratings",
        type=int,
        default=100_000,
        help="about this many ratings in all (each user rates --fewest to 700 items, at most half the catalogue: a target outside those bounds is not reached)",
    )
    parser.add_argument("--fewest", type=int, default=20, help="each user's fewest ratings (MovieLens: 20)")
    parser.add_argument("--start", default="1997-09-20", help="the first day of ratings (ISO date)")
    parser.add_argument("--end", default="1998-04-22", help="the last day of ratings (ISO date)")
    parser.add_argument(
        "--retrain",
        action="store_true",
        help="after scoring, `train --force` again on the same snapshot: EASE's weight chosen for the first "
        "version is reused (ml.models.recsys.tuning), its seconds are 'retrain'",
    )
    parser.add_argument(
        "--import-only",
        action="store_true",
        help="stop after the import: a history import's cost alone (nothing is scored; the row holds its seconds)",
    )
    parser.add_argument("--min-rating", type=float, help="the tenant's min_rating (and --judge-from)")
    parser.add_argument("--judge-from", type=float, help="relevant: held-out ratings of this or more (default: all)")
    args = parser.parse_args()
    judge_from = args.min_rating if args.judge_from is None else args.judge_from
    home = fresh_home("ratings")
    started = time.perf_counter()
    df = ratings(
        users=args.users, items=args.items, target=args.ratings, span=(args.start, args.end), fewest=args.fewest
    )
    df = df.astype({"user_id": str, "item_id": str})
    generated = round(time.perf_counter() - started, 1)
    train, test = evaluate.stratified_random_split(df, 0.75, 42)
    train.to_csv(home / "u.train.data", sep="\t", header=False, index=False)  # no header line, as u.data
    (home / "spec.yaml").write_text(SPEC)
    seconds = {
        "generate": generated,
        "add": cli("tenants", "add", "films", "--region", "eu", *_threshold(args.min_rating)),
        "source": cli("tenants", "source", "films", "--file", str(home / "spec.yaml")),
        "import": cli("import", "films", str(home / "u.train.data")),
    }
    if args.import_only:
        print(f"import {seconds['import']} s ({len(train):,} ratings fed)")
        report("ratings_burst_import", home=str(home), shape=vars(args), train=len(train), seconds=seconds)
        return
    seconds |= {
        "features": cli("features", "build", "--tenant", "films"),
        "train": cli("train"),
        "score": cli("score"),
    }
    if args.retrain:
        seconds["retrain"] = cli("train", "--force", "--reason", "benchmark-retrain")
    relevant = test[test["rating"] >= (-np.inf if judge_from is None else judge_from)][["user_id", "item_id"]]
    events = train.assign(event_at=pd.to_datetime(train["timestamp"], unit="s", utc=True))
    if args.min_rating is not None:  # a lower rating: consumed (never recommended back), nothing learnt from
        events["interactions"] = (events["rating"] >= args.min_rating).astype(float)
    data, catalogue = recsys.Interactions.from_events(events), len(set(train["item_id"]))
    rows = judged(served_lists(home, "films"), relevant, data, catalogue)
    report(
        "ratings_burst",
        home=str(home),
        shape=vars(args),
        ratings=len(df),
        train=len(train),
        test=len(test),
        relevant=len(relevant),
        seconds=seconds,
        peak_rss_gb=PEAK_RSS_GB,
        rows=rows,
    )


def served_lists(home: Path, tenant: str) -> pd.DataFrame:
    """The tenant's served top 10 (``predictions.recommendations`` of the eu pool warehouse under ``home``)."""
    with duckdb.connect(str(home / "warehouse" / "region=eu" / "pool.duckdb"), read_only=True) as con:
        return con.execute(
            "select user_id, item_id, rank, model_version from predictions.recommendations where tenant_id = ?",
            [tenant],
        ).df()


def judged(served: pd.DataFrame, relevant: pd.DataFrame, data: recsys.Interactions, catalogue: int) -> list[dict]:
    """The served lists (their coverage of ``catalogue`` items: every fed item) and the classic families fitted on
    ``data`` (the fed part) scored on ``relevant`` (``user_id, item_id``), printed and returned as rows
    (``_scored``; a family's ``seconds``)."""
    rows = [_scored("served", served, relevant, catalogue)]
    for model in (recsys.Popularity(), recsys.ItemKNN(neighbours=100), recsys.SAR(), recsys.EASE(), recsys.ALS()):
        started = time.perf_counter()
        try:
            lists = recsys.recommend(recsys.fitted(model, data), data, np.sort(relevant["user_id"].unique()), K)
        except recsys.CatalogueTooLarge as e:  # EASE above its max_items: the product competes without it too
            print(f"{model.name:>12}  not fitted: {e}")
            continue
        rows.append(_scored(model.name, lists, relevant, len(data.items)))
        rows[-1]["seconds"] = round(time.perf_counter() - started, 1)
    for r in rows:
        print(f"{r['lists']:>12}  nDCG@10 {r['ndcg_at_10']:.4f} [{r['ndcg_at_10_low']:.4f}, {r['ndcg_at_10_high']:.4f}]"
              f"  P@10 {r['precision_at_10']:.4f}  R@10 {r['recall_at_10']:.4f}  users {r['users']}")  # fmt: skip
    return rows


def _threshold(min_rating: float | None) -> list[str]:
    return [] if min_rating is None else ["--min-rating", repr(min_rating)]


def _scored(name: str, lists: pd.DataFrame, relevant: pd.DataFrame, catalogue: int) -> dict:
    ev = evaluate.evaluate_lists(lists, relevant, K, catalogue)
    low, high = evaluate.bootstrap_interval(ev.per_user["ndcg"].to_numpy())
    served_users = int(lists["user_id"].nunique())
    return {"lists": name, **{m: round(v, 4) for m, v in ev.metrics().items()}, "ndcg_at_10_low": round(low, 4),
            "ndcg_at_10_high": round(high, 4), "users_with_lists": served_users}  # fmt: skip


if __name__ == "__main__":
    main()
