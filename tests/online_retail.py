"""The Online Retail export (../shared/datasets/online-retail/, CC BY 4.0, see its README) as a fleet:
one tenant per country, onboarded with the CLI and a source spec only, its facts re-derived here.

The data set is never copied into the repository: it is read where it is kept
(``TENANTFLOW_DATASETS``, default ``../shared/datasets`` beside the repository), and whatever
uses it skips with a message when it is absent.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import duckdb
import yaml

from ml.core.settings import Settings
from ml.core.tenants import TenantStore
from ml.data.ingest.history import import_history
from ml.ops.cli import main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "online-retail"
DATASET = Path(os.environ.get("TENANTFLOW_DATASETS", ROOT.parent / "shared" / "datasets")) / "online-retail"
ABSENT = (
    f"the Online Retail data set is not at {DATASET} (set TENANTFLOW_DATASETS to the folder holding online-retail/)"
)


# the lines that are no product (postage, manual lines, discounts, samples, bad debt, fees):
# the stock codes whose description names no product, over the year
CHARGE_CODES = "('POST', 'DOT', 'C2', 'M', 'D', 'S', 'B', 'BANK CHARGES', 'AMAZONFEE', 'CRUK')"


def day_files() -> list[Path]:
    """The export's per-day CSV files, oldest first (empty when the data set is absent)."""
    return sorted((DATASET / "by-day").glob("*.csv"))


def fleet(files: list[Path]) -> list[dict[str, str]]:
    """The tenants (``country, tenant_id, region`` of examples/online-retail/fleet.yaml) whose
    country has rows in ``files``."""
    tenants = yaml.safe_load((EXAMPLE / "fleet.yaml").read_text())["tenants"]
    with duckdb.connect() as con:
        present = {c for (c,) in con.sql(f"select distinct Country from {_read(files)}").fetchall()}
    return [t for t in tenants if t["country"] in present]


def onboard(tenants: list[dict[str, str]]) -> None:
    """``tenantflow tenants add`` and ``tenants source`` for each tenant: the onboarding, no code."""
    for t in tenants:
        assert main(["tenants", "add", t["tenant_id"], "--region", t["region"], "--display-name", t["country"]]) == 0
        assert main(["tenants", "source", t["tenant_id"], "--file", str(EXAMPLE / "source-spec.yaml")]) == 0


def import_fleet(settings: Settings, tenants: list[dict[str, str]], files: list[Path]) -> dict[str, dict[str, Any]]:
    """Each tenant imports the same files (keeping its own rows); its summary (and ``seconds``) by tenant id."""
    store = TenantStore(settings)
    out = {}
    for t in tenants:
        started = time.perf_counter()
        summary = import_history(settings, store.get(t["tenant_id"]), files).summary()
        out[t["tenant_id"]] = summary | {"seconds": round(time.perf_counter() - started, 1)}
    return out


def facts(files: list[Path]) -> dict[str, int]:
    """The README's facts, re-derived from the files with DuckDB (every value read as text)."""
    sql = f"""
        with rows as (
            select *, CustomerID is not null as has_customer, upper(trim(StockCode)) in {CHARGE_CODES} as is_charge
            from {_read(files)}
        ),
        distinct_rows as (select distinct * from rows)
        select
            (select count(*) from rows) as rows,
            (select count(*) from rows where not has_customer) as without_customer,
            (select count(*) from rows where has_customer)
              - (select count(*) from distinct_rows where has_customer) as duplicates_with_customer,
            (select count(*) from distinct_rows where has_customer and starts_with(InvoiceNo, 'C')
               and not is_charge) as returns,
            (select count(*) from distinct_rows where has_customer and is_charge) as charges,
            (select count(distinct CustomerID) from rows) as customers
    """
    with duckdb.connect() as con:
        con.execute("set enable_progress_bar = false")
        cur = con.sql(sql)
        return dict(zip(cur.columns, cur.fetchone() or (), strict=True))


def _read(files: list[Path]) -> str:
    paths = ", ".join("'" + str(p).replace("'", "''") + "'" for p in files)
    return f"read_csv([{paths}], header = true, all_varchar = true)"
