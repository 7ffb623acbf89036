"""The environment every local Airflow process gets: one home, secrets kept private, SQLite that waits for its lock."""

from __future__ import annotations

import importlib

from ml.ops.airflow import airflow_env


def test_the_embedded_sqlite_database_waits_for_its_lock(settings, monkeypatch):
    env = airflow_env(settings)
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("sqlite:///")
    module, _, name = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS"].rpartition(".")
    assert getattr(importlib.import_module(module), name)["timeout"] >= 60, "what Airflow's conf.getimport resolves"
    assert env["AIRFLOW_HOME"] == str(settings.home / "airflow") and env["TENANTFLOW_HOME"] == str(settings.home)
    # a production database brings its own connection settings: none are imposed on it
    monkeypatch.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "postgresql+psycopg2://airflow@db/airflow")
    assert "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS" not in airflow_env(settings)
