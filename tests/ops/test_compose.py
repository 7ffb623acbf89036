"""The rules docker-compose.yaml, the Dockerfile and .dockerignore keep (no Docker engine here: the
services themselves are started natively by the security and integration tests)."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys

import yaml

from ml.core.settings import REPO_ROOT

COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yaml").read_text())
SECRET_NAME = re.compile(r"SECRET|PASSWORD|TOKEN|SQL_ALCHEMY_CONN|BROKER_URL|RESULT_BACKEND", re.I)
REQUIRED_VARIABLE = re.compile(r"\$\{[A-Z_]+:\?[^}]+\}")


def _environments():
    for name, service in COMPOSE["services"].items():
        yield name, service.get("environment") or {}


def test_no_secret_is_written_in_the_compose_file():
    for name, env in _environments():
        for key, value in env.items():
            if SECRET_NAME.search(key):
                assert REQUIRED_VARIABLE.search(str(value)), f"{name}: {key} must come from .env, not {value!r}"
    text = (REPO_ROOT / "docker-compose.yaml").read_text()
    assert "change-me" not in text and "admin:admin" not in text and "airflow:airflow@" not in text


def test_ports_bind_to_loopback_unless_the_operator_says_otherwise():
    for name, service in COMPOSE["services"].items():
        for port in service.get("ports", []):
            assert port.startswith("${TENANTFLOW_BIND:-127.0.0.1}:"), f"{name} publishes {port} on every interface"


def test_long_running_services_have_healthchecks_and_mlflow_runs_its_auth_app():
    one_shot = {"airflow-init"}
    for name, service in COMPOSE["services"].items():
        if name not in one_shot:
            assert "healthcheck" in service, f"{name} has no healthcheck"
    mlflow = COMPOSE["services"]["mlflow"]["command"]
    assert "--app-name basic-auth" in mlflow and "--allowed-hosts 'mlflow," in mlflow
    assert COMPOSE["services"]["mlflow"]["environment"]["MLFLOW_AUTH_CONFIG_PATH"]
    airflow = COMPOSE["services"]["airflow-apiserver"]["environment"]
    assert airflow["AIRFLOW__CORE__AUTH_MANAGER"].endswith("FabAuthManager")
    assert airflow["AIRFLOW__API__EXPOSE_CONFIG"] == "False"


def test_the_image_runs_as_a_user_with_lightgbms_runtime_and_without_local_state():
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.M)
    assert users and users[-1] not in ("root", "0"), "the image must not run as root"
    assert "libgomp1" in dockerfile
    ignored = set((REPO_ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", "var", ".env"} <= ignored


def test_compose_env_generates_private_secrets_once(tmp_path):
    out = tmp_path / ".env"
    env = {**os.environ, "TENANTFLOW_HOME": str(tmp_path / "home")}
    cmd = [sys.executable, "-m", "ml.ops.cli", "compose-env", "--out", str(out)]
    assert subprocess.run(cmd, env=env, capture_output=True, timeout=120).returncode == 0
    first = out.read_text()
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    values = dict(line.split("=", 1) for line in first.splitlines() if line and not line.startswith("#"))
    needed = set(re.findall(r"\$\{([A-Z_]+):\?", (REPO_ROOT / "docker-compose.yaml").read_text()))
    assert needed <= set(values), f"compose needs {needed - set(values)} that compose-env does not write"
    assert all(len(v) >= 16 for k, v in values.items() if "PASSWORD" in k or "SECRET" in k)
    subprocess.run(cmd, env=env, capture_output=True, timeout=120)
    assert out.read_text() == first, "a second run must keep the secrets"


def test_every_variable_the_procfile_reads_leaves_the_settings_loadable(tmp_path):
    """`make up` exports these to every process it starts; one the settings tree rejects (it did:
    TENANTFLOW_MLFLOW_ARTIFACTS read as a field of the mlflow group) stops the API at start."""
    names = set(re.findall(r"\$\{(TENANTFLOW_[A-Z_]+)\}", (REPO_ROOT / "Procfile").read_text()))
    env = {**os.environ, "TENANTFLOW_HOME": str(tmp_path / "home"), **dict.fromkeys(names, "8123")}
    env["TENANTFLOW_AIRFLOW_HOST"] = "127.0.0.1"
    env["TENANTFLOW_UP_MLFLOW_ARTIFACTS"] = str(tmp_path / "artifacts")
    done = subprocess.run(
        [sys.executable, "-m", "ml.ops.cli", "audit", "verify"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and "warning" not in done.stderr, done.stderr[-2000:]
    assert {"TENANTFLOW_UP_MLFLOW_ARTIFACTS", "TENANTFLOW_AIRFLOW_HOST"} <= names


def test_airflow_in_compose_loads_the_dags_and_plugins_of_the_image_and_logs_mlflow_through_airflow():
    """What `make up` sets for Airflow (ml/ops/airflow.py) that the image's layout also needs: the
    DAGs and the plugins (the Tenants view) of the source copied into it, and MLflow's logging
    and progress bars off stderr (a task's stderr is its log's ERROR level)."""
    env = dict(_environments())["airflow-apiserver"]
    workdir = re.search(r"^WORKDIR (\S+)", (REPO_ROOT / "Dockerfile").read_text(), re.M).group(1)
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == f"{workdir}/dags"
    assert env["AIRFLOW__CORE__PLUGINS_FOLDER"] == f"{workdir}/plugins"
    assert env["MLFLOW_CONFIGURE_LOGGING"] == "false" and env["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] == "false"
