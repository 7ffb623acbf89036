"""A real shop's export onboarded as a fleet with a source spec only: a week of Online Retail.

(The whole year runs in ``benchmarks/online_retail.py``.) Counts reconcile and match the facts
re-derived from the files: every row of the week is landed, quarantined with a reason or dropped
as a duplicate by exactly one tenant.
"""

from __future__ import annotations

from collections import Counter

import duckdb
import pytest

from tests import online_retail as retail

WEEK = retail.day_files()[:7]
pytestmark = pytest.mark.skipif(not WEEK, reason=retail.ABSENT)


def test_a_week_of_online_retail_reconciles_as_a_fleet(settings):
    tenants = retail.fleet(WEEK)
    retail.onboard(tenants)
    summaries = retail.import_fleet(settings, tenants, WEEK)
    facts = retail.facts(WEEK)

    total = Counter()
    for s in summaries.values():
        total.update({k: s[k] for k in ("rows_in", "landed", "duplicates_dropped")})
        total.update(s["quarantined"])
        assert s["rows_in"] == s["landed"] + sum(s["quarantined"].values()) + s["duplicates_dropped"]
        assert not s["problems"], s["problems"]
    assert total["rows_in"] == facts["rows"]  # each row is exactly one tenant's
    assert total["null_user_id"] == facts["without_customer"]  # guest checkouts: quarantined with a reason
    assert total["duplicates_dropped"] == facts["duplicates_with_customer"]
    assert total["landed"] == facts["rows"] - facts["without_customer"] - facts["duplicates_with_customer"]
    assert set(total) == {"rows_in", "landed", "duplicates_dropped", "null_user_id"}

    lake = settings.stores.lake.root
    with duckdb.connect() as con:
        con.execute("set enable_progress_bar = false")
        events = f"read_parquet('{lake}/*/*/*/part-0.parquet', hive_partitioning = true)"
        types = dict(con.sql(f"select event_type, count(*) from {events} group by 1").fetchall())
        assert types["return"] == facts["returns"] and set(types) == {"purchase", "return", "charge"}
        assert types["charge"] == facts["charges"] > 0  # postage and fees: kept, never an item
        bad_ids = con.sql(f"select count(*) from {events} where user_id like '%.%' or tenant_id <> tenant").fetchone()
        assert bad_ids == (0,)
        regions = dict(con.sql(f"select tenant, any_value(region) from {events} group by 1").fetchall())
    assert regions["united_kingdom"] == "intl" and regions["germany"] == "eu"
    # the same files again: nothing to do
    again = retail.import_fleet(settings, tenants[:2], WEEK)
    assert all(s["days_ingested"] == 0 and s["files_unchanged"] == len(WEEK) for s in again.values())
