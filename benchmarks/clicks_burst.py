"""A shop's clickstream through the README's commands, scored as the recommenders benchmark scores.

The shape of RetailRocket's `events.csv` (a real e-commerce site's 4.5 months, published for research on implicit
feedback: `timestamp,visitorid,event,itemid,transactionid`, Unix milliseconds, events `view`, `addtocart`,
`transaction`; 2,756,101 events of 1,407,580 visitors, 97% of them views, 2.5% add to carts, 0.8% transactions, so
most visitors come once and view a few items), synthesised at a smaller scale (seed 42): the data set itself is not
shipped and nothing is downloaded. Taste: 40 categories, items of one category with Zipf popularity, visitors with
1-2 favourite categories; a visit views items of its categories (a tenth by popularity alone) and views some again;
a view is added to the cart at 2.6%, a cart bought at 32%.

Each visitor's events are split 75/25 at random (seed 42, `ml.models.evaluate.stratified_random_split`, the
recommenders benchmark's protocol); the 75% goes through the product exactly as a tenant's engineer would
(`tenants add --interaction-types view,add_to_cart,purchase`, `tenants source` with a spec mapping the site's event
names, `import`, `features build`, `train`, `score`) and the served top 10 are judged on the items of the 25% the
visitor did not touch in the 75% (items seen in training removed), beside the classic families fitted on the same 75%.

    .venv/bin/python benchmarks/clicks_burst.py
    .venv/bin/python benchmarks/clicks_burst.py --visitors 300000 --items 60000 --events 600000
    .venv/bin/python benchmarks/clicks_burst.py --visitors 300000 --events 600000 --until features

`--until features` stops after the features build (its seconds and peak memory reported; the home kept under
benchmarks/out/ for `history_candidates.py --warehouse`).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import fresh_home, report
from ratings_burst import PEAK_RSS_GB, cli, judged, served_lists, span_seconds

from ml.models import evaluate, recsys

DAY_MS = 86_400_000
SPEC = """format: csv
columns:
  event_id: {hash: [timestamp, visitorid, event, itemid, transactionid]}
  user_id: visitorid
  item_id: itemid
  event_type: event
  event_at: timestamp
timestamp: {format: epoch_ms}
event_types: {view: view, addtocart: add_to_cart, transaction: purchase}
"""


def clicks(
    seed: int = 42,
    visitors: int = 100_000,
    items: int = 20_000,
    target: int = 200_000,
    span: tuple[str, str] = ("2015-05-03", "2015-09-18"),
    categories: int = 40,
) -> pd.DataFrame:
    """RetailRocket-shaped events: ``timestamp`` (Unix ms), ``visitorid``, ``event``, ``itemid``, ``transactionid``
    (empty but on a transaction), as the module docstring says; ``target``: about this many events in all;
    ``span``: the first and last day (ISO dates, UTC)."""
    rng = np.random.default_rng(seed)
    start, end = (int(seconds * 1000) for seconds in span_seconds(span))
    category = rng.integers(0, categories, items)
    popularity = 1.0 / (rng.permutation(items) + 1) ** 0.9
    members = [np.flatnonzero(category == c) for c in range(categories)]
    within = [np.cumsum(popularity[m]) / popularity[m].sum() for m in members]
    overall = np.cumsum(popularity) / popularity.sum()
    # views per visitor: most view one to three items, a few hundreds (a long tail), scaled to the target
    views = np.exp(rng.normal(0.0, 1.1, visitors))
    views = np.maximum(1, np.round(views * target / 1.035 / views.sum())).astype(int)
    rows: list[tuple[int, int, str, int, str]] = []
    transaction = 0
    for v in range(visitors):
        taste = rng.choice(categories, 1 + int(rng.random() < 0.4), replace=False)
        visits = 1 + int(rng.random() < 0.2) + int(rng.random() < 0.08)
        first = start + int(rng.random() * (end - start - 3 * DAY_MS))
        starts = [first + int(rng.uniform(3, 40) * DAY_MS) * s for s in range(visits)]
        seen: list[int] = []
        for n, at in enumerate(np.sort(rng.choice(starts, views[v]) + rng.integers(0, 1_800_000, views[v]))):
            at = int(min(at, end))
            if seen and rng.random() < 0.25:  # a view again of an item this visitor viewed
                item = seen[rng.integers(len(seen))]
            elif rng.random() < 0.1:
                item = int(np.searchsorted(overall, rng.random()))
            else:
                c = taste[rng.integers(len(taste))]
                item = int(members[c][min(np.searchsorted(within[c], rng.random()), len(members[c]) - 1)])
            seen.append(item)
            rows.append((at, v, "view", item, ""))
            if rng.random() < 0.026:
                rows.append((at + 60_000 + n, v, "addtocart", item, ""))
                if rng.random() < 0.32:
                    transaction += 1
                    rows.append((at + 600_000 + n, v, "transaction", item, str(transaction)))
    df = pd.DataFrame(rows, columns=["timestamp", "visitorid", "event", "itemid", "transactionid"])
    df["timestamp"] = df["timestamp"].clip(upper=end)
    return df.sort_values(["timestamp", "visitorid"], kind="mergesort")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--visitors", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--events", type=int, default=200_000, help="about this many events in all")
    parser.add_argument("--start", default="2015-05-03", help="the first day (ISO date)")
    parser.add_argument("--end", default="2015-09-18", help="the last day (ISO date)")
    parser.add_argument("--until", choices=["features", "score"], default="score", help="the last command run")
    args = parser.parse_args()
    home = fresh_home("clicks")
    started = time.perf_counter()
    df = clicks(visitors=args.visitors, items=args.items, target=args.events, span=(args.start, args.end))
    generated = round(time.perf_counter() - started, 1)
    train, test = (
        part.rename(columns={"user_id": "visitorid"})
        for part in evaluate.stratified_random_split(df.rename(columns={"visitorid": "user_id"}), 0.75, 42)
    )
    train.to_csv(home / "events.csv", index=False)
    (home / "spec.yaml").write_text(SPEC)
    seconds = {
        "generate": generated,
        "add": cli("tenants", "add", "shop", "--region", "eu", "--interaction-types", "view,add_to_cart,purchase"),
        "source": cli("tenants", "source", "shop", "--file", str(home / "spec.yaml")),
        "import": cli("import", "shop", str(home / "events.csv")),
        "features": cli("features", "build", "--tenant", "shop"),
    }
    if args.until == "features":
        report(
            "clicks_burst", home=str(home), shape=vars(args), events=len(df), seconds=seconds, peak_rss_gb=PEAK_RSS_GB
        )
        return
    seconds |= {"train": cli("train"), "score": cli("score")}
    relevant = _pairs(test).merge(_pairs(train), how="left", indicator=True)
    relevant = relevant[relevant["_merge"] == "left_only"].drop(columns="_merge")  # items seen in training removed
    events = pd.DataFrame({
        "user_id": train["visitorid"].astype(str), "item_id": train["itemid"].astype(str),
        "event_at": pd.to_datetime(train["timestamp"], unit="ms", utc=True),
    })  # fmt: skip
    rows = judged(
        served_lists(home, "shop"), relevant, recsys.Interactions.from_events(events), events["item_id"].nunique()
    )
    report(
        "clicks_burst",
        home=str(home),
        shape=vars(args),
        events=len(df),
        kinds=df["event"].value_counts().to_dict(),
        visitors_judged=int(relevant["user_id"].nunique()),
        train=len(train),
        test=len(test),
        relevant=len(relevant),
        seconds=seconds,
        peak_rss_gb=PEAK_RSS_GB,
        rows=rows,
    )


def _pairs(events: pd.DataFrame) -> pd.DataFrame:
    """Distinct ``user_id, item_id`` (text) of ``events``."""
    return events[["visitorid", "itemid"]].astype(str).drop_duplicates().set_axis(["user_id", "item_id"], axis=1)


if __name__ == "__main__":
    main()
