"""A feature build that fails part-way: each tenant is reported unhealthy with what failed and what to do."""

from __future__ import annotations

import json
import os
import shutil
import time
from datetime import timedelta
from pathlib import Path

import pytest

from ml.core import warehouse
from ml.core.tenants import TenantStore
from ml.data import dbt_failures, features
from ml.data.feature_checks import read_health
from ml.data.generate import generate
from ml.data.generate.config import TenantSpec
from ml.data.ingest.run import ingest_tenants
from ml.models.kinds import online_marts
from tests.world import register, small_config


def test_a_first_build_that_runs_out_of_memory_reports_unhealthy_tenants_with_the_hint(settings, monkeypatch):
    """The file's first build, with too little memory for DuckDB: its models fail, so neither the
    marts nor the tenants' windows exist. The checks say which marts were never built and the
    models' out-of-memory hint, publish nothing, and do not fail on the missing tables; a run that
    cannot start says what to do too."""
    cfg = small_config(days=4, specs=[TenantSpec("acme", "eu", users=300, items=80, fmt="csv")])
    register(settings, cfg, silo=())
    generate(cfg, settings.stores.landing.root, workers=1)
    ingest_tenants(["acme"], cfg.start_date, cfg.end_date + timedelta(days=1), settings)
    monkeypatch.setenv(warehouse.MEMORY_LIMIT_VARIABLE, "8MB")
    [wh] = warehouse.warehouses(TenantStore(settings).list())
    result = features.build_and_check_warehouse(wh, online_marts(), settings, threads=1)
    failed = {n["node"].split(".")[-1]: n["status"] for n in result["failed_nodes"]}
    assert failed.get("int_tenant_windows") == failed.get("user_features") == "skipped", failed
    health = result["health"]["acme"]
    assert not health["healthy"] and result["published"] == {}
    problems = health["health_problems"]
    errors = [p for p in problems if p.startswith("dbt model ")]
    assert errors and all(f"memory limit (8MB): set {warehouse.MEMORY_LIMIT_VARIABLE} higher" in p for p in errors)
    [skipped] = [p for p in problems if "dbt models skipped (" in p and "as a model or seed they read failed" in p]
    assert "int_tenant_windows" in skipped and "user_features" in skipped
    assert "mart user_features was never built on this warehouse" in problems
    assert read_health(settings, "acme") == health
    # too little for dbt to start: the run's error says the same
    monkeypatch.setenv(warehouse.MEMORY_LIMIT_VARIABLE, "1MB")
    with pytest.raises(RuntimeError, match=rf"memory limit \(1MB\): set {warehouse.MEMORY_LIMIT_VARIABLE} higher"):
        features.build_warehouse(wh, settings, threads=1)


def test_models_skipped_after_a_failed_unit_test_name_the_test():
    """dbt skips the models below a failed unit test too: the line names the test, not a model that never failed."""
    problems = dbt_failures.failed_models(
        [
            {
                "node": "unit_test.tenantflow.int_item_activity__daily.an_orders_charge_lines_are_no_item",
                "status": "fail",
            },
            {"node": "model.tenantflow.item_features", "status": "skipped"},
        ]
    )
    assert problems == [
        "1 dbt model skipped (item_features), as a model or seed they read failed, or a failed unit test upstream, among: "
        "an_orders_charge_lines_are_no_item"
    ]


def test_a_dbt_project_setting_naming_no_project_is_an_error_naming_the_setting(settings, monkeypatch, capsys):
    from ml.ops.cli import main

    monkeypatch.setenv("TENANTFLOW_DBT_PROJECT_DIR", str(settings.home / "no-such-project"))
    assert main(["features", "parse"]) == 2
    assert "error: no dbt project at " in capsys.readouterr().err


def test_a_failed_data_test_holds_back_only_the_tenants_its_rows_name(settings, tmp_path):
    """An analytics engineer's data test that fails on one tenant's rows makes that tenant unhealthy (not
    published: the API keeps its last good snapshot) and no other tenant of the pool's warehouse, also on a model
    other models read (``item_features``: ``cold_start_items`` is still built for every tenant); a failed test
    whose rows name no tenant (a test of a relation without ``tenant_id``), or one that could not run, holds
    back every tenant of the warehouse."""
    settings, wh = _engineers_pool(
        settings,
        tmp_path,
        {
            "tests/assert_globex_has_no_users.sql": "select tenant_id, user_id from {{ ref('user_features') }} "
            "where tenant_id = 'globex'\n",
            "tests/assert_globex_has_no_items.sql": "select tenant_id, item_id from {{ ref('item_features') }} "
            "where tenant_id = 'globex'\n",
            # an engineer's table built from the pool's aggregate (a cold-start prior)
            "models/topic_prior.sql": "select topic, weekly_clicks, contributing_tenants "
            "from {{ ref('global_topic_popularity') }}\n",
        },
    )
    _land(settings)
    result = features.build_and_check_warehouse(wh, online_marts(), settings, threads=1)
    failed, items = sorted(result["failed_nodes"], key=lambda n: n["node"], reverse=True)
    n = failed["failures"]  # globex's users with features
    assert failed["node"].startswith("test.tenantflow.assert_globex_has_no_users") and 0 < n <= 150
    assert items["node"].startswith("test.tenantflow.assert_globex_has_no_items") and items["failures"] > 0
    built = {x["node"].split(".")[-1]: x["status"] for x in result["nodes"] if x["node"].startswith("model.")}
    assert built["item_features"] == built["cold_start_items"] == "success"  # no model skipped for a data test
    globex, acme = result["health"]["globex"], result["health"]["acme"]
    compiled = f"{result['target_dir']}/compiled/tenantflow/tests"
    assert sorted(globex["health_problems"]) == [
        f"dbt test assert_globex_has_no_items failed on {items['failures']} of this tenant's rows (its query: "
        f"{compiled}/assert_globex_has_no_items.sql)",
        f"dbt test assert_globex_has_no_users failed on {n} of this tenant's rows (its query: "
        f"{compiled}/assert_globex_has_no_users.sql)",
    ]
    run_results = Path(result["target_dir"])
    assert (run_results / "run_results.json").is_file() and (run_results / "run_results_models.json").is_file()
    assert not globex["healthy"] and acme["healthy"] and acme["health_problems"] == []
    assert set(result["published"]) == {"acme"}
    assert result["held_back"] == {"globex": {"health_problems": globex["health_problems"], "serving": None}}
    # the pool's aggregate over its sharing tenants, and the table built from it, are rebuilt without globex's rows
    rebuilt = {"without": ["globex"], "models": ["global_topic_popularity", "topic_prior"], "failed": []}
    assert result["cross_tenant"] == rebuilt and "dbt_vars" not in result
    assert (run_results / "cross_tenant/run_results.json").is_file()
    tests_run = json.loads((run_results / "run_results.json").read_text())["results"]
    assert {r["unique_id"] for r in tests_run} >= {failed["node"], items["node"]}  # still the data tests' run
    con = warehouse.connect(wh.path(settings), read_only=True)
    assert con.execute("select max(contributing_tenants) from topic_prior").fetchone() == (1,)
    clicks, tenants = con.execute(
        "select sum(weekly_clicks), max(contributing_tenants) from global_topic_popularity"
    ).fetchone()
    acmes = con.execute(
        "select sum(i.clicks_short * 7.0 / w.short_window_days) from item_features i join int_tenant_windows w "
        "using (tenant_id) where tenant_id = 'acme' and topic is not null"
    ).fetchone()[0]
    con.close()
    assert tenants == 1 and clicks == pytest.approx(acmes) and acmes > 0
    # rows without a tenant_id, or with one of no tenant here, and a test that could not run: every tenant is held
    # back; a test that ends in a comment is still read again
    nameless = [
        {"node": "test.tenantflow.accepted_values_x.1", "status": "fail", "failures": 1, "message": "Got 1 result",
         "sql": "select 'bogus' as value_field, 3 as n_records"},
        {"node": "test.tenantflow.not_null_y.2", "status": "error", "failures": None, "message": "Binder Error",
         "sql": None},
        {"node": "test.tenantflow.not_null_z.3", "status": "fail", "failures": 2, "message": "Got 2 results",
         "sql": "select tenant_id from (values (null), ('ACME')) t(tenant_id)"},
        {"node": "test.tenantflow.commented.4", "status": "fail", "failures": 1, "message": "Got 1 result",
         "sql": "select 'globex' as tenant_id -- globex must have none"},
    ]  # fmt: skip
    held = _held_back(settings, wh, nameless + [failed])
    every = [
        "dbt test accepted_values_x failed: its failing rows (1) have no tenant_id column (return one, or a tenant_rows "
        "map, to hold back only the tenants they name), so every tenant of this warehouse is held back (Got 1 result)",
        "dbt test not_null_y failed: it could not run, so every tenant of this warehouse is held back (Binder Error)",
        "dbt test not_null_z failed: 2 of its failing rows name no tenant of this warehouse, so every tenant of this "
        "warehouse is held back (Got 2 results)",
    ]
    own = [
        "dbt test commented failed on 1 of this tenant's rows",
        next(p for p in globex["health_problems"] if "no_users" in p),
    ]
    assert held == {"acme": every, "globex": [*every, *own]}


def test_the_cli_names_a_held_back_tenant_the_snapshot_it_still_serves_and_exits_by_the_tenants_asked_for(
    settings, tmp_path, monkeypatch, capsys
):
    """After a good build an engineer's test fails on globex's rows. ``features build --tenant acme`` publishes
    acme, names globex held back with the snapshot the API still serves it, and exits 0 (acme is fine);
    ``--tenant globex`` exits 1. ``status`` shows that snapshot beside globex's problem (an unreadable pointer in
    globex's row alone). A failed node that is no data test fails the command for any tenant."""
    from ml.ops.cli import main
    from ml.ops.status import format_table, status

    settings, wh = _engineers_pool(settings, tmp_path, {})
    monkeypatch.setenv("TENANTFLOW_DBT_PROJECT_DIR", str(settings.dbt_project_dir))
    _land(settings)
    assert main(["features", "build"]) == 0
    printed = capsys.readouterr()  # dbt's log on stderr, without colour codes in a redirect; stdout is the JSON
    assert "PASS=" in printed.err and "\x1b[" not in printed.err and json.loads(printed.out)["health"]
    good = {r["tenant_id"]: r["published"] for r in status(settings)}
    assert good["globex"]["snapshot_id"] and good["globex"]["serving_cutoff"]
    test = "select tenant_id, user_id from {{ ref('user_features') }} where tenant_id = 'globex'\n"
    (settings.dbt_project_dir / "tests/assert_globex_has_no_users.sql").write_text(test)
    capsys.readouterr()
    assert main(["features", "build", "--tenant", "acme"]) == 0
    held = [line for line in capsys.readouterr().err.splitlines() if line.startswith("held back: ")]
    serving = good["globex"]
    assert len(held) == 1 and held[0].startswith("held back: globex: dbt test assert_globex_has_no_users failed on ")
    assert held[0].endswith(
        f"; the API still serves snapshot {serving['snapshot_id']} (cutoff {serving['serving_cutoff']})"
    )
    assert main(["features", "build", "--tenant", "globex"]) == 1
    rows = {r["tenant_id"]: r for r in status(settings)}
    assert rows["globex"]["published"] == serving and not rows["globex"]["healthy"] and rows["acme"]["healthy"]
    table = " ".join(format_table(list(rows.values()), width=400).split())
    assert f"the API still serves features snapshot {serving['snapshot_id']} (cutoff" in table
    # a project that no longer parses changes nothing of the last build's files: the query named is still there
    query = settings.stores.dbt_target(wh.key) / "compiled/tenantflow/tests/assert_globex_has_no_users.sql"
    (broken := settings.dbt_project_dir / "models/broken.yml").write_text("version: 2\nmodels: [{name: \n")
    capsys.readouterr()
    assert main(["features", "build", "--tenant", "acme"]) == 2  # an error line, no traceback
    assert "error: dbt build --exclude-resource-type test failed for warehouse eu/pool: Parsing Error" in (
        capsys.readouterr().err
    )
    assert query.is_file() and str(query) in " ".join(status(settings)[1]["health_problems"])
    broken.unlink()
    # one tenant's unreadable pointer is its own row's problem
    settings.stores.published.pointer("eu", "globex").write_text('{"tenant_id": "globex"')
    rows = {r["tenant_id"]: r for r in status(settings)}
    assert rows["globex"]["published"]["error"].startswith("JSONDecodeError") and rows["acme"]["published"]
    # a failed node that is no data test (an engineer's seed) fails the command, whichever tenant was asked for
    (settings.dbt_project_dir / "tests/assert_globex_has_no_users.sql").unlink()
    (settings.dbt_project_dir / "seeds").mkdir(exist_ok=True)
    (settings.dbt_project_dir / "seeds/bad_seed.csv").write_text("a,b\n1,2\n3,4,5\n")
    assert main(["features", "build", "--tenant", "acme"]) == 1
    # and holds back every tenant of the warehouse: the data tests did not run
    rows = {r["tenant_id"]: r for r in status(settings)}
    assert all("dbt seed bad_seed failed to build" in r["health_problems"] for r in rows.values()), rows
    (settings.dbt_project_dir / "seeds/bad_seed.csv").unlink()
    assert main(["features", "build"]) == 0
    assert status(settings)[1]["published"]["snapshot_id"]  # globex, published again: its pointer rewritten
    # the removed test's compiled query is gone from the target folder (dbt leaves it), the other tests' are there
    compiled = settings.stores.dbt_target(wh.key) / "compiled/tenantflow"
    assert not list(compiled.rglob("assert_globex_has_no_users.sql")) and list(compiled.rglob("*.sql"))

    # the lake changes after the check (not when the same files are ingested again): status says to build
    def land_again() -> None:
        ingest_tenants(["acme"], POOL.start_date, POOL.end_date + timedelta(days=1), settings)

    land_again()
    assert "lake changed after the last feature check" not in format_table(status(settings), width=400)
    day = settings.stores.landing.day_dir("eu", "acme", POOL.end_date)
    (day / "late.csv").write_text(
        f"event_id,user_id,item_id,event_type,event_at\nlate1,u000001,i000001,click,{POOL.end_date}T12:00:00Z\n"
    )
    os.utime(day / "late.csv", (time.time() - 3600, time.time() - 3600))
    land_again()
    table = " ".join(format_table(status(settings), width=400).split())
    assert "lake changed after the last feature check (" in table and table.count("lake changed after") == 1
    assert f"`tenantflow features build --tenant acme --rebuild-from {POOL.end_date}`" in table  # the changed day


def test_dbts_built_in_tests_name_the_tenants_and_hold_within_one(settings, tmp_path):
    """dbt's ``not_null``, ``accepted_values``, ``unique`` and ``relationships`` (the project's
    ``macros/tenant_generic_tests.sql``) name the tenants whose rows fail them, so only those are held back, with a
    ``where`` config too; ``not_null`` and ``accepted_values`` (on ``tenant_id`` too) fail, warn and count as dbt's own (one failing row per bad value: an
    ``error_if`` of two tenants' value still warns), ``unique`` and ``relationships`` hold within a tenant;
    a test of an ephemeral model runs, and ``dbt docs generate`` compiles them before any model is built."""
    from ml.data.dbt import generate_docs

    files = {
        "models/user_checks.sql": (
            "select tenant_id, user_id, case when tenant_id = 'globex' then 'odd' else 'ok' end as kind,\n"
            "  'odd' as shared, case when tenant_id = 'globex' then null else 1 end as n\n"
            "from (select distinct tenant_id, user_id from {{ ref('int_user_activity__daily') }})\n"
        ),
        "models/user_checks_cte.sql": (
            "{{ config(materialized='ephemeral') }}\nselect tenant_id, user_id from {{ ref('int_user_activity__daily') }}\n"
        ),
        # globex's user ids are acme's too: u000001, ...
        "models/acme_users.sql": (
            "select tenant_id, user_id from {{ ref('int_user_activity__daily') }} where tenant_id = 'acme'\n"
        ),
        "models/user_checks.yml": (
            "models:\n  - name: user_checks\n    columns:\n"
            "      - name: tenant_id\n        data_tests: [{accepted_values: {arguments: {values: [acme]}}}]\n"
            "      - name: kind\n        data_tests: [{accepted_values: {arguments: {values: [ok]}}},\n"
            "          {unique: {config: {where: \"tenant_id = 'globex'\"}}}]\n"
            "      - name: shared\n"
            "        data_tests: [{accepted_values: {arguments: {values: [ok]}, config: {error_if: '>1'}}}]\n"
            "      - name: n\n        data_tests: [{not_null: {config: {where: 'user_id is not null'}}}]\n"
            "      - name: user_id\n"
            "        data_tests: [unique, {relationships: {arguments: {to: ref('acme_users'), field: user_id}}}]\n"
            "  - name: user_checks_cte\n    columns:\n      - name: user_id\n        data_tests: [not_null]\n"
        ),
    }
    settings, wh = _engineers_pool(settings, tmp_path, files)
    assert generate_docs(settings, wh).exists()  # nothing built yet: the tests compile as dbt's own
    _land(settings)
    result = features.build_and_check_warehouse(wh, online_marts(), settings, threads=1)
    statuses = {n["node"].split(".")[2]: (n["status"], n["failures"]) for n in result["nodes"]}
    m = statuses["not_null_user_checks_n"][1]  # globex's active users
    assert 0 < m <= 150 and statuses["accepted_values_user_checks_kind__ok"] == ("fail", 1)  # one bad value
    assert statuses["accepted_values_user_checks_shared__ok"] == ("warn", 1)
    assert statuses["not_null_user_checks_cte_user_id"] == ("pass", 0)
    # user ids repeat across tenants: unique within each; every globex user is an orphan, its ids are acme's
    # too, but a parent must be the same tenant's
    assert statuses["unique_user_checks_user_id"] == ("pass", 0) and statuses["unique_user_checks_kind"] == ("fail", 1)
    [orphans] = [name for name in statuses if name.startswith("relationships_user_checks_user_id")]
    assert statuses[orphans] == ("fail", m)
    globex, acme = result["health"]["globex"], result["health"]["acme"]
    compiled = f"{result['target_dir']}/compiled/tenantflow/models/user_checks.yml"
    per_value = "dbt's count, 1, is of its result rows over every tenant; each result row is one failing value, its "
    per_value += "tenant_rows counting each tenant's rows; "  # one result per bad value

    def failed_on(test: str, note: str = "") -> str:
        return f"dbt test {test} failed on {m} of this tenant's rows ({note}its query: {compiled}/{test}.sql)"

    assert globex["health_problems"] == [
        failed_on("accepted_values_user_checks_kind__ok", per_value),
        failed_on("accepted_values_user_checks_tenant_id__acme", per_value),  # "only acme"
        failed_on("not_null_user_checks_n"),
        failed_on(orphans),
        failed_on("unique_user_checks_kind", per_value),  # one repeated value, m rows
    ]
    assert acme["healthy"] and not globex["healthy"] and set(result["published"]) == {"acme"}
    # a tenant_id in any case, and a tenant_rows map whose '' key (a null tenant_id) names no tenant
    named = [
        {"node": "test.tenantflow.upper.1", "status": "fail", "failures": 1, "message": "Got 1 result",
         "sql": "select 'globex' as TENANT_ID"},
        {"node": "test.tenantflow.mapped.2", "status": "fail", "failures": 1, "message": "Got 1 result",
         "sql": "select 'x' as value_field, map {'globex': 3, '': 2} as tenant_rows"},
        {"node": "test.tenantflow.empty.3", "status": "fail", "failures": 1, "message": "Got 1 result",
         "sql": "select 'globex' as tenant_id where false"},
        {"node": "test.tenantflow.uncounted.4", "status": "fail", "failures": 1, "message": "Got 1 result",
         "sql": "select map(['zz'], [null::int]) as tenant_rows"},
        {"node": "test.tenantflow.nested.5", "status": "fail", "failures": 1, "message": "Got 1 result",
         "sql": "select ['globex'] as tenant_id"},
    ]  # fmt: skip
    held = _held_back(settings, wh, named)
    every = [
        "dbt test mapped failed: 2 of its failing rows name no tenant of this warehouse, so every tenant of this "
        "warehouse is held back (Got 1 result)"
    ]
    # rows that give no count (gone when read again, a map without counts) or a list for a tenant: every tenant
    every += [
        "dbt test empty failed: read again, its rows give no count of any tenant's rows, so every tenant of this "
        "warehouse is held back (Got 1 result)",
        "dbt test uncounted failed: read again, its rows give no count of any tenant's rows, so every tenant of this "
        "warehouse is held back (Got 1 result)",
        "dbt test nested failed: 1 of its failing rows name no tenant of this warehouse, so every tenant of this "
        "warehouse is held back (Got 1 result)",
    ]
    assert held == {
        "acme": every,
        "globex": [
            "dbt test upper failed on 1 of this tenant's rows",
            "dbt test mapped failed on 3 of this tenant's rows (dbt's count, 1, is of its result rows over every "
            "tenant; each result row is one failing value, its tenant_rows counting each tenant's rows)",
            *every,
        ],
    }


def _held_back(settings, wh, failed_nodes: list[dict]) -> dict[str, list[str]]:
    """The health problems of these failed dbt nodes for acme and globex, their queries read on the built warehouse."""
    con = warehouse.connect(wh.path(settings), read_only=True, threads=1)
    try:
        return dbt_failures.failed_tests(con, failed_nodes, ["acme", "globex"])
    finally:
        con.close()


POOL = small_config(days=4, specs=[TenantSpec(t, "eu", users=150, items=40, fmt="csv") for t in ("acme", "globex")])


def _engineers_pool(settings, tmp_path, files: dict[str, str]) -> tuple:
    """Settings on a copy of the dbt project with an analytics engineer's files (path -> text) added, acme and
    globex registered in one eu pool, and that pool's warehouse."""
    project = tmp_path / "dbt_project"
    shutil.copytree(settings.dbt_project_dir, project, ignore=shutil.ignore_patterns("target", "logs"))
    for path, text in files.items():
        (project / path).write_text(text)
    settings = settings.model_copy(update={"dbt_project_dir": project})
    register(settings, POOL, silo=())
    [wh] = warehouse.warehouses(TenantStore(settings).list())
    return settings, wh


def _land(settings) -> None:
    """The pool's generated days, landed and ingested."""
    generate(POOL, settings.stores.landing.root, workers=1)
    ingest_tenants(["acme", "globex"], POOL.start_date, POOL.end_date + timedelta(days=1), settings)
