"""Tenantflow's library: every piece of pipeline logic, importable without Airflow.

One package per plane, imports only going down (an import-linter contract in pyproject.toml):

* ``ml.ops``: the CLI, running Airflow, status, the demo
* ``ml.serving`` and ``ml.monitoring`` (independent of each other): the API; drift and decay
* ``ml.models``: model kinds, training, evaluation, the MLflow registry, the gate, batch scoring
* ``ml.data``: generation, ingestion, data quality, dbt features, snapshots, published features
* ``ml.core``: settings, store layouts, atomic writes, the control database, tenants, warehouses

ARCHITECTURE.md draws them.
"""
