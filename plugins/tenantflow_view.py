"""The tenant view in the Airflow UI: ``/tenantflow/`` on the api-server, "Tenants" in the navigation.

The page itself is ``ml/ops/tenant_view.py`` (read from the stores at each request, behind Airflow's
own login); this file only registers it. Every Airflow process imports plugins (every task's
too), so the app is built, and the platform's heavier modules imported, at its first request.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from ml.ops.tenant_view import LazyApp


class TenantflowPlugin(AirflowPlugin):
    name = "tenantflow"
    fastapi_apps = [{"app": LazyApp(), "url_prefix": "/tenantflow", "name": "Tenantflow tenants"}]
    # shown inside the Airflow UI (an iframe at /plugin/tenants), under its navigation's "Tenants"
    external_views = [{"name": "Tenants", "href": "/tenantflow/", "destination": "nav", "url_route": "tenants"}]
