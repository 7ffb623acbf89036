"""What a feature build's failed dbt nodes mean for each tenant of the warehouse (:mod:`ml.data.features`).

A failed model, seed or snapshot holds back every tenant (the data tests did not run); a failed data test holds
back the tenants its failing rows name (its compiled query run again), or every tenant when they name none.
"""

from __future__ import annotations

from typing import Any

from ml.data.dbt import failed_data_test


def failed_models(failed_nodes: list[dict]) -> list[str]:
    """Health problems of a build's failed nodes that are no test (a model, a seed, a snapshot: every tenant of the
    warehouse is held back, and the data tests did not run), each with its hint, then the models dbt skipped
    because a node they read, or a unit test of one, had failed (one line, naming the failed tests; a data test
    skips no model: :func:`ml.data.features.build_warehouse`)."""
    models = [n for n in failed_nodes if n["node"].startswith("model.")]
    built = [n for n in failed_nodes if n["node"].startswith(("model.", "seed.", "snapshot."))]
    problems = [
        f"dbt {n['node'].split('.')[0]} {n['node'].split('.')[-1]} failed to build"
        + (f": {n['hint']}" if n.get("hint") else "")
        for n in sorted(built, key=lambda n: n["node"])
        if n["status"] != "skipped"
    ]
    if skipped := sorted(n["node"].split(".")[-1] for n in models if n["status"] == "skipped"):
        tests = sorted(  # unit_test.<project>.<model>.<name>
            n["node"].split(".")[-1]
            for n in failed_nodes
            if n["node"].startswith("unit_test.") and n["status"] in ("fail", "error")
        )
        why = "a model or seed they read failed" + (
            f", or a failed unit test upstream, among: {', '.join(tests)}" if tests else ""
        )
        problems.append(
            f"{len(skipped)} dbt model{'s' if len(skipped) > 1 else ''} skipped ({', '.join(skipped)}), as {why}"
        )
    return problems


def failed_tests(con: Any, failed_nodes: list[dict], tenants: list[str]) -> dict[str, list[str]]:
    """Health problems of a build's failed data tests, per tenant. A test's failing rows (its compiled
    query, run again) count against the tenants they name (``tenant_id``): a failure of one tenant's
    data holds back no other (dbt's built-in tests name them too: the project's
    ``macros/tenant_generic_tests.sql``). Rows that name no tenant of the warehouse (no ``tenant_id``
    column: a model without one; a null or unknown one, as ``not_null`` on ``tenant_id``),
    a test that could not run, or one whose rows cannot be read again, hold back every tenant of it."""
    out: dict[str, list[str]] = {t: [] for t in tenants}
    for n in failed_nodes:
        if not failed_data_test(n["node"], n["status"]):
            continue
        name = n["node"].split(".")[2]
        rows, why, by_value = (
            _failing_rows_by_tenant(con, n) if n["status"] == "fail" else ({}, "it could not run", False)
        )
        unnamed = sum(k for t, k in rows.items() if t not in out)
        for t, k in rows.items():
            if t in out:
                out[t].append(f"dbt test {name} failed on {k} of this tenant's rows{_test_note(n, k, by_value)}")
        if why or unnamed:
            why = why or f"{unnamed} of its failing rows name no tenant of this warehouse"
            for t in tenants:
                held = f"so every tenant of this warehouse is held back ({n['message']})"
                out[t].append(f"dbt test {name} failed: {why}, {held}")
    return out


def _test_note(node: dict, rows: int, by_value: bool = False) -> str:
    """`` (dbt's count, 1, is of its result rows over every tenant; its query: <path>)``: where a tenant's
    failing rows are, and why dbt's "Got N results" may differ (``by_value``: the query returns one result per bad
    value, every tenant's, with each tenant's rows counted in ``tenant_rows``)."""
    notes = [f"dbt's count, {node['failures']}, is of its result rows over every tenant"]
    notes = notes if node.get("failures") not in (None, rows) else []
    if by_value:
        notes.append("each result row is one failing value, its tenant_rows counting each tenant's rows")
    if node.get("compiled_path"):
        notes.append(f"its query: {node['compiled_path']}")
    return f" ({'; '.join(notes)})" if notes else ""


def _failing_rows_by_tenant(con: Any, node: dict) -> tuple[dict[Any, int], str, bool]:
    """A failed test's rows per tenant (its query run again), or ``{}`` and why they cannot be told apart; and
    whether its result rows are failing values (a ``tenant_rows`` map), not rows.

    A test names tenants by a ``tenant_id`` column (each failing row one of that tenant's rows), or by a
    ``tenant_rows`` map of tenant_id to rows (the project's ``accepted_values`` and ``unique``: one row per value);
    either in any case. The key None or ``''``: rows without a tenant."""
    import duckdb

    sql = (node.get("sql") or "").strip().rstrip(";")
    if not sql:
        return {}, "its query was not recorded", False
    query = f"select * from (\n{sql}\n)"  # (on lines of their own: a test may end in a -- comment)
    try:
        columns = {d[0].lower(): d[0].replace('"', '""') for d in con.execute(f"{query} limit 0").description}
        if "tenant_rows" in columns:
            per_row = f'select unnest(map_entries("{columns["tenant_rows"]}"), recursive := true) from ({query})'
            counted = f"select key::varchar, sum(value)::bigint from ({per_row}) group by all"
        elif "tenant_id" in columns:
            counted = f'select "{columns["tenant_id"]}"::varchar, count(*) from ({query}) group by all'
        else:
            why = "return one, or a tenant_rows map, to hold back only the tenants they name"
            return {}, f"its failing rows ({node['failures']}) have no tenant_id column ({why})", False
        rows = dict(con.execute(counted).fetchall())
    except duckdb.Error as e:
        return {}, f"its rows could not be read again ({str(e).splitlines()[0]})", False
    if not rows or not all(k and k > 0 for k in rows.values()):  # (a test whose rows changed, a map without counts)
        return {}, "read again, its rows give no count of any tenant's rows", False
    return rows, "", "tenant_rows" in columns
