"""Source specs: a tenant's own export onboarded as data (a spec set with the CLI), never code."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pandas as pd
import pytest

from ml.core.contract import REQUIRED_COLUMNS
from ml.core.errors import TenantError
from ml.core.tenants import Tenant, TenantStore
from ml.data.ingest import run
from ml.data.ingest.spec import DEFAULT, SpecError, check_expression, load_spec_file, parse_spec
from ml.ops.cli import main

DAY = date(2026, 11, 20)

# A clickstream tool's export: its own column names, epoch milliseconds, its own action names,
# float-formatted visitor ids, no event id and no tenant column.
EXPORT = """Visitor ID;Product;Action;Time (ms);Visit
17850.0;SKU-1;viewed;1763629200000;v1
17850.0;SKU-2;clicked;1763629260000;v1
13047.0;SKU-1;viewed;1763629320000;v2
13047.0;SKU-1;viewed;1763629320000;v2
"""
SPEC = """
delimiter: ";"
columns:
  event_id: {hash: [Visitor ID, Product, Action, Time (ms)]}
  user_id: visitor id
  item_id: PRODUCT
  event_type: Action
  event_at: Time (ms)
  session_id: {expr: "'visit-' || Visit -- the tool's visit number"}
  device: {const: web}
timestamp: {format: epoch_ms}
event_types: {viewed: view, clicked: click}
numeric_ids: [user_id]
"""


@pytest.fixture
def shop(settings, tmp_path):
    TenantStore(settings).add(Tenant("shop", "eu"))
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    assert main(["tenants", "source", "shop", "--file", str(spec)]) == 0
    return settings


def _drop(settings, name: str, text: str, day: date = DAY) -> None:
    folder = settings.stores.landing.day_dir("eu", "shop", day)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)


def _ingest(settings, start: date = DAY, end: date = DAY + timedelta(days=1)) -> tuple[dict, pd.DataFrame]:
    [summary] = run.ingest_tenants(["shop"], start, end, settings)
    files = sorted(settings.stores.lake.tenant_dir("eu", "shop").rglob("part-0.parquet"))
    return summary, pd.concat([pd.read_parquet(f) for f in files]) if files else pd.DataFrame()


def test_an_export_lands_through_its_spec_alone(shop):
    # epoch ms 1763629200000 is 2025-11-20 09:00 UTC: a year before the drop, so dropped for that day
    _drop(shop, "export.csv", EXPORT, day=date(2025, 11, 20))
    summary, lake = _ingest(shop, date(2025, 11, 20), date(2025, 11, 21))
    assert (summary["landed"], summary["quarantined"], summary["duplicates_dropped"]) == (3, {}, 1)
    rows = lake.sort_values("event_at").to_dict("records")
    assert [(r["user_id"], r["item_id"], r["event_type"], r["session_id"], r["device"]) for r in rows] == [
        ("17850", "SKU-1", "view", "visit-v1", "web"),
        ("17850", "SKU-2", "click", "visit-v1", "web"),
        ("13047", "SKU-1", "view", "visit-v2", "web"),
    ]
    assert {r["tenant_id"] for r in rows} == {"shop"}  # the folder says whose file it is
    assert rows[0]["event_at"] == pd.Timestamp("2025-11-20 09:00", tz="UTC")
    assert all(len(r["event_id"]) == 64 for r in rows)
    # a re-sent file (under another name) lands nothing twice: ids are the rows' content
    _drop(shop, "export-again.csv", EXPORT.replace("\n", "\r\n"), day=date(2025, 11, 20))
    summary, lake = _ingest(shop, date(2025, 11, 20), date(2025, 11, 21))
    assert (summary["landed"], summary["duplicates_dropped"]) == (3, 5)


def test_a_strptime_format_in_the_tenants_time_zone(settings, tmp_path):
    TenantStore(settings).add(Tenant("shop", "eu"))
    spec = {
        "columns": {"event_id": "id", "user_id": "user", "item_id": "item", "event_type": {"const": "click"}},
        "timestamp": {"format": "%m/%d/%Y %H:%M", "timezone": "Europe/London"},
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    assert main(["tenants", "source", "shop", "--file", str(tmp_path / "spec.json")]) == 0
    _drop(
        settings,
        "orders.csv",
        "id,user,item,when\n1,u,i,11/20/2026 9:05\n2,u,i,6/1/2026 8:26\n".replace("when", "event_at"),
    )
    summary, lake = _ingest(settings)
    # November: GMT (UTC+0); the June row is in BST (UTC+1) and months too old for this drop
    assert (summary["landed"], summary["quarantined"]) == (1, {"timestamp_too_old": 1})
    assert list(lake.event_at) == [pd.Timestamp("2026-11-20 09:05", tz="UTC")]


def test_show_prints_the_spec_and_clear_forgets_it(shop, capsys):
    assert main(["tenants", "show", "shop"]) == 0
    shown = json.loads(capsys.readouterr().out)["source_spec"]
    assert shown["timestamp"] == {"format": "epoch_ms"} and shown["columns"]["device"] == {"const": "web"}
    assert parse_spec(shown, "shown").model_dump() == load_spec_file(shop.home.parent / "spec.yaml").model_dump()
    assert main(["tenants", "source", "shop", "--clear"]) == 0
    assert TenantStore(shop).source_spec("shop") is None


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"columns": {"user": "x"}}, "field 'columns': not landing columns: ['user']"),
        ({"columns": {"user_id": 5}}, "field 'columns.user_id': expected a source column name, {const: value}"),
        ({"columns": {"event_id": {"hash": []}}}, "field 'columns.event_id.hash': List should have at least 1"),
        ({"timestamp": {"format": "dd/mm/yyyy"}}, "field 'timestamp.format': expected iso, epoch_s"),
        ({"timestamp": {"timezone": "Mars/Olympus"}}, "unknown time zone 'Mars/Olympus'"),
        ({"delimiter": ";;"}, "a delimiter is one character"),
        ({"encoding": "klingon"}, "unknown text encoding 'klingon'"),
        ({"encoding": "base64"}, "unknown text encoding 'base64'"),
        ({"delimiter": '"'}, "a delimiter is one character other than a quote"),
        ({"timestamp": {"format": "%Y-%m-%d %Q"}}, "not a strptime pattern DuckDB reads"),
        ({"columns": {"topic": {"expr": "lower(t) as t"}}}, "expected one expression (no alias, no clause)"),
        ({"columns": {"topic": {"expr": "t where true"}}}, "expected one expression (no alias, no clause)"),
        ({"columns": {"topic": {"expr": "t limit (select 1)"}}}, "expected one expression (no alias, no clause)"),
        (
            {"columns": {"event_type": {"expr": "read_csv('/etc/passwd')"}}},
            "field 'columns.event_type.expr': \"read_csv('/etc/passwd')\": function 'read_csv' is not allowed",
        ),
        ({"columns": {"event_type": {"expr": "(select 1)"}}}, "subquery is not allowed"),
        ({"colums": {}}, "field 'colums': Extra inputs are not permitted"),
        ([], "a source spec is a mapping, got list"),
    ],
)
def test_a_bad_spec_is_refused_naming_the_field(spec, message):
    with pytest.raises(SpecError, match="spec.yaml") as info:
        parse_spec(spec, "spec.yaml")
    assert message in str(info.value)


def test_the_cli_refuses_a_bad_spec_and_stores_nothing(settings, tmp_path, capsys):
    TenantStore(settings).add(Tenant("shop", "eu"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("columns:\n  event_type: {expr: \"getenv('HOME')\"}\n")
    assert main(["tenants", "source", "shop", "--file", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "function 'getenv' is not allowed" in err
    assert TenantStore(settings).source_spec("shop") is None
    good = tmp_path / "good.yaml"
    good.write_text(SPEC)
    assert main(["tenants", "source", "nobody", "--file", str(good)]) == 2
    assert "unknown tenant 'nobody'" in capsys.readouterr().err


def test_expressions_are_checked_by_duckdbs_own_parser():
    check_expression("case when starts_with(InvoiceNo, 'C') then 'return' else 'purchase' end")
    check_expression("\"Customer ID\" || '-' || lower(Country)")
    for bad in ("count(*)", "row_number() over ()", "*", "1, 2", "a from read_csv('x')", "x; drop table t", "x;"):
        with pytest.raises(ValueError):
            check_expression(bad)


def test_the_default_spec_is_the_landing_contract():
    assert DEFAULT.columns == {c: c for c in REQUIRED_COLUMNS}  # the others are read by name when sent
    assert (DEFAULT.format, DEFAULT.encoding, DEFAULT.delimiter, DEFAULT.timestamp.format) == (None, None, None, "iso")


def test_a_json_key_can_never_inject_sql(shop):
    # a key closing the identifier's quote to read another file into a column (found by a review)
    secret = shop.home / "secret.txt"
    secret.write_text("SECRET")
    evil = f"zz\", (select content from read_text('{secret}')) as \"Visit"
    line = {"Visitor ID": "17850", "Product": "SKU-1", "Action": "viewed", "Time (ms)": "1763629200000", evil: "x"}
    line2 = {**{k: v for k, v in line.items() if k != evil}, "Product": "SKU-2", 'size "inches"': "12", "Visit": "v1"}
    _drop(shop, "evil.jsonl", json.dumps(line) + "\n" + json.dumps(line2) + "\n", day=date(2025, 11, 20))
    summary, lake = _ingest(shop, date(2025, 11, 20), date(2025, 11, 21))
    assert summary["landed"] == 2
    assert not lake.apply(lambda col: col.astype(str).str.contains("SECRET")).any().any()
    assert sorted(lake.session_id.fillna("-")) == ["-", "visit-v1"]  # the odd key is just a key


def test_a_value_an_expression_or_epoch_cannot_compute_is_null_not_a_lost_file(settings, tmp_path):
    TenantStore(settings).add(Tenant("shop", "eu"))
    spec = {
        "columns": {"event_id": "id", "user_id": "u", "item_id": "i", "event_type": {"const": "click"}},
        "timestamp": {"format": "epoch_s"},
    }
    spec["columns"]["dwell_seconds"] = {"expr": "cast(secs as double) * 1.5"}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    assert main(["tenants", "source", "shop", "--file", str(tmp_path / "spec.json")]) == 0
    rows = "id,u,i,event_at,secs\n1,u,i,1795165200,2\n2,u,i,99999999999999999999,2\n3,u,i,1795165200,N/A\n"
    _drop(settings, "a.csv", rows)  # 1795165200 is 2026-11-20 09:00 UTC
    summary, lake = _ingest(settings)
    assert (summary["rows_in"], summary["landed"], summary["quarantined"]) == (3, 2, {"bad_timestamp": 1})
    assert dict(zip(lake.event_id, lake.dwell_seconds.fillna(-1), strict=True)) == {"1": 3.0, "3": -1}


def test_a_spec_expression_naming_a_column_the_file_lacks_blames_the_spec(shop):
    _drop(shop, "no-visit.csv", EXPORT.replace(";Visit", ";Session"), day=date(2025, 11, 20))
    summary, _ = _ingest(shop, date(2025, 11, 20), date(2025, 11, 21))
    [problem] = summary["batch_problems"][:1]
    assert "schema_mismatch: no-visit.csv: the source spec does not fit it" in problem and "Visit" in problem


def test_an_expression_that_needs_more_memory_than_allowed_fails_its_file_only(settings, tmp_path, monkeypatch):
    from tests.world import world_env

    settings = world_env(monkeypatch, settings.home, TENANTFLOW_LANDING_READ_MEMORY_LIMIT="20MB")
    TenantStore(settings).add(Tenant("shop", "eu"))
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.replace("device: {const: web}", "device: {expr: \"lpad(Visit, 40000000, 'x')\"}"))
    assert main(["tenants", "source", "shop", "--file", str(spec)]) == 0
    _drop(settings, "export.csv", EXPORT, day=date(2025, 11, 20))
    summary, lake = _ingest(settings, date(2025, 11, 20), date(2025, 11, 21))
    assert summary["rows_in"] == 0 and lake.empty
    assert summary["batch_problems"][0].startswith("2025-11-20: unreadable_file: export.csv: Out of Memory Error")


def test_the_readmes_landing_contract_is_the_codes():
    import re
    from pathlib import Path

    from ml.data.landing_checks import REASONS

    root = Path(__file__).resolve().parents[2]
    readme = (root / "README.md").read_text()
    section = readme[readme.index("## Sending data") : readme.index("## Layout")]
    # the worked example is the example file, not a copy drifting from it
    shown = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert parse_spec(__import__("yaml").safe_load(shown), "README") == load_spec_file(
        root / "examples/online-retail/source-spec.yaml"
    )
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.M))
    assert set(REASONS) | {"batch_failed"} <= documented


def test_event_type_mappings_name_landing_types():
    with pytest.raises(SpecError, match="event_types.*purchaes"):
        parse_spec({"event_types": {"buy": "purchaes"}}, "tenant shop")


def _contract_csv(*users: str, day: date = DAY) -> str:
    """A file in the landing contract: one click per user, at 10:00 of ``day``."""
    rows = [f"c-{u},{u},i1,click,{day}T10:00:00Z" for u in users]
    return "event_id,user_id,item_id,event_type,event_at\n" + "\n".join(rows) + "\n"


def test_a_new_spec_reads_the_files_that_arrive_after_it_not_the_ones_landed_before(settings, tmp_path, capsys):
    """A tenant that sent files in the landing contract and then stores a spec for its own export (a new user's
    case: a spec for a history import): a day rebuilt later reads each landed file with the spec it was first read
    with, so nothing landed is lost; a webhook file is read with the contract whatever the spec; ``--current-spec``
    reads every file with the current spec (a corrected one); an erasure reads each file as its ingestion did."""
    from ml.core.contract import webhook_file_name
    from ml.ops.user_erasure import erase_user

    TenantStore(settings).add(Tenant("shop", "eu"))
    _drop(settings, "contract.csv", _contract_csv("alice", "bob"))
    assert _ingest(settings)[0]["landed"] == 2
    (spec := tmp_path / "spec.yaml").write_text(SPEC)
    assert main(["tenants", "source", "shop", "--file", str(spec)]) == 0
    assert "files landed before keep the spec they were read with" in " ".join(capsys.readouterr().out.split())
    # the tenant's own export arrives on the same day, and the platform's webhook writes a file there
    _drop(settings, "export.csv", EXPORT.replace("1763629", "1795165"))  # (2026-11-20 09:00 UTC onwards)
    webhook = webhook_file_name("101500", "0123456789ab")
    _drop(settings, webhook, json.dumps({"event_id": "w1", "user_id": "carol", "item_id": "i2",
                                         "event_type": "click", "event_at": f"{DAY}T10:15:00Z"}) + "\n")  # fmt: skip
    summary, lake = _ingest(settings)
    assert summary["batch_problems"] == [] and summary["quarantined"] == {}, summary
    assert sorted(lake.user_id) == ["13047", "17850", "17850", "alice", "bob", "carol"]
    manifest = json.loads(next(settings.stores.lake.tenant_dir("eu", "shop").rglob("_manifest.json")).read_text())
    read_with = {f["name"]: f["spec"] for f in manifest["files"]}
    assert read_with["contract.csv"] is None and read_with[webhook] is None and read_with["export.csv"]
    # an erasure reads the contract file as it was read: alice's row leaves it
    report = erase_user("shop", "alice", settings)
    assert report["landing_files"] == ["date=2026-11-20/contract.csv"], report
    assert sorted(_ingest(settings)[1].user_id) == ["13047", "17850", "17850", "bob", "carol"]
    # a corrected spec (its views are clicks): a rebuild keeps the export's first reading; --current-spec reads it
    # with the new one, the webhook's file still as the contract (and the erased file is a history file now)
    spec.write_text(SPEC.replace("viewed: view", "viewed: click"))
    assert main(["tenants", "source", "shop", "--file", str(spec)]) == 0
    assert sorted(_ingest(settings)[1].event_type) == ["click", "click", "click", "view", "view"]
    assert main(["ingest", "--tenant", "shop", "--start", str(DAY), "--current-spec", "--json"]) == 0
    [printed] = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert (printed["landed"], printed["batch_problems"]) == (5, [])
    assert sorted(_ingest(settings)[1].event_type) == ["click"] * 5


def test_a_spec_is_kept_for_a_file_only_where_it_fitted_and_old_manifests_fall_back_to_the_contract(settings, tmp_path):
    """A review's cases: a manifest written before each file's spec was recorded, and a copy of a contract file sent
    after a spec was stored, are read as the contract where the spec does not fit them (an erasure then finds its
    user in both); a wrong spec is not kept for the file it did not fit (the corrected one reads it); the spec
    ``--current-spec`` read with is kept for later runs, and only the days asked for are read with it."""
    from ml.ops.user_erasure import erase_user

    TenantStore(settings).add(Tenant("shop", "eu"))
    _drop(settings, "contract.csv", _contract_csv("alice", "bob"))
    _drop(
        settings, "later.csv", _contract_csv("dave", "dave", day=DAY + timedelta(days=1)), day=DAY + timedelta(days=1)
    )
    _ingest(settings, DAY, DAY + timedelta(days=2))
    manifest = settings.stores.lake.day_dir("eu", "shop", DAY) / "_manifest.json"
    old = json.loads(manifest.read_text())  # as written before files' specs were recorded
    manifest.write_text(
        json.dumps(old | {"files": [{k: v for k, v in f.items() if k != "spec"} for f in old["files"]]})
    )
    (spec := tmp_path / "spec.yaml").write_text(SPEC.replace('delimiter: ";"', 'delimiter: ","'))  # a wrong one
    assert main(["tenants", "source", "shop", "--file", str(spec)]) == 0
    _drop(settings, "copy.csv", _contract_csv("alice", "bob"))  # the same bytes again, after the spec
    _drop(settings, "export.csv", EXPORT.replace("1763629", "1795165"))
    summary, lake = _ingest(settings)
    assert sorted(lake.user_id) == ["alice", "bob", "dave"] and summary["quarantined"] == {}, summary
    read_with = {f["name"]: f.get("spec", "none fitted") for f in json.loads(manifest.read_text())["files"]}
    assert read_with == {"contract.csv": None, "copy.csv": None, "export.csv": "none fitted"}
    spec.write_text(SPEC)  # corrected: the export, kept with no spec, is read with it
    assert main(["tenants", "source", "shop", "--file", str(spec)]) == 0
    assert sorted(_ingest(settings)[1].user_id) == ["13047", "17850", "17850", "alice", "bob", "dave"]
    report = erase_user("shop", "alice", settings)  # both copies hold her
    assert sorted(report["landing_files"]) == ["date=2026-11-20/contract.csv", "date=2026-11-20/copy.csv"]
    # --current-spec with a corrected spec: kept for later runs; the next day (its duplicates decided by this one)
    # keeps its contract file's reading
    spec.write_text(SPEC.replace("viewed: view", "viewed: click"))
    assert main(["tenants", "source", "shop", "--file", str(spec)]) == 0
    assert main(["ingest", "--tenant", "shop", "--start", str(DAY), "--current-spec"]) == 0
    (other := tmp_path / "other.yaml").write_text(SPEC.replace('delimiter: ";"', 'delimiter: "|"'))
    assert main(["tenants", "source", "shop", "--file", str(other)]) == 0
    summary, lake = _ingest(settings, DAY, DAY + timedelta(days=2))
    assert summary["batch_problems"] == [] and sorted(lake.event_type) == ["click"] * 5, summary


def test_contract_files_of_any_format_land_beside_an_export_whose_spec_names_a_format(settings, tmp_path):
    """A spec that says ``format: csv`` (as the README's worked example) does not make the contract's Parquet or JSON
    lines files unreadable (a new user lost a day's generated Parquet to ``--current-spec``): a file the spec cannot
    read that the contract can is read as the contract, now and with ``--current-spec``."""
    TenantStore(settings).add(Tenant("shop", "eu"))
    folder = settings.stores.landing.day_dir("eu", "shop", DAY)
    folder.mkdir(parents=True)
    rows = pd.DataFrame({"event_id": ["p1", "p2"], "user_id": ["alice", "bob"], "item_id": "i1",
                         "event_type": "click", "event_at": f"{DAY}T10:00:00Z"})  # fmt: skip
    rows.to_parquet(folder / "generated.parquet")
    (folder / "generated.jsonl").write_text('{"event_id":"j1","user_id":"carol","item_id":"i2","event_type":"view",'
                                            f'"event_at":"{DAY}T11:00:00Z"}}\n')  # fmt: skip
    (spec := tmp_path / "spec.yaml").write_text("format: csv\n" + SPEC)
    assert main(["tenants", "source", "shop", "--file", str(spec)]) == 0
    _drop(settings, "export.csv", EXPORT.replace("1763629", "1795165"))
    for current in (False, True):
        [summary] = run.ingest_tenants(["shop"], DAY, DAY + timedelta(days=1), settings, current_spec=current)
        assert (summary["landed"], summary["batch_problems"]) == (6, []), (current, summary["batch_problems"])


def test_the_contract_reads_only_contract_files_never_a_shared_export_or_an_export_the_spec_misses(settings, tmp_path):
    """A review's cases of the fallback to the contract: a shared export whose tenant column was renamed is the
    spec's problem (never read as the contract: another tenant's rows would land as this one's); an export with the
    required columns and others beside them, under a spec that names another, is the spec's problem too (and an
    erasure refuses it, its rows unread); a contract Parquet under ``format: jsonl`` (nothing of it parses) lands."""
    from ml.ops.user_erasure import erase_user

    store = TenantStore(settings)
    store.add(Tenant("shop", "eu"))
    store.add(Tenant("rival", "eu"))
    (spec := tmp_path / "spec.yaml").write_text("columns: {tenant_id: Merchant}\nrows: {other_tenant: skip}\n")
    assert main(["tenants", "source", "shop", "--file", str(spec)]) == 0
    header = "merchant_code,event_id,user_id,item_id,event_type,event_at\n"
    _drop(settings, "shared.csv", header + f"shop,e1,alice,i1,click,{DAY}T10:00:00Z\n"
                                           f"rival,e2,bob,i1,click,{DAY}T10:00:00Z\n")  # fmt: skip
    summary, lake = _ingest(settings)
    assert summary["landed"] == 0 and "schema_mismatch: shared.csv" in summary["batch_problems"][0], summary
    (spec := tmp_path / "spec.yaml").write_text("delimiter: ';'\ncolumns: {user_id: Visitor}\n")
    assert main(["tenants", "source", "shop", "--file", str(spec)]) == 0
    (settings.stores.landing.day_dir("eu", "shop", DAY) / "shared.csv").unlink()
    _drop(
        settings,
        "export.csv",
        f"event_id;user_id;item_id;event_type;event_at;VisitorId\ne3;x;i1;click;{DAY}T10:00:00Z;alice\n",
    )
    assert "schema_mismatch: export.csv" in _ingest(settings)[0]["batch_problems"][0]
    with pytest.raises(TenantError, match="export.csv cannot be read back"):
        erase_user("shop", "alice", settings)
    (settings.stores.landing.day_dir("eu", "shop", DAY) / "export.csv").unlink()
    (spec := tmp_path / "spec.yaml").write_text("format: jsonl\n")
    assert main(["tenants", "source", "shop", "--file", str(spec)]) == 0
    folder = settings.stores.landing.day_dir("eu", "shop", DAY)
    pd.DataFrame({"event_id": ["p1"], "user_id": ["carol"], "item_id": ["i1"], "event_type": ["click"],
                  "event_at": [f"{DAY}T10:00:00Z"]}).to_parquet(folder / "generated.parquet")  # fmt: skip
    summary, lake = _ingest(settings)
    assert (summary["landed"], list(lake.user_id)) == (1, ["carol"]), summary
    assert [p.split(": ")[1] for p in summary["batch_problems"]] == ["file_gone"]  # (export.csv, removed above)


def test_a_day_read_to_the_same_rows_with_its_spec_now_recorded_is_not_a_changed_day(settings):
    """A day's manifest written before files' specs were recorded, ingested again to the same rows, gains each file's
    ``spec`` but is not a changed day (no features build for it): a change is a change of rows."""
    tenant = TenantStore(settings).add(Tenant("shop", "eu"))
    _drop(settings, "contract.csv", _contract_csv("alice", "bob"))
    _ingest(settings)
    manifest = settings.stores.lake.day_dir("eu", "shop", DAY) / "_manifest.json"
    old = json.loads(manifest.read_text())
    manifest.write_text(
        json.dumps(old | {"files": [{k: v for k, v in f.items() if k != "spec"} for f in old["files"]]})
    )
    [report] = run.ingest_days(settings, tenant, [DAY], wait_for_files=False)
    assert not report.changed and json.loads(manifest.read_text())["files"][0]["spec"] is None
