"""The serving API's docs in a real browser with no way out to the internet: Swagger UI and ReDoc
render every endpoint from the assets the API serves itself (issue 16, points 6 and 8)."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tests.served import running_api
from tests.ui.browser import chromium, screenshot

ENDPOINTS = ("/v1/recommendations", "/v1/churn-scores", "/v1/engagement-scores", "/v1/events")


@pytest.fixture(scope="module")
def docs_api(served_world):
    settings, _ = served_world
    with running_api(settings) as api:
        yield api


def test_swagger_ui_and_redoc_list_every_endpoint_offline(docs_api):
    with chromium() as browser:
        browser.get(f"{docs_api.base}/docs")
        WebDriverWait(browser, 30).until(ec.presence_of_element_located((By.CSS_SELECTOR, ".opblock-summary-path")))
        paths = {e.get_attribute("data-path") for e in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")}
        screenshot(browser, "api-docs-swagger")
        assert set(ENDPOINTS) <= paths, paths
        browser.get(f"{docs_api.base}/redoc")
        WebDriverWait(browser, 30).until(
            ec.presence_of_element_located((By.CSS_SELECTOR, "[role=menuitem], li[data-item-id]"))
        )
        text = browser.find_element(By.TAG_NAME, "body").text
        screenshot(browser, "api-docs-redoc")
        assert all(p in text for p in ENDPOINTS), text[:2000]
        # ReDoc's bundle asks cdn.redoc.ly for its footer logo: the page's policy refuses it before
        # any request (a request would have failed to resolve: "net::ERR_NAME_NOT_RESOLVED")
        console: list[dict] = []  # (each get_log returns the entries since the last)
        WebDriverWait(browser, 30).until(
            lambda b: console.extend(b.get_log("browser")) or any("cdn.redoc.ly" in e["message"] for e in console)
        )
        assert not [e for e in console if "ERR_NAME_NOT_RESOLVED" in e["message"]], console
