"""Airflow's api-server as someone on the network meets it, started as `make up` starts it: where it
listens, whether admin/admin opens it, whether its configuration (database URL, secrets) is shown."""

from __future__ import annotations

import os
import socket
import stat

import httpx
import psutil

from ml.core.settings import get_settings
from ml.ops.airflow import running_airflow
from ml.ops.airflow_client import airflow_password


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(pid: int, port: int) -> set[str]:
    """Addresses the process tree of ``pid`` listens on at ``port``."""
    procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    out = set()
    for p in procs:
        for c in p.net_connections(kind="inet"):
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port:
                out.add(c.laddr.ip)
    return out


def test_airflow_listens_on_loopback_with_a_generated_password_and_hides_its_config(tmp_path, monkeypatch):
    monkeypatch.setenv("TENANTFLOW_HOME", str(tmp_path / "home"))
    port = _free_port()
    monkeypatch.setenv("TENANTFLOW_AIRFLOW_PORT", str(port))
    for k in [k for k in os.environ if k.startswith("AIRFLOW")]:
        monkeypatch.delenv(k)
    settings = get_settings()
    with running_airflow(settings, components=("api-server",)) as airflow:
        assert _listening(airflow.services.procs["api-server"].pid, port) == {"127.0.0.1"}
        with httpx.Client(base_url=airflow.base, timeout=30) as http:
            guessed = http.post("/auth/token", json={"username": "admin", "password": "admin"})
            assert guessed.status_code == 401
            assert http.get("/api/v2/dags").status_code == 401
            token = airflow.token()  # the generated password logs in
            config = http.get("/api/v2/config", headers={"Authorization": f"Bearer {token}"})
            assert config.status_code == 403, config.text
    secret = settings.stores.secrets / "airflow-admin-password"
    assert secret.read_text().strip() == airflow_password(settings) != "admin"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    passwords = settings.airflow_home / "simple_auth_manager_passwords.json"
    assert stat.S_IMODE(passwords.stat().st_mode) == 0o600
