"""Tenantflow's library: every piece of pipeline logic, importable without Airflow.

One module per stage of the flow: ``tenants`` (registry), ``generate`` (synthetic SaaS),
``ingest`` (landing → lake), ``quality`` (Great Expectations suites), ``features`` (dbt),
``status`` (the status contract), ``platform`` (running Airflow and friends locally).
"""
