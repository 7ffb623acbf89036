"""A tenant's windows as its last feature build chose them (dbt model ``int_tenant_windows``)."""

from __future__ import annotations

from typing import Any


def tenant_window(con: Any, tenant_id: str, column: str, default: int) -> int:
    """The tenant's ``column`` of ``int_tenant_windows`` (e.g. ``churn_window_days``), in days, on
    the warehouse connection ``con``; ``default`` for a warehouse built before the column existed
    or a tenant it has no row for."""
    found = con.execute(
        "select count(*) from information_schema.columns where table_name = 'int_tenant_windows' and column_name = ?",
        [column],
    ).fetchone()[0]
    if not found:
        return default
    row = con.execute(f'select "{column}" from int_tenant_windows where tenant_id = ?', [tenant_id]).fetchone()
    return int(row[0]) if row else default


def batch_horizon(con: Any, table: str, now: str) -> str:
    """SQL of a scored batch's horizon in days, for rows of ``table`` (``schema.name``) aliased ``s``:
    the ``horizon_days`` each row was scored for (``ml.models.score``), else ``now`` (an SQL
    expression: the tenant's window today) for rows scored before horizons were recorded."""
    schema, name = table.split(".")
    found = con.execute(
        "select count(*) from information_schema.columns where table_schema = ? and table_name = ? "
        "and column_name = 'horizon_days'",
        [schema, name],
    ).fetchone()[0]
    return f"coalesce(s.horizon_days, {now})" if found else now
