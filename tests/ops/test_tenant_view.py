"""The Tenants view's pages outside Airflow (the real-Airflow test checks them behind Airflow's
login, with trained tenants): what a tenant's own text can do to the page, and which files it serves."""

from __future__ import annotations

import re
import time

import pytest
from fastapi import HTTPException, Request
from fastapi.testclient import TestClient

from ml.core.tenants import Tenant, TenantStore
from ml.ops.tenant_view import DATA_DOCS_TOKEN_SECONDS, create_app, data_docs_token


def _login(request: Request) -> None:
    """Stands in for Airflow's login: admits a request with the header, refuses the others."""
    if request.headers.get("x-test-login") != "yes":
        raise HTTPException(401, "Not authenticated")


@pytest.fixture
def view(settings):
    TenantStore(settings).add(Tenant("acme", "eu", display_name='<script>alert("x")</script> Acme'))
    reports = settings.stores.monitoring_reports.root
    reports.mkdir(parents=True, exist_ok=True)
    (reports / "report.html").write_text("<html>drift</html>")
    settings.stores.secrets.mkdir(parents=True, exist_ok=True)
    (settings.stores.secrets / "mlflow-admin-password").write_text("not for the view")
    client = TestClient(create_app(settings, login=_login))
    client.headers["x-test-login"] = "yes"
    return client


def test_a_new_tenant_is_listed_with_what_it_still_lacks_and_its_text_is_escaped(view):
    page = view.get("/")
    assert page.status_code == 200
    row = page.text.split('data-tenant-id="acme"', 1)[1].split("</tr>", 1)[0]
    assert "unhealthy" in row and "no data in the lake yet" in row and "recommender: no champion" in row
    detail = view.get("/tenants/acme")
    assert detail.status_code == 200 and "<script>alert" not in detail.text and "&lt;script&gt;" in detail.text
    assert "No features published yet: the API has none for this\ntenant." in detail.text
    checks = view.get("/tenants/acme/checks")
    assert checks.status_code == 200 and "<p>Features not checked yet.</p>" in checks.text
    assert [r["tenant_id"] for r in view.get("/status.json").json()] == ["acme"]
    assert view.get("/tenants/nobody").status_code == 404


def test_only_the_reports_and_data_docs_folders_are_served_and_only_after_login(view, settings):
    served = view.get("/files/monitoring/report.html")
    assert served.text == "<html>drift</html>"
    # a report's scripts hold tenants' values: sandboxed, they cannot act with the viewer's session
    assert served.headers["content-security-policy"] == "sandbox allow-scripts"
    assert served.headers["x-content-type-options"] == "nosniff"
    assert "access-control-allow-origin" not in served.headers
    # a sandboxed page's fonts are cross-origin requests: Data Docs' icon font may be read by any origin
    fonts = settings.stores.data_docs_index.parent / "static" / "vendor" / "webfonts"
    fonts.mkdir(parents=True)
    (fonts / "fa-solid-900.woff2").write_bytes(b"wOF2")
    font = view.get("/files/datadocs/static/vendor/webfonts/fa-solid-900.woff2")
    assert font.status_code == 200 and font.headers["access-control-allow-origin"] == "*"
    assert font.headers["content-security-policy"] == "sandbox allow-scripts"
    for path in (
        "/files/monitoring/..%2F..%2Fsecrets%2Fmlflow-admin-password",
        "/files/monitoring/%2E%2E/%2E%2E/secrets/mlflow-admin-password",
        "/files/secrets/mlflow-admin-password",
        "/files/monitoring/",
    ):
        r = view.get(path)
        assert r.status_code == 404 and "not for the view" not in r.text, (path, r.status_code)
    (fonts.parents[2] / "index.html").write_text("<html>the tenants' validation results</html>")
    view.headers.pop("x-test-login")
    assert {
        view.get(p).status_code
        for p in ("/", "/status.json", "/tenants/acme", "/files/monitoring/report.html", "/files/datadocs/index.html")
    } == {401}
    # the Data Docs' pages and assets, fetched by sandboxed pages without the cookie: the link's token
    index = view.get("/")  # still logged out: the token comes from a logged-in page only
    assert index.status_code == 401
    view.headers["x-test-login"] = "yes"
    link = re.search(r'href="(datadocs/[^"]+/index\.html)"', view.get("/").text).group(1)
    view.headers.pop("x-test-login")
    token = link.split("/")[1]
    assert view.get(link).text == "<html>the tenants' validation results</html>"
    assert view.get(f"/datadocs/{token}/static/vendor/webfonts/fa-solid-900.woff2").status_code == 200
    expired = data_docs_token(settings, now=time.time() - DATA_DOCS_TOKEN_SECONDS - 1)
    forged = token.split("-")[0] + "-" + "0" * 32
    for bad in (expired, forged, "x", str(int(time.time()) + 10**6) + "-" + token.split("-")[1]):
        r = view.get(f"/datadocs/{bad}/index.html")
        assert r.status_code == 401 and "validation results" not in r.text, (bad, r.status_code)
    for path in (f"/datadocs/{token}/..%2F..%2Fsecrets%2Fmlflow-admin-password", f"/datadocs/{token}/%2E%2E/x"):
        r = view.get(path)
        assert r.status_code == 404 and "not for the view" not in r.text, (path, r.status_code)


def test_a_reports_link_is_percent_encoded_and_a_report_outside_the_folder_is_not_linked(view, settings):
    from ml.ops.tenant_view import _helpers

    reports = settings.stores.monitoring_reports.root
    (reports / "tenant=acme").mkdir()
    odd = reports / "tenant=acme" / "recommender #2 ?.html"  # a '#' or '?' would end a URL's path
    odd.write_text("<html>odd</html>")
    link = _helpers(settings, "acme")["report_link"](str(odd))
    assert link == "../files/monitoring/tenant%3Dacme/recommender%20%232%20%3F.html", link
    assert view.get(link.removeprefix("..")).text == "<html>odd</html>"
    outside = str(settings.stores.secrets / "x.html")  # (a report written before TENANTFLOW_REPORTS_DIR moved)
    assert _helpers(settings, "acme")["report_link"](outside) is None
    shown = str(_helpers(settings, "acme")["report_anchor"](outside, "x <b>.html"))
    assert shown.startswith(f'<span class="small" title="{outside}">x &lt;b&gt;.html (outside the reports folder '), (
        shown
    )
    assert "<a " not in shown and 'href="#"' not in shown
