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


WINDOWS = ("label_window_days", "churn_window_days", "feature_window_days")


def chosen_windows(settings: Any, tenant: Any) -> dict[str, float | None] | str:
    """The windows (``label_window_days``, ``churn_window_days``, ``feature_window_days``: whole days) and the
    activity cadence (``cadence_days``: the median of its users' median days between active days; None where no
    user came back, when the windows are their minimums) the tenant's last features build chose
    (``int_tenant_windows``, its warehouse opened read-only); else why there are none, as a sentence (no build yet,
    the warehouse held by a build, its key missing or unreadable)."""
    import duckdb

    from ml.core.warehouse import WarehouseKeyError, connect

    path = settings.stores.warehouse_file(tenant.warehouse_key)
    if not path.exists():
        return "no features build yet"
    try:
        con = connect(path, read_only=True)
    except duckdb.Error as exc:  # a build holds it, most often
        return f"its warehouse cannot be read ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
    except WarehouseKeyError as exc:  # a silo tenant's key: missing, wrong, malformed
        return f"its warehouse cannot be opened: {exc}"
    try:
        cols = ", ".join(f'"{c}"' for c in (*WINDOWS, "cadence_days"))
        row = con.execute(f"select {cols} from int_tenant_windows where tenant_id = ?", [tenant.tenant_id]).fetchone()
    except duckdb.Error:
        return "no features build of this version yet (int_tenant_windows)"
    finally:
        con.close()
    if row is None:
        return "no features build with its data yet"
    return {c: (None if v is None else float(v)) for c, v in zip((*WINDOWS, "cadence_days"), row, strict=True)}


def unset_windows_note(settings: Any, tenant: Any) -> str | None:
    """``label_window_days, churn_window_days null: from its activity cadence at each features build; the last:
    label_window_days 14, churn_window_days 35 (cadence 4.5 days)`` for a tenant with windows left unset; else None."""
    if not (unset := [w for w in WINDOWS if getattr(tenant, w) is None]):
        return None
    chose = chosen_windows(settings, tenant)
    if isinstance(chose, dict):
        cadence = chose["cadence_days"]
        made = ", ".join(f"{w} {chose[w]:.0f}" for w in unset if chose[w] is not None) + (
            f" (cadence {cadence:.1f} days)" if cadence is not None else " (no user came back yet: the minimums)"
        )
    else:
        made = chose
    return f"{', '.join(unset)} null: from its activity cadence at each features build; the last: {made}"
