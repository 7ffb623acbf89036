"""MLflow as `make up` starts it (the Procfile's own command line) meets a caller without
credentials, a user without permissions, the service account and a compose-style Host header."""

from __future__ import annotations

import configparser
import os
import re
import signal
import stat
import subprocess

import httpx
import pytest
import yaml

from ml.core.settings import REPO_ROOT, get_settings
from ml.ops import mlflow_auth
from tests.served import free_port, wait_healthy


def _procfile(name: str) -> str:
    for line in (REPO_ROOT / "Procfile").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no {name} in the Procfile")


def _compose_allowed_hosts() -> str:
    command = yaml.safe_load((REPO_ROOT / "docker-compose.yaml").read_text())["services"]["mlflow"]["command"]
    return re.search(r"--allowed-hosts (\S+)", command).group(1)


@pytest.fixture
def mlflow_server(tmp_path, monkeypatch):
    monkeypatch.setenv("TENANTFLOW_HOME", str(tmp_path / "home"))
    settings = get_settings()
    auth = mlflow_auth.prepare(settings)
    port = free_port()
    settings.stores.mlflow_artifacts.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        **mlflow_auth.server_env(auth),
        "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
        "TENANTFLOW_UP_MLFLOW_ARTIFACTS": str(settings.stores.mlflow_artifacts),
        "TENANTFLOW_MLFLOW_PORT": str(port),
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "PATH": f"{os.path.dirname(os.sys.executable)}:{os.environ['PATH']}",
    }
    log = open(tmp_path / "mlflow.log", "ab")  # noqa: SIM115 — closed below
    # the Procfile's command, with the compose file's --allowed-hosts (its service name is `mlflow`)
    command = f"exec {_procfile('mlflow-ui')} --allowed-hosts {_compose_allowed_hosts()}"
    proc = subprocess.Popen(
        ["bash", "-c", command], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    wait_healthy(base, proc, tmp_path / "mlflow.log")
    try:
        yield base, auth
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
        log.close()


def test_the_service_account_is_how_the_platforms_clients_log_in(mlflow_server, monkeypatch):
    """MLflow's own client (the registry, the API's alias watcher) with MLFLOW_TRACKING_USERNAME/_PASSWORD."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    base, auth = mlflow_server
    c = MlflowClient(tracking_uri=base, registry_uri=base)
    with pytest.raises(MlflowException, match="401|Unauthorized|credentials"):
        c.search_registered_models()
    for k, v in mlflow_auth.client_env(auth).items():
        monkeypatch.setenv(k, v)
    c.create_registered_model("churn.acme", tags={"tenant_id": "acme"})
    experiment = c.create_experiment("tenantflow-churn")
    run = c.create_run(experiment, tags={"tenant_id": "acme"})
    c.set_terminated(run.info.run_id)
    assert [m.name for m in c.search_registered_models()] == ["churn.acme"]


def test_mlflow_refuses_callers_without_credentials_and_users_without_permission(mlflow_server):
    base, auth = mlflow_server
    assert stat.S_IMODE(auth.config.stat().st_mode) == 0o600
    # a checked password is trusted for the setting's seconds, not scrypt-checked on every request
    config = configparser.ConfigParser(interpolation=None)
    config.read(auth.config)
    assert config.getint("mlflow", "auth_cache_ttl_seconds") == get_settings().mlflow.auth_cache_seconds > 0
    service = (auth.service_user, auth.service_password)
    admin = (auth.admin_user, auth.admin_password)
    api = f"{base}/api/2.0/mlflow"
    with httpx.Client(timeout=30) as http:
        # nobody: 401 on reading and on the attack of the report (register a model, move an alias)
        assert http.get(f"{api}/registered-models/search").status_code == 401
        assert http.post(f"{api}/registered-models/create", json={"name": "recommender.acme"}).status_code == 401
        assert http.get(f"{api}/registered-models/search", auth=("admin", "admin")).status_code == 401
        # the service account creates what the platform registers, and so manages it
        made = http.post(f"{api}/registered-models/create", json={"name": "recommender.acme"}, auth=service)
        assert made.status_code == 200, made.text
        # a user the admin created, with the default permission (NO_PERMISSIONS), reads nothing
        other = http.post(
            f"{api}/users/create", json={"username": "analyst", "password": "an-analyst-pw-123"}, auth=admin
        )
        assert other.status_code == 200, other.text
        got = http.get(
            f"{api}/registered-models/get", params={"name": "recommender.acme"}, auth=("analyst", "an-analyst-pw-123")
        )
        assert got.status_code == 403
        alias = {"name": "recommender.acme", "alias": "champion", "version": "1"}
        assert (
            http.post(f"{api}/registered-models/alias", json=alias, auth=("analyst", "an-analyst-pw-123")).status_code
            == 403
        )
        assert (
            http.get(f"{api}/registered-models/get", params={"name": "recommender.acme"}, auth=admin).status_code == 200
        )
        # the compose service name is an allowed Host (every call to http://mlflow:5000 was 403 before)
        by_name = http.get(f"{api}/registered-models/search", headers={"Host": "mlflow:5000"}, auth=admin)
        assert by_name.status_code == 200, by_name.text
        elsewhere = http.get(f"{api}/registered-models/search", headers={"Host": "evil.example"}, auth=admin)
        assert elsewhere.status_code == 403
