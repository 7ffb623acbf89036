"""MLflow's UI as an ML engineer opens it (issue 16, points 5 and 8): `make up`'s server behind its
login, the model page in the machine-learning mode, the champion alias on the version the
platform registered, and the version's description."""

from __future__ import annotations

import base64

from ml.models import registry
from ml.ops import mlflow_auth
from ml.ops.tenant_view import runs_url
from tests.security.test_mlflow_auth import mlflow_server  # noqa: F401 (the server, as `make up` starts it)
from tests.ui.browser import chromium, screenshot, wait_text


def test_the_model_page_shows_the_champion_alias_and_the_versions_description(mlflow_server, monkeypatch):  # noqa: F811
    from mlflow import MlflowClient

    base, auth = mlflow_server
    for k, v in mlflow_auth.client_env(auth).items():
        monkeypatch.setenv(k, v)
    c = MlflowClient(tracking_uri=base, registry_uri=base)
    c.create_registered_model("recommender.acme", tags={"tenant_id": "acme", "kind": "recommender"})
    experiment = c.create_experiment("tenantflow-recommender", tags=registry.EXPERIMENT_TAGS)
    run = c.create_run(experiment, tags={"tenant_id": "acme"}, run_name="acme-weekly")
    c.set_terminated(run.info.run_id)
    other = c.create_run(experiment, tags={"tenant_id": "globex"}, run_name="globex-weekly")
    c.set_terminated(other.info.run_id)
    described = "**ease**, trained on `tenant`. Gate: **promoted to champion**."
    mv = c.create_model_version(
        "recommender.acme", f"{run.info.artifact_uri}/model", run_id=run.info.run_id, description=described
    )
    c.set_registered_model_alias("recommender.acme", registry.CHAMPION, mv.version)
    login = base64.b64encode(f"{auth.service_user}:{auth.service_password}".encode()).decode()
    with chromium() as driver:
        # MLflow's basic-auth login on every request the page makes (what the browser's prompt would send)
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Basic {login}"}})
        driver.get(f"{base}/#/models/recommender.acme?workflowType=machine_learning")
        wait_text(driver, "recommender.acme", "Version 1", "champion")
        screenshot(driver, "mlflow-model-page")
        driver.get(f"{base}/#/models/recommender.acme/versions/{mv.version}?workflowType=machine_learning")
        wait_text(driver, "promoted to champion", "champion")
        screenshot(driver, "mlflow-model-version")
        # the Tenants view's link to a tenant's runs: the runs table filtered to that tenant
        driver.get(runs_url(base, experiment, "acme"))
        text = wait_text(driver, "acme-weekly")
        screenshot(driver, "mlflow-runs-of-a-tenant")
        assert "globex-weekly" not in text, "only the tenant's runs are listed"
