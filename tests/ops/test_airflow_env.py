"""The environment every local Airflow process gets: one home, secrets kept private, SQLite that waits for its lock."""

from __future__ import annotations

import importlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from ml.core.settings import REPO_ROOT
from ml.ops.airflow import airflow_env


def _connect_args(env: dict[str, str]) -> dict[str, Any]:
    """What Airflow's ``conf.getimport`` resolves the connect-args setting to."""
    module, _, name = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS"].rpartition(".")
    return getattr(importlib.import_module(module), name)


def test_a_pythonpath_of_the_users_own_keeps_the_dag_files_importable(settings, monkeypatch, tmp_path):
    """A PYTHONPATH set in the user's shell is kept after the repository's root, so the DAG files still import
    ``dags`` (with the user's alone, Airflow parsed no DAG: each file failed with "No module named 'dags'")."""
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    env = airflow_env(settings)
    assert env["PYTHONPATH"].split(os.pathsep) == [str(REPO_ROOT), str(tmp_path)]
    imported = subprocess.run(
        [sys.executable, "-c", "import dags.common"], env={**os.environ, **env}, cwd=tmp_path, capture_output=True
    )
    assert imported.returncode == 0, imported.stderr.decode()[-2000:]


def test_the_embedded_sqlite_database_waits_for_its_lock(settings, monkeypatch):
    env = airflow_env(settings)
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("sqlite:///")
    assert _connect_args(env)["timeout"] >= 60
    assert env["AIRFLOW_HOME"] == str(settings.home / "airflow") and env["TENANTFLOW_HOME"] == str(settings.home)
    # a production database brings its own connection settings: none are imposed on it
    monkeypatch.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "postgresql+psycopg2://airflow@db/airflow")
    assert "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS" not in airflow_env(settings)


def _engine(path: Path, **connect_args: Any):
    engine = create_engine(f"sqlite:///{path}", connect_args=connect_args)

    @event.listens_for(engine, "connect")
    def _wal(dbapi_connection, _record):  # as airflow.utils.orm_event_handlers does
        dbapi_connection.execute("PRAGMA journal_mode=WAL")

    return engine


def _read_then_write_in_a_savepoint(path: Path, connect_args: dict[str, Any]) -> list[int]:
    """Airflow's backfill pattern: ``begin_nested()``, read, another process commits, then write."""
    with sqlite3.connect(path) as con:
        con.execute("create table runs (n integer)")
    mine, other = _engine(path, **connect_args), _engine(path, timeout=0.2)
    try:
        with Session(mine) as session:
            with session.begin_nested():
                session.execute(text("select count(*) from runs")).scalar()
                try:  # the scheduler writes meanwhile (it gives up after 0.2 s if it must wait)
                    with other.begin() as conn:
                        conn.execute(text("insert into runs values (1)"))
                except OperationalError:
                    pass
                session.execute(text("insert into runs values (2)"))
            session.commit()
        with sqlite3.connect(path) as con:
            return sorted(n for (n,) in con.execute("select n from runs"))
    finally:
        mine.dispose()
        other.dispose()


def test_a_savepoint_that_reads_then_writes_is_not_refused_when_another_process_commits(settings, tmp_path):
    # pysqlite as is: the SAVEPOINT opened a deferred transaction whose read snapshot went stale,
    # and SQLite refuses the write at once ("database is locked"), whatever the busy timeout
    with pytest.raises(OperationalError, match="database is locked"):
        _read_then_write_in_a_savepoint(tmp_path / "plain.db", {"timeout": 5})
    # Airflow's connection: the SAVEPOINT took the write lock first, so the other writer waited
    # (and here gave up); our write and the commit succeed
    assert _read_then_write_in_a_savepoint(tmp_path / "airflow.db", _connect_args(airflow_env(settings))) == [2]


def test_savepoints_keep_their_meaning_on_the_immediate_connection(settings, tmp_path):
    engine = _engine(tmp_path / "s.db", **_connect_args(airflow_env(settings)))
    try:
        with Session(engine) as session:
            session.execute(text("create table runs (n integer)"))
            session.commit()
            with session.begin_nested():
                session.execute(text("insert into runs values (1)"))
            nested = session.begin_nested()
            session.execute(text("insert into runs values (2)"))
            nested.rollback()  # only the inner work is undone
            session.execute(text("insert into runs values (3)"))
            session.rollback()  # the outer transaction still owns the released savepoint's rows
            assert session.execute(text("select count(*) from runs")).scalar() == 0
            with session.begin_nested():
                session.execute(text("insert into runs values (4)"))
            session.commit()
            assert [n for (n,) in session.execute(text("select n from runs"))] == [4]
    finally:
        engine.dispose()


def test_tenantflow_env_masks_secrets_on_a_terminal_and_prints_them_for_eval(settings):
    """`tenantflow env` run by itself on a terminal would leave Airflow's signing keys in the scrollback: there
    they are masked (unless --show-secrets); piped, as `eval "$(tenantflow env)"` reads it, they are printed."""
    import os
    import pty
    import subprocess
    import sys

    cli = [sys.executable, "-m", "ml.ops.cli", "env"]
    env = {**os.environ, "TENANTFLOW_HOME": str(settings.home)}
    secret = airflow_env(settings)["AIRFLOW__API_AUTH__JWT_SECRET"]

    def on_a_terminal(*args: str) -> str:
        leader, follower = pty.openpty()
        proc = subprocess.run([*cli, *args], stdout=follower, stderr=subprocess.DEVNULL, env=env, timeout=120)
        os.close(follower)
        out = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # (the terminal closed: all read)
                break
            if not chunk:
                break
            out += chunk
        os.close(leader)
        assert proc.returncode == 0
        return out.decode()

    shown = on_a_terminal()
    assert "export AIRFLOW__API_AUTH__JWT_SECRET='(masked on a terminal" in shown and secret not in shown
    assert "export AIRFLOW_HOME=" in shown and "umask 077" in shown  # the rest as it is
    assert secret in on_a_terminal("--show-secrets")
    piped = subprocess.run(cli, capture_output=True, text=True, env=env, timeout=120, check=True).stdout
    assert f"export AIRFLOW__API_AUTH__JWT_SECRET='{secret}'" in piped
