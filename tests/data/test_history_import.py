"""History import: a new tenant's past, landed by event time, idempotently, without the lateness rule."""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import pandas as pd
import pytest

from ml.core.tenant_seed import seed_from_file
from ml.core.tenants import Tenant, TenantStore
from ml.core.warehouse import connect as warehouse_connect
from ml.data.ingest.history import import_history
from ml.models import recsys
from ml.ops.cli import main
from ml.ops.status import status

TODAY = date(2026, 11, 30)
# a shop's order lines from a year before onboarding, its own columns, times in London
EXPORT = """Order,Sku,Qty,Price,When,Customer,Shop
A1,S1,2,3.5,2025-06-01 23:30:00,17850.0,north
A1,S2,1,10,2025-06-01 23:30:00,17850.0,north
A2,S1,1,3.5,2025-06-02 10:00:00,,north
C3,S1,-1,3.5,2025-06-03 09:00:00,13047.0,north
A4,S3,1,2,2025-06-03 09:00:00,13047.0,south
A5,S3,1,2,not a time,13047.0,north
A6,S3,1,2,2027-01-01 00:00:00,13047.0,north
A1,S1,2,3.5,2025-06-01 23:30:00,17850.0,north
"""
SPEC = {
    "columns": {
        "event_id": {"hash": ["Order", "Sku", "Qty", "Price", "When", "Customer"]},
        "tenant_id": "Shop",
        "user_id": "Customer",
        "item_id": "Sku",
        "event_type": {"expr": "case when starts_with(\"Order\", 'C') then 'return' else 'purchase' end"},
        "event_at": "When",
        "quantity": "Qty",
        "price": "Price",
    },
    "timestamp": {"timezone": "Europe/London"},
    "numeric_ids": ["user_id"],
    "rows": {"other_tenant": "skip"},
}


@pytest.fixture
def north(settings, tmp_path):
    TenantStore(settings).add(Tenant("north", "eu"))
    (tmp_path / "spec.json").write_text(json.dumps(SPEC))
    assert main(["tenants", "source", "north", "--file", str(tmp_path / "spec.json")]) == 0
    (tmp_path / "export.csv").write_text(EXPORT)
    return settings


def _partitions(settings, store) -> dict[str, pd.DataFrame]:
    root = store.tenant_dir("eu", "north")
    return {p.parent.name[5:]: pd.read_parquet(p) for p in sorted(root.glob("date=*/part-0.parquet"))}


def test_history_lands_by_event_time_without_the_lateness_rule(north, tmp_path):
    result = import_history(north, TenantStore(north).get("north"), [tmp_path / "export.csv"], today=TODAY)
    s = result.summary()
    # 2025-06-01 23:30 in London (BST) is 22:30 UTC: the row's day is its UTC day
    lake = _partitions(north, north.stores.lake)
    assert {d: len(f) for d, f in lake.items() if len(f)} == {"2025-06-01": 2, "2025-06-03": 1}
    assert sorted(lake["2025-06-01"].event_id.map(len)) == [64, 64]  # the hash of the row's content
    assert lake["2025-06-01"].user_id.tolist() == ["17850", "17850"]
    assert lake["2025-06-03"][["event_type", "quantity", "price"]].values.tolist() == [["return", -1.0, 3.5]]
    # 7 of the tenant's rows (one is the south shop's, left to it), one exact duplicate
    assert (s["rows_in"], s["landed"], s["duplicates_dropped"], s["other_tenant_rows"]) == (7, 3, 1, 1)
    assert s["rows_read"] == 7
    assert s["quarantined"] == {"bad_timestamp": 1, "null_user_id": 1, "timestamp_in_future": 1}
    quarantine = _partitions(north, north.stores.quarantine)
    # what cannot be placed in time lands on the import's day, with the raw record as sent
    bad = quarantine[TODAY.isoformat()].set_index("reason")
    assert json.loads(bad.loc["bad_timestamp", "raw_line"])["When"] == "not a time"
    assert bad.loc["bad_timestamp", "source_file"] == "export.csv"
    assert quarantine["2025-06-02"].reason.tolist() == ["null_user_id"]
    # status's last lake day is the last with rows, not the import's day of quarantined rows only
    assert status(north)[0]["lake_last_day"] == "2025-06-03"
    assert all(r.reconciles for r in result.reports)
    # each day's checks are its own: a clean day passes though another day of the run had bad rows
    assert {r.date: r.suite_success for r in result.reports} == {
        "2025-06-01": True,
        "2025-06-02": False,
        "2025-06-03": True,
        TODAY.isoformat(): False,
    }


def test_importing_the_same_files_again_changes_nothing(north, tmp_path):
    tenant = TenantStore(north).get("north")
    import_history(north, tenant, [tmp_path / "export.csv"], today=TODAY)
    lake = north.stores.lake.tenant_dir("eu", "north")
    before = {p: p.stat().st_mtime_ns for p in lake.rglob("*") if p.is_file()}
    again = import_history(north, tenant, [tmp_path / "export.csv"], today=TODAY).summary()
    assert (again["days_ingested"], again["files_unchanged"]) == (0, 1)
    assert {p: p.stat().st_mtime_ns for p in lake.rglob("*") if p.is_file()} == before


def test_a_changed_spec_replaces_the_files_history_and_empties_dates_it_left(north, tmp_path):
    tenant = TenantStore(north).get("north")
    import_history(north, tenant, [tmp_path / "export.csv"], today=TODAY)
    utc = {**SPEC, "timestamp": {"timezone": "UTC"}}  # 23:30 is now 23:30 UTC: still 2025-06-01
    utc["rows"] = {"other_tenant": "skip", "missing_user": "drop"}
    (tmp_path / "spec.json").write_text(json.dumps(utc))
    assert main(["tenants", "source", "north", "--file", str(tmp_path / "spec.json")]) == 0
    s = import_history(north, tenant, [tmp_path / "export.csv"], today=TODAY).summary()
    assert s["dropped"] == {"null_user_id": 1} and "null_user_id" not in s["quarantined"]
    landing = north.stores.landing.tenant_dir("eu", "north")
    assert len(list(landing.glob("date=*/history-*.parquet"))) == 4  # 06-01, 06-02, 06-03 and today
    assert sum(len(f) for f in _partitions(north, north.stores.lake).values()) == 3


def test_the_cli_imports_and_names_a_missing_file(north, tmp_path, capsys):
    assert main(["import", "north", str(tmp_path / "export.csv"), "--json"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert (out["landed"], [d["date"] for d in out["per_day"]][:3]) == (3, ["2025-06-01", "2025-06-02", "2025-06-03"])
    # progress on stderr, one line per file and one for the ingest (no terminal: no bar)
    assert (
        "[1/2] import north: read export.csv" in captured.err
        and f"[2/2] import north: ingested {len(out['per_day'])} dates" in captured.err
    )
    assert main(["import", "north", str(tmp_path / "nope.csv")]) != 0
    assert "nope.csv" in capsys.readouterr().err
    # a second export with one row of a day already landed: the day is rebuilt whole, and the summary tells the
    # export's rows (one) from the day's (all four)
    (tmp_path / "more.csv").write_text(EXPORT.splitlines()[0] + "\nA7,S2,1,10,2025-06-01 08:00:00,17850.0,north\n")
    assert main(["import", "north", str(tmp_path / "more.csv")]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "1 of its rows read), 1 days ingested whole (every landed file of the day)" in printed
    assert "4 rows in, 3 landed" in printed  # its two rows from export.csv (one a duplicate), and the new one


def test_the_import_says_to_rebuild_from_its_first_date_only_where_the_tenant_has_features(north, tmp_path, capsys):
    from ml.data.feature_checks import write_health

    assert main(["import", "north", str(tmp_path / "export.csv")]) == 0
    out = " ".join(capsys.readouterr().out.split())  # (Rich wraps lines at the console's width)
    assert "builds the tenant's features from its whole history" in out and "--rebuild-from" not in out
    write_health(north, "north", {"healthy": True, "health_problems": []})  # a features build has run
    (tmp_path / "more.csv").write_text(EXPORT.replace("2025-06-0", "2025-05-2"))
    assert main(["import", "north", str(tmp_path / "more.csv")]) == 0
    assert "features build --tenant north --rebuild-from 2025-05-21`" in " ".join(capsys.readouterr().out.split())


def test_a_tenants_history_reaches_a_warehouse_other_tenants_already_filled(north, tmp_path):
    # incremental activity models read the last week only: per tenant, so a tenant new to the
    # warehouse (its whole history just imported) is read whole

    from ml.core.warehouse import warehouses
    from ml.data.dbt import dbt_vars, run_dbt

    store = TenantStore(north)
    store.add(Tenant("live", "eu"))
    recent = "event_id,user_id,item_id,event_type,event_at\ne1,u1,i1,click,2026-11-20T09:00:00Z\n"
    (tmp_path / "recent.csv").write_text(recent)
    import_history(north, store.get("live"), [tmp_path / "recent.csv"], today=TODAY)
    select = ["run", "--select", "+int_user_activity__daily"]

    def build() -> list[tuple]:
        [wh] = warehouses(store.list())
        assert run_dbt(select, north, wh, dbt_vars(north, wh))["success"]
        with warehouse_connect(wh.path(north), read_only=True) as con:
            return con.sql(
                "select tenant_id, min(activity_date)::varchar from int_user_activity__daily group by 1 order by 1"
            ).fetchall()

    assert build() == [("live", "2026-11-20")]
    import_history(north, store.get("north"), [tmp_path / "export.csv"], today=TODAY)
    assert build() == [("live", "2026-11-20"), ("north", "2025-06-01")]


def test_a_spec_change_that_makes_lines_charges_takes_them_out_of_the_built_activity(north, tmp_path):
    """A tenant re-imports under a spec that lands a line as a charge (no item) and rebuilds from
    its first date: the incremental activity models drop the item's day and the line from the
    user's day, as a fresh build would; the merge on the models' keys alone kept both."""
    from ml.core.warehouse import warehouses
    from ml.data.dbt import dbt_vars, run_dbt

    store = TenantStore(north)
    select = ["run", "--select", "+int_item_activity__daily", "+int_user_activity__daily"]

    def build(rebuild_from: str | None = None) -> tuple[list[tuple], list[tuple]]:
        [wh] = warehouses(store.list())
        assert run_dbt(select, north, wh, dbt_vars(north, wh, rebuild_from))["success"]
        with warehouse_connect(wh.path(north), read_only=True) as con:
            return (
                con.sql(
                    "select item_id, activity_date::varchar from int_item_activity__daily order by 1, 2"
                ).fetchall(),
                con.sql(
                    "select user_id, activity_date::varchar, events from int_user_activity__daily order by 1, 2"
                ).fetchall(),
            )

    import_history(north, store.get("north"), [tmp_path / "export.csv"], today=TODAY)
    items, users = build()
    assert ("S2", "2025-06-01") in items and ("17850", "2025-06-01", 2) in users
    build()  # an incremental run that changes nothing keeps every row
    assert build() == (items, users)
    event_type = "case when Sku = 'S2' then 'charge' when starts_with(\"Order\", 'C') then 'return' else 'purchase' end"
    spec = {**SPEC, "columns": {**SPEC["columns"], "event_type": {"expr": event_type}}}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    assert main(["tenants", "source", "north", "--file", str(tmp_path / "spec.json")]) == 0
    import_history(north, store.get("north"), [tmp_path / "export.csv"], today=TODAY)
    assert build("2025-06-01") == (
        [i for i in items if i[0] != "S2"],
        [(u, d, n - 1) if (u, d) == ("17850", "2025-06-01") else (u, d, n) for u, d, n in users],
    )


def test_a_contract_tenants_history_keeps_raw_records(settings, tmp_path):
    # no spec: the file is in the landing contract, yet its rows leave it for history files
    TenantStore(settings).add(Tenant("plain", "eu"))
    rows = "event_id,user_id,item_id,event_type,event_at\ne1,u1,i1,click,2025-06-01T09:00:00Z\ne2,,i1,click,2025-06-01T10:00:00Z\n"
    (tmp_path / "plain.csv").write_text(rows)
    s = import_history(settings, TenantStore(settings).get("plain"), [tmp_path / "plain.csv"], today=TODAY).summary()
    assert (s["landed"], s["quarantined"]) == (1, {"null_user_id": 1})
    [q] = [pd.read_parquet(p) for p in settings.stores.quarantine.root.rglob("part-0.parquet")]
    assert json.loads(q.raw_line[0]) == {
        "event_id": "e2",
        "user_id": None,
        "item_id": "i1",
        "event_type": "click",
        "event_at": "2025-06-01T10:00:00Z",
    }
    assert (q.source_file[0], q.line_no[0]) == ("plain.csv", 3)


def test_a_charge_needs_its_user_but_no_item(settings, tmp_path):
    """An order's fee line may come without a code (a charge is never an item); without a customer it is
    a guest's, quarantined as any user event without a user."""
    TenantStore(settings).add(Tenant("shop", "eu"))
    rows = (
        "event_id,user_id,item_id,event_type,event_at\n"
        "e1,u1,,charge,2025-06-01T09:00:00Z\ne2,u1,POST,charge,2025-06-01T09:00:00Z\n"
        "e3,,POST,charge,2025-06-01T10:00:00Z\ne4,u1,,purchase,2025-06-01T09:00:00Z\n"
    )
    (tmp_path / "shop.csv").write_text(rows)
    s = import_history(settings, TenantStore(settings).get("shop"), [tmp_path / "shop.csv"], today=TODAY).summary()
    assert (s["landed"], s["quarantined"]) == (2, {"null_user_id": 1, "null_item_id": 1})


def test_an_import_that_stopped_before_ingesting_is_finished_by_its_rerun(north, tmp_path):
    tenant = TenantStore(north).get("north")
    import_history(north, tenant, [tmp_path / "export.csv"], today=TODAY)
    for manifest in north.stores.lake.tenant_dir("eu", "north").rglob("_manifest.json"):
        manifest.unlink()  # as if killed after writing the history files, before ingesting them
    s = import_history(north, tenant, [tmp_path / "export.csv"], today=TODAY).summary()
    assert (s["landed"], s["days_ingested"]) == (3, 4)


def test_what_an_import_cannot_place_is_quarantined_never_a_crash(north, tmp_path):
    tenant = TenantStore(north).get("north")
    header = EXPORT.splitlines()[0]
    odd = ["A7,S1,1,2,infinity,1,north", "A8,S1,1,2,0001-01-01 00:00:00,1,north", "A9,S1,1,2,3000-01-01,1,north"]
    (tmp_path / "odd.csv").write_text("\n".join([header, *odd, "A10,broken"]) + "\n")
    (tmp_path / "bad.csv").write_text(header + "\nonly,broken\n")
    s = import_history(north, tenant, [tmp_path / "odd.csv", tmp_path / "bad.csv"], today=TODAY).summary()
    # north's export is shared (rows.other_tenant: skip): its broken lines are nobody's known rows
    assert (s["quarantined"], s["unattributed_lines"]) == ({"bad_timestamp": 3}, 2)


def test_a_spec_that_no_longer_fits_a_file_keeps_what_it_landed(north, tmp_path):
    tenant = TenantStore(north).get("north")
    import_history(north, tenant, [tmp_path / "export.csv"], today=TODAY)
    broken = {**SPEC, "columns": {**SPEC["columns"], "item_id": {"expr": "upper(NoSuchColumn)"}}}
    (tmp_path / "spec.json").write_text(json.dumps(broken))
    assert main(["tenants", "source", "north", "--file", str(tmp_path / "spec.json")]) == 0
    s = import_history(north, tenant, [tmp_path / "export.csv"], today=TODAY).summary()
    assert s["days_ingested"] == 0 and "schema_mismatch" in s["problems"][0]
    assert sum(len(f) for f in _partitions(north, north.stores.lake).values()) == 3


def test_a_file_without_the_tenants_rows_is_not_imported_before(north, tmp_path):
    (tmp_path / "south.csv").write_text(EXPORT.splitlines()[0] + "\nA4,S3,1,2,2025-06-03 09:00:00,13047.0,south\n")
    s = import_history(north, TenantStore(north).get("north"), [tmp_path / "south.csv"], today=TODAY).summary()
    assert (s["files_unchanged"], s["files_without_rows"], s["other_tenant_rows"]) == (0, 1, 1)


def test_a_spec_leaving_out_a_required_column_names_it(north, tmp_path):
    spec = {**SPEC, "columns": {k: v for k, v in SPEC["columns"].items() if k != "event_at"}}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    assert main(["tenants", "source", "north", "--file", str(tmp_path / "spec.json")]) == 0
    s = import_history(north, TenantStore(north).get("north"), [tmp_path / "export.csv"], today=TODAY).summary()
    assert any("lacks columns ['event_at']" in p for p in s["problems"])
    # and the quarantine of the import's day, all typed, reads as one table with pandas
    assert len(pd.read_parquet(north.stores.quarantine.tenant_dir("eu", "north"))) == s["quarantined"]["bad_timestamp"]


def test_history_imported_out_of_date_order_keeps_an_event_once(north, tmp_path):
    """The same event id a few days apart, the later date imported first: the copy on the earliest
    day stays, as a rebuild of every day from landing gives, and the later day is rebuilt."""
    spec = {**SPEC, "columns": {**SPEC["columns"], "event_id": "Order"}}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    assert main(["tenants", "source", "north", "--file", str(tmp_path / "spec.json")]) == 0
    header = EXPORT.splitlines()[0]
    (tmp_path / "june5.csv").write_text(header + "\nA9,S1,1,3.5,2025-06-05 10:00:00,17850.0,north\n")
    (tmp_path / "june3.csv").write_text(header + "\nA9,S1,1,3.5,2025-06-03 10:00:00,17850.0,north\n")
    tenant = TenantStore(north).get("north")
    first = import_history(north, tenant, [tmp_path / "june5.csv"], today=TODAY).summary()
    second = import_history(north, tenant, [tmp_path / "june3.csv"], today=TODAY).summary()
    assert (first["landed"], second["days_ingested"], second["duplicates_dropped"]) == (1, 2, 1)
    lake = _partitions(north, north.stores.lake)
    assert {d: f.event_id.tolist() for d, f in lake.items()} == {"2025-06-03": ["A9"], "2025-06-05": []}


def test_a_duplicate_lands_when_its_earlier_copy_no_longer_does(north, tmp_path):
    """A spec change quarantines the earlier copy: the later day, which had dropped its copy as a
    duplicate, is rebuilt and the event lands there (before, it was in no lake partition)."""
    header = EXPORT.splitlines()[0]
    spec = {**SPEC, "columns": {**SPEC["columns"], "event_id": "Order", "event_type": "Order"}}
    spec["columns"]["event_type"] = {"expr": "case when Qty = '9' then 'tap' else 'purchase' end"}
    (tmp_path / "a.csv").write_text(header + "\nX1,S1,9,3.5,2025-06-05 10:00:00,17850.0,north\n")
    (tmp_path / "b.csv").write_text(header + "\nX1,S1,1,3.5,2025-06-10 10:00:00,17850.0,north\n")
    tenant = TenantStore(north).get("north")
    for event_types in ({"tap": "purchase"}, {}):
        (tmp_path / "spec.json").write_text(json.dumps({**spec, "event_types": event_types}))
        assert main(["tenants", "source", "north", "--file", str(tmp_path / "spec.json")]) == 0
        import_history(north, tenant, [tmp_path / "a.csv", tmp_path / "b.csv"], today=TODAY)
        lake = {d: f.event_id.tolist() for d, f in _partitions(north, north.stores.lake).items() if len(f)}
        assert lake == ({"2025-06-05": ["X1"]} if event_types else {"2025-06-10": ["X1"]})


def test_one_event_in_live_drops_eight_days_apart_lands_once(settings):
    """An event at 00:30 fits the drop of the day before it (an hour of clock skew) and the drop a
    week after it (7 days late): drops 8 days apart can carry one event."""
    from ml.data.ingest.run import ingest_tenants

    TenantStore(settings).add(Tenant("plain", "eu"))
    head = "event_id,user_id,item_id,event_type,event_at\n"
    for day, other in ((date(2026, 11, 19), "A1"), (date(2026, 11, 27), "B1")):
        folder = settings.stores.landing.day_dir("eu", "plain", day)
        folder.mkdir(parents=True)
        (folder / "a.csv").write_text(
            head + f"X1,u1,i1,click,2026-11-20T00:30:00Z\n{other},u1,i2,click,{day}T10:00:00Z\n"
        )
    [first] = ingest_tenants(["plain"], date(2026, 11, 19), date(2026, 11, 20), settings)
    [second] = ingest_tenants(["plain"], date(2026, 11, 27), date(2026, 11, 28), settings)
    assert (first["landed"], second["landed"], second["duplicates_dropped"]) == (2, 1, 1)


def test_unix_time_in_the_wrong_unit_is_a_bad_timestamp_not_a_1970_event(north, tmp_path):
    spec = {**SPEC, "timestamp": {"format": "epoch_ms"}}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    assert main(["tenants", "source", "north", "--file", str(tmp_path / "spec.json")]) == 0
    header = EXPORT.splitlines()[0]
    # seconds where milliseconds were declared (January 1970), then a right one (2025-06-01 10:00 UTC)
    (tmp_path / "epoch.csv").write_text(
        header + "\nA1,S1,1,3.5,1748772000,17850.0,north\nA2,S1,1,3.5,1748772000000,17850.0,north\n"
    )
    s = import_history(north, TenantStore(north).get("north"), [tmp_path / "epoch.csv"], today=TODAY).summary()
    assert (s["landed"], s["quarantined"]) == (1, {"bad_timestamp": 1})
    assert [d for d, f in _partitions(north, north.stores.lake).items() if len(f)] == ["2025-06-01"]


def test_lines_of_a_shared_export_naming_no_tenant_are_nobodys_never_copied(north, tmp_path):
    """A shared export read by tenants of two regions: a malformed line and a row without a shop
    cannot be attributed, so no tenant keeps their text; each counts them and names the lines."""
    TenantStore(north).add(Tenant("south", "us"))
    assert main(["tenants", "source", "south", "--file", str(tmp_path / "spec.json")]) == 0
    header = EXPORT.splitlines()[0]
    shared = [
        header,
        "A1,S1,2,3.5,2025-06-01 10:00:00,17850.0,north",
        "SECRET,broken",
        "A2,S1,1,3.5,2025-06-01 11:00:00,1.0,",
    ]
    (tmp_path / "shared.csv").write_text("\n".join([*shared, "A4,S3,1,2,2025-06-03 09:00:00,13047.0,south"]) + "\n")
    for tid, landed in (("north", 1), ("south", 1)):
        s = import_history(north, TenantStore(north).get(tid), [tmp_path / "shared.csv"], today=TODAY).summary()
        assert (s["landed"], s["quarantined"], s["unattributed_lines"], s["other_tenant_rows"]) == (landed, {}, 2, 1)
        assert any(
            p.startswith("unattributed_lines: shared.csv: 2 lines") and "line 3, 4" in p for p in s["problems"]
        ), s["problems"]
    for store in (north.stores.landing, north.stores.quarantine, north.stores.lake):
        texts = b"".join(p.read_bytes() for p in store.root.rglob("*") if p.is_file())
        assert b"SECRET" not in texts and b"1.0," not in texts


# a ratings export without a header line (MovieLens's u.data: user, item, rating, Unix time, tab-separated)
RATINGS = "196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t377\tnot a rating\t878887116\n244\t51\t2\n"
RATINGS_SPEC = {
    "format": "csv",
    "delimiter": "\t",
    "header": ["user", "item", "rating", "at"],
    "columns": {
        "event_id": {"hash": ["user", "item", "at"]},
        "user_id": "user",
        "item_id": "item",
        "event_type": {"const": "rating"},
        "event_at": "at",
        "value": "rating",
    },
    "timestamp": {"format": "epoch_s"},
}


def test_an_export_without_a_header_line_is_read_with_the_specs_column_names(settings, tmp_path):
    TenantStore(settings).add(Tenant("films", "eu"))
    (tmp_path / "spec.json").write_text(json.dumps(RATINGS_SPEC))
    assert main(["tenants", "source", "films", "--file", str(tmp_path / "spec.json")]) == 0
    (tmp_path / "u.data").write_text(RATINGS)
    s = import_history(settings, TenantStore(settings).get("films"), [tmp_path / "u.data"], today=TODAY).summary()
    # the first line is a record (not column names); a line missing a field is quarantined, never dropped
    assert s["rows_in"] == 4 and s["landed"] == 2, s
    lake = pd.concat(pd.read_parquet(p) for p in settings.stores.lake.tenant_dir("eu", "films").rglob("part-0.parquet"))
    assert sorted(lake.user_id) == ["186", "196"] and set(lake.event_type) == {"rating"}
    quarantine = pd.concat(pd.read_parquet(p) for p in settings.stores.quarantine.root.rglob("part-0.parquet"))
    lines = dict(zip(quarantine.line_no, quarantine.reason, strict=True))
    assert set(lines) == {3, 4}, lines  # numbered as the file's lines: line 1 is the first record


def test_a_rating_below_the_tenants_threshold_is_consumed_not_a_positive_interaction(settings, tmp_path, capsys):
    """``tenants add --min-rating 4``: a film rated 2 is in the user's history with 0 interactions (never
    recommended back to them, nothing learnt from), a film rated 4 or 5 is a positive interaction, and the
    snapshot's windows record the rule (a version tag: a change makes the recommender due)."""
    from ml.core.warehouse import warehouses
    from ml.data.dbt import dbt_vars, run_dbt
    from ml.models.recsys import served

    assert main(["tenants", "add", "films", "--region", "eu", "--min-rating", "4"]) == 0
    (tmp_path / "spec.json").write_text(json.dumps(RATINGS_SPEC))
    assert main(["tenants", "source", "films", "--file", str(tmp_path / "spec.json")]) == 0
    day = 1_793_000_000  # 2026-10-26 (Unix seconds)
    ratings = [("u1", "A", 5), ("u1", "B", 2), ("u2", "A", 4), ("u2", "B", 5), ("u2", "C", 1), ("u3", "C", 5)]
    lines = [f"{u}\t{i}\t{r}\t{day + n * 3_600}" for n, (u, i, r) in enumerate(ratings)]
    lines.append(f"u1\tD\t3\t{day - 30 * 86_400}")  # a month before: no incremental build's week reads it again
    (tmp_path / "u.data").write_text("\n".join(lines) + "\n")
    imported = import_history(settings, TenantStore(settings).get("films"), [tmp_path / "u.data"], today=TODAY)
    assert imported.summary()["landed"] == 7
    [wh] = warehouses(TenantStore(settings).list())
    vars_ = dbt_vars(settings, wh)
    assert vars_["min_ratings"] == {"films": 4.0}
    select = ["run", "--select", "+interaction_history", "+int_tenant_windows"]
    assert run_dbt(select, settings, wh, vars_)["success"]
    with warehouse_connect(wh.path(settings), read_only=True) as con:
        history = con.sql("select * from interaction_history where tenant_id = 'films'").df()
        windows = con.sql("select min_rating from int_tenant_windows where tenant_id = 'films'").fetchall()
        flags = con.sql(
            "select value, bool_and(is_consumed), bool_and(is_interaction) from stg_lake__events group by 1"
        )
        assert sorted(flags.fetchall()) == [
            (1.0, True, False), (2.0, True, False), (3.0, True, False), (4.0, True, True), (5.0, True, True)
        ]  # fmt: skip
    pairs = {(u, i): n for u, i, n in history[["user_id", "item_id", "interactions"]].itertuples(index=False)}
    assert pairs == {
        ("u1", "A"): 1, ("u1", "B"): 0, ("u1", "D"): 0, ("u2", "A"): 1, ("u2", "B"): 1, ("u2", "C"): 0, ("u3", "C"): 1
    }  # fmt: skip
    assert windows == [("4.0",)]
    data = served.history_events(history)
    model = recsys.Popularity().fit(recsys.Interactions.from_events(data, pd.Timestamp(history["cutoff_date"].max())))
    assert dict(zip(model.items, model.item_scores, strict=True)) == {"A": 2, "B": 1, "C": 1}, "u1's 2 and u2's 1: none"
    lists = served.serve_lists(model, history, np.array(["u1", "u2", "u3"]), k=3)
    assert {u: list(g["item_id"]) for u, g in lists.groupby("user_id")} == {"u1": ["C"], "u3": ["A", "B"]}
    # the setting is listed, and a change says what it takes effect in
    capsys.readouterr()
    assert main(["tenants", "add", "films", "--region", "eu", "--min-rating", "3", "--replace"]) == 0
    assert "min_rating changed (4.0 -> 3.0)" in " ".join(capsys.readouterr().out.split())
    # the next build counts the whole history again with the new rule: the month-old 3 is a click now
    clicks = "select clicks from int_user_activity__daily where user_id = 'u1' and activity_date < date '2026-10-01'"
    with warehouse_connect(wh.path(settings), read_only=True) as con:
        assert con.sql(clicks).fetchall() == [(0,)]
    assert run_dbt(select, settings, wh, dbt_vars(settings, wh))["success"]
    with warehouse_connect(wh.path(settings), read_only=True) as con:
        assert con.sql(clicks).fetchall() == [(1,)], "an incremental build kept the old rule's count"
        assert con.sql("select min_rating from int_tenant_windows").fetchall() == [("3.0",)]
    capsys.readouterr()  # (dbt's log)
    assert main(["tenants", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["min_rating"] == 3.0


@pytest.mark.parametrize("value", ["true", "yes", "four", "nan", "inf", "1" + "0" * 400])
def test_a_min_rating_that_is_no_finite_number_is_refused_naming_the_field(settings, tmp_path, value):
    from ml.core.errors import TenantError

    seed = tmp_path / "tenants.yaml"
    seed.write_text(f"- {{tenant_id: films, region: eu, min_rating: {value}}}\n")
    with pytest.raises(TenantError, match="min_rating"):
        seed_from_file(seed, TenantStore(settings))
    seed.write_text(
        "- {tenant_id: films, region: eu, min_rating: ''}\n- {tenant_id: shop, region: eu, min_rating: 0}\n"
    )
    assert [t.min_rating for t in seed_from_file(seed, TenantStore(settings))] == [None, 0.0]
    with pytest.raises(TenantError, match="min_rating must be a finite number"):
        Tenant("films", "eu", min_rating="4")  # type: ignore[arg-type]  (Python callers: no silent text)


def test_a_tenant_that_declares_views_its_interactions_learns_from_them_and_a_change_recounts_its_history(
    settings, tmp_path, capsys
):
    """A news site sends page views and a few taps: under the platform's rule (clicks, purchases, carts,
    ratings) only its taps are interactions; ``tenants add --interaction-types view`` makes its views the
    positive interactions instead (history, daily clicks, lists that leave read articles out). The next
    build counts its whole history again by the new rule, also in a warehouse built before the rule was
    recorded, and again when it goes back to the default; a pool-mate's days are not read again. The
    snapshot records the rule (a version tag)."""
    from ml.core.warehouse import warehouses
    from ml.data.dbt import dbt_vars, run_dbt
    from ml.models.recsys import served

    spec = {**RATINGS_SPEC, "header": ["user", "item", "action", "at"]}
    spec["columns"] = {**RATINGS_SPEC["columns"], "event_type": "action"}
    del spec["columns"]["value"]
    spec["event_types"] = {"pageview": "view", "scroll": "skip", "tap": "click"}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    day, month = 1_793_000_000, 30 * 86_400  # 2026-10-26 (Unix seconds); a month before it
    reads = [("u1", "A", "pageview"), ("u1", "B", "scroll"), ("u2", "A", "pageview"), ("u2", "B", "pageview")]
    lines = [f"{u}\t{i}\t{a}\t{day + n * 3_600}" for n, (u, i, a) in enumerate(reads)]
    # a month before: no incremental build's week reads that day again
    lines += [f"u1\tD\tpageview\t{day - month}", f"u3\tD\tpageview\t{day - month}", f"u1\tE\ttap\t{day - month}"]
    (tmp_path / "views.tsv").write_text("\n".join(lines) + "\n")
    for tenant in ("news", "plain"):
        assert main(["tenants", "add", tenant, "--region", "eu"]) == 0
        assert main(["tenants", "source", tenant, "--file", str(tmp_path / "spec.json")]) == 0
        landed = import_history(settings, TenantStore(settings).get(tenant), [tmp_path / "views.tsv"], today=TODAY)
        assert landed.summary()["landed"] == 7
    [wh] = warehouses(TenantStore(settings).list())
    select = ["run", "--select", "+interaction_history", "+int_tenant_windows"]
    old_days = "activity_date < date '2026-10-01'"
    clicks = f"select tenant_id, sum(clicks) from int_user_activity__daily where {old_days}"

    def build_and_count() -> dict[str, int]:
        assert run_dbt(select, settings, wh, dbt_vars(settings, wh))["success"]
        with warehouse_connect(wh.path(settings), read_only=True) as con:
            return dict(con.sql(f"{clicks} group by 1").fetchall())

    assert dbt_vars(settings, wh)["interaction_types"] == {}
    assert build_and_count() == {"news": 1, "plain": 1}, "the tap: views are no clicks by default"
    with warehouse_connect(wh.path(settings)) as con:  # a warehouse built before the rule was recorded
        con.execute("alter table int_tenant_windows drop column interaction_types")
        marked = "update int_user_activity__daily set clicks = 99 where tenant_id = 'plain' and user_id = 'u1'"
        con.execute(f"{marked} and {old_days}")  # a row no recount of plain's leaves at 99
    capsys.readouterr()
    assert main(["tenants", "add", "news", "--region", "eu", "--interaction-types", "view", "--replace"]) == 0
    said = " ".join(capsys.readouterr().out.split())
    assert "news: interaction_types changed (click,purchase,add_to_cart,rating (default) -> view)" in said, said
    assert dbt_vars(settings, wh)["interaction_types"] == {"news": ["view"]}
    assert build_and_count() == {"news": 2, "plain": 99}, "an incremental build kept the old rule, or read plain's"
    with warehouse_connect(wh.path(settings), read_only=True) as con:
        history = con.sql("select * from interaction_history where tenant_id = 'news'").df()
        rules = con.sql("select tenant_id, interaction_types from int_tenant_windows order by 1").fetchall()
        assert rules == [("news", "view"), ("plain", "click,purchase,add_to_cart,rating")]
        flags = con.sql(
            "select event_type, bool_and(is_consumed), bool_and(is_interaction) from stg_lake__events "
            "where tenant_id = 'news' group by 1"
        )
        assert sorted(flags.fetchall()) == [("click", False, False), ("skip", False, False), ("view", True, True)]
    pairs = {(u, i): n for u, i, n in history[["user_id", "item_id", "interactions"]].itertuples(index=False)}
    assert pairs == {("u1", "A"): 1, ("u1", "D"): 1, ("u2", "A"): 1, ("u2", "B"): 1, ("u3", "D"): 1}, "no scroll"
    data = served.history_events(history)
    model = recsys.Popularity().fit(recsys.Interactions.from_events(data, pd.Timestamp(history["cutoff_date"].max())))
    lists = served.serve_lists(model, history, np.array(["u1", "u2", "u3"]), k=3)
    assert {u: list(g["item_id"]) for u, g in lists.groupby("user_id")} == {"u1": ["B"], "u2": ["D"], "u3": ["A", "B"]}
    capsys.readouterr()  # (dbt's log)
    assert main(["tenants", "list", "--json"]) == 0
    assert [t["interaction_types"] for t in json.loads(capsys.readouterr().out)] == [["view"], []]
    # back to the platform's rule: the month-old day counts its tap again, not its two views
    assert main(["tenants", "add", "news", "--unset", "interaction_types", "--replace"]) == 0
    assert "(view -> click,purchase,add_to_cart,rating (default))" in " ".join(capsys.readouterr().out.split())
    assert build_and_count() == {"news": 1, "plain": 99}


def test_an_export_whose_first_line_is_a_record_is_told_to_name_its_columns(settings, tmp_path):
    TenantStore(settings).add(Tenant("films", "eu"))
    spec = {k: v for k, v in RATINGS_SPEC.items() if k != "header"}
    spec["columns"] = {"user_id": "user", "item_id": "item", "event_type": {"const": "rating"}, "event_at": "at"}
    spec["columns"]["event_id"] = {"hash": ["user", "item", "at"]}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    assert main(["tenants", "source", "films", "--file", str(tmp_path / "spec.json")]) == 0
    (tmp_path / "u.data").write_text(RATINGS)
    s = import_history(settings, TenantStore(settings).get("films"), [tmp_path / "u.data"], today=TODAY).summary()
    [problem] = [p for p in s["problems"] if p.startswith("schema_mismatch")]
    assert "lacks columns ['user', 'item', 'at']" in problem and "header: [...]" in problem, problem


def test_a_silo_tenants_history_files_are_written_sealed_and_a_rerun_changes_nothing(settings, tmp_path):
    """A silo tenant's history files are sealed as written (never plain in landing), read sealed by
    the ingestion that follows, and an unchanged rerun rewrites and re-ingests nothing."""
    from ml.core import sealed_files

    TenantStore(settings).add(Tenant("north", "eu", isolation="silo", share_data=False))
    (tmp_path / "spec.json").write_text(json.dumps(SPEC))
    assert main(["tenants", "source", "north", "--file", str(tmp_path / "spec.json")]) == 0
    (tmp_path / "export.csv").write_text(EXPORT)
    first = import_history(settings, TenantStore(settings).get("north"), [tmp_path / "export.csv"], today=TODAY)
    files = sorted(settings.stores.landing.tenant_dir("eu", "north").rglob("history-*.parquet"))
    assert files and all(sealed_files.is_sealed(p) for p in files)
    assert not [p for p in files if b"17850" in p.read_bytes()]
    assert first.files[0].changed and first.summary()["landed"] > 0
    before = {p: p.read_bytes() for p in files}
    again = import_history(settings, TenantStore(settings).get("north"), [tmp_path / "export.csv"], today=TODAY)
    assert not again.files[0].changed and again.reports == [] and {p: p.read_bytes() for p in files} == before


@pytest.mark.parametrize("shared_day", [False, True], ids=["day-of-the-user-only", "day-shared-with-another"])
def test_an_import_run_again_after_an_erasure_writes_none_of_the_users_rows_back(north, tmp_path, shared_day):
    """The erasure removed the user's rows from the import's history files (a day that held only theirs is removed;
    a day shared with another customer keeps the file's mark, its source file's SHA-256); the same export imported
    again drops them before writing (counted in ``erased_user_rows``): landing is as the erasure left it and no day
    is ingested again. A file of the user's rows only, imported after the erasure, has no rows of the tenant."""
    from ml.ops import user_erasure

    export = tmp_path / "export.csv"
    if shared_day:
        export.write_text(EXPORT + "A7,S9,1,2,2025-06-01 10:00:00,12345.0,north\n")
    tenant = TenantStore(north).get("north")
    import_history(north, tenant, [export], today=TODAY)
    report = user_erasure.erase_user("north", "17850", north)
    assert report["removed_days"] == ([] if shared_day else ["2025-06-01"])
    landing = north.stores.landing.tenant_dir("eu", "north")
    before = {p: p.read_bytes() for p in landing.rglob("*.parquet")}
    again = import_history(north, tenant, [export], today=TODAY).summary()
    assert (again["erased_user_rows"], again["days_ingested"], again["files_unchanged"]) == (3, 0, 1)
    assert {p: p.read_bytes() for p in landing.rglob("*.parquet")} == before
    lake = _partitions(north, north.stores.lake)
    assert lake["2025-06-01"].user_id.tolist() == ["12345"] if shared_day else "2025-06-01" not in lake
    (only := tmp_path / "only.csv").write_text(EXPORT.splitlines()[0] + "\n" + EXPORT.splitlines()[1] + "\n")
    s = import_history(north, tenant, [only], today=TODAY).summary()
    assert (s["files_unchanged"], s["files_without_rows"], s["erased_user_rows"]) == (0, 1, 1)


def test_a_contract_tenants_import_run_again_after_an_erasure_keeps_its_malformed_lines_as_they_were(
    settings, tmp_path
):
    """Malformed lines keep their source file through the erasure's rewrite of their history file, so the import run
    again writes the same bytes; the erased user's own malformed line is not written again (a review's case)."""
    from ml.ops import user_erasure

    tenant = TenantStore(settings).add(Tenant("plain", "eu"))
    header = "event_id,user_id,item_id,event_type,event_at\n"
    rows = "e1,u1,i1,click,2025-06-01T09:00:00Z\ne2,u2,i1,click,2025-06-01T10:00:00Z\nx,u2\ny,u1\n"
    (export := tmp_path / "plain.csv").write_text(header + rows)
    import_history(settings, tenant, [export], today=TODAY)
    user_erasure.erase_user("plain", "u1", settings)
    landing = settings.stores.landing.tenant_dir("eu", "plain")
    before = {p: p.read_bytes() for p in landing.rglob("*.parquet")}
    again = import_history(settings, tenant, [export], today=TODAY).summary()
    assert (again["erased_user_rows"], again["days_ingested"], again["files_unchanged"]) == (2, 0, 1)
    assert {p: p.read_bytes() for p in landing.rglob("*.parquet")} == before


def test_the_ingest_cli_prints_a_row_per_tenant_and_its_summary_as_json_on_request(north, tmp_path, capsys):
    import_history(north, TenantStore(north).get("north"), [tmp_path / "export.csv"], today=TODAY)
    args = ["ingest", "--tenant", "north", "--start", "2025-06-01", "--end", "2025-06-04"]
    assert main([*args, "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["dates"] == ["2025-06-01", "2025-06-02", "2025-06-03"] and s["changed_dates"] == []  # imported before
    assert (
        s["rows_in"]
        == s["landed"] + sum(s["quarantined"].values()) + sum(s["dropped"].values()) + s["duplicates_dropped"]
    )
    assert main(args) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if "north" in line)
    cells = [c.strip() for c in row.strip("│ ").split("│")]
    quarantined = ", ".join(f"{k} {v:,}" for k, v in s["quarantined"].items())
    assert cells == ["north", "3", "0", str(s["rows_in"]), str(s["landed"]), quarantined, "-", "1"], out
    assert "problem: north: 2025-06-02: keys_mostly_null" in out
    assert "Nothing changed: every day was ingested before from the same files." in out
    # a late file on the second day: the next command rebuilds the tenant's activity from it (as the ingest DAG does)
    folder = north.stores.landing.day_dir("eu", "north", date(2025, 6, 2))
    (folder / "late.csv").write_text(EXPORT.splitlines()[0] + "\nA8,S2,1,10,2025-06-02 12:00:00,17850.0,north\n")
    assert main(args) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "`tenantflow features build --tenant north --rebuild-from 2025-06-02`" in out, out
    assert main(["ingest", "--tenant", "north", "--start", "2024-01-01"]) == 0
    assert "Nothing to do: no landing folder of these tenants on these days." in " ".join(
        capsys.readouterr().out.split()
    )


def test_the_import_prints_a_problem_naming_a_file_with_brackets_as_text(north, tmp_path, capsys):
    (odd := tmp_path / "export[b].csv").write_text("Order,Sku\nA1,S1\n")  # not the spec's columns: a problem
    assert main(["import", "north", str(odd)]) == 0
    out = capsys.readouterr().out
    assert "problem: " in out and "export[b].csv" in out, out  # (as markup, "[b]" was bold and the name lost it)
