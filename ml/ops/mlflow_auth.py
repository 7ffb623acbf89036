"""MLflow behind its basic-auth app: the config, the admin and the service account.

``mlflow server --app-name basic-auth`` reads an INI file named by ``MLFLOW_AUTH_CONFIG_PATH``
(MLflow's "Basic authentication" guide, ``mlflow/server/auth/basic_auth.ini``): the permission a
user has on what they did not create (here ``NO_PERMISSIONS``), the users database, and the admin
created at the server's first start. :func:`prepare` writes that file into ``<home>/secrets``
(mode 0600) with the admin's password (``TENANTFLOW_MLFLOW_ADMIN_PASSWORD``, else generated into
``secrets/mlflow-admin-password``), and creates the service account the DAGs and the API log in
as (``TENANTFLOW_MLFLOW_SERVICE_USER``; a non-admin that manages what it creates — every
experiment and registered model of the platform). Clients pass it the MLflow way:
``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD`` (:func:`client_env`).
"""

from __future__ import annotations

import configparser
import io
import os
from dataclasses import dataclass
from pathlib import Path

from ml.core import secret_files
from ml.core.settings import Settings

DEFAULT_PERMISSION = "NO_PERMISSIONS"
AUTHORIZATION = "mlflow.server.auth:authenticate_request_basic_auth"


@dataclass(frozen=True)
class MlflowAuth:
    """Where the auth config is and who logs in (passwords are read from the secret files)."""

    config: Path
    database_uri: str
    admin_user: str
    admin_password: str
    service_user: str
    service_password: str


def prepare(settings: Settings, database_uri: str | None = None) -> MlflowAuth:
    """Write the auth config (0600) and create or update the service account; idempotent.

    ``database_uri`` is the users database (SQLAlchemy URI; default SQLite in ``<home>/mlflow``).

    Raises:
        OSError: the secrets folder cannot be written.
    """
    secrets = settings.stores.secrets
    m = settings.mlflow
    auth = MlflowAuth(
        config=secrets / "mlflow-auth.ini",
        database_uri=database_uri or f"sqlite:///{settings.home / 'mlflow' / 'auth.sqlite'}",
        admin_user=m.admin_user,
        admin_password=m.admin_password or secret_files.generated(secrets / "mlflow-admin-password", 18),
        service_user=m.service_user,
        service_password=m.service_password or secret_files.generated(secrets / "mlflow-service-password", 24),
    )
    parser = configparser.ConfigParser(interpolation=None)
    parser["mlflow"] = {
        "default_permission": DEFAULT_PERMISSION,
        "database_uri": auth.database_uri,
        "admin_username": auth.admin_user,
        "admin_password": auth.admin_password,
        "authorization_function": AUTHORIZATION,
        # a checked password is trusted this long (0: checked on every request, scrypt's cost each time)
        "auth_cache_ttl_seconds": str(m.auth_cache_seconds),
    }
    text = io.StringIO()
    parser.write(text)
    _write_private(auth.config, text.getvalue())
    if auth.database_uri.startswith("sqlite:///"):
        Path(auth.database_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    _ensure_service_account(auth)
    return auth


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    path.chmod(0o600)


def _ensure_service_account(auth: MlflowAuth) -> None:
    """The service account in the users database (the admin is created by the server itself)."""
    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore()
    store.init_db(auth.database_uri)
    if store.has_user(auth.service_user):
        store.update_user(auth.service_user, password=auth.service_password)
    else:
        store.create_user(auth.service_user, auth.service_password, is_admin=False)


def server_env(auth: MlflowAuth) -> dict[str, str]:
    """Environment of ``mlflow server --app-name basic-auth``: the config, and the Flask secret
    that signs its CSRF tokens (``MLFLOW_FLASK_SERVER_SECRET_KEY``; set, else generated beside
    the config)."""
    key = os.environ.get("MLFLOW_FLASK_SERVER_SECRET_KEY") or secret_files.generated(
        auth.config.with_name("mlflow-flask-secret")
    )
    return {"MLFLOW_AUTH_CONFIG_PATH": str(auth.config), "MLFLOW_FLASK_SERVER_SECRET_KEY": key}


def client_env(auth: MlflowAuth) -> dict[str, str]:
    """Environment of a process that talks to the server as the service account."""
    return {"MLFLOW_TRACKING_USERNAME": auth.service_user, "MLFLOW_TRACKING_PASSWORD": auth.service_password}
