"""A dbt-duckdb plugin: a silo tenant's Parquet key on dbt's DuckDB connection.

The profile's ``encrypted`` target loads it (``plugins: [{module: ml.data.dbt_plugin, config:
{key_name, key}}]``, both from ``env_var``). When :func:`ml.data.dbt.run_dbt` builds a silo
tenant's warehouse it puts the tenant's Parquet key (:func:`ml.core.tenant_parquet.derived`)
in ``DBT_ENV_SECRET_TENANTFLOW_PARQUET_KEY`` (dbt scrubs such variables from its logs) and its
name in ``TENANTFLOW_PARQUET_KEY_NAME``; the plugin registers it (DuckDB's ``add_parquet_key``), so
the lake source reads the tenant's encrypted files with ``encryption_config`` naming the key (var
``lake_key``). The key never passes through dbt's vars, which are written to its manifest. Keys
live on the DuckDB instance, so every cursor dbt opens sees them.
"""

from __future__ import annotations

from typing import Any

from dbt.adapters.duckdb.plugins import BasePlugin
from duckdb import DuckDBPyConnection

KEY_ENV = "DBT_ENV_SECRET_TENANTFLOW_PARQUET_KEY"
NAME_ENV = "TENANTFLOW_PARQUET_KEY_NAME"


class Plugin(BasePlugin):
    def initialize(self, plugin_config: dict[str, Any]) -> None:
        self.key_name = str(plugin_config.get("key_name") or "")
        self.key = str(plugin_config.get("key") or "")

    def configure_connection(self, conn: DuckDBPyConnection) -> None:
        if self.key and self.key_name:  # base64 of 32 bytes and tenant_<slug> (ml.core.tenant_parquet)
            conn.execute(f"pragma add_parquet_key('{self.key_name}', '{self.key}')")
