"""GX's Data Docs, as a data engineer opens them on a machine without internet (issue 16, point 6):
the served world's kept validation results rendered by GX, every script, style and font loaded from
the site itself, the index's table drawn and a validation page and a suite page readable."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from ml.core.settings import Settings
from ml.data.data_docs import build_data_docs, offline_assets
from tests.ui.browser import WAIT, chromium, screenshot, wait_text

LOADS = re.compile(r'<(?:script|link|img)\b[^>]*?\b(?:src|href)="([^"#]+)"', re.IGNORECASE)


def test_data_docs_open_offline_with_their_tables_and_suite_pages(served_world, tmp_path):
    world, _ = served_world
    settings = Settings(home=tmp_path / "home")  # the world's kept results, rendered in a home of its own
    shutil.copytree(world.stores.gx_results, settings.stores.gx_results)
    index = build_data_docs(settings)
    site = index.parent
    pages = sorted(site.rglob("*.html"))
    assert any("/validations/" in p.as_posix() for p in pages) and any("/expectations/" in p.as_posix() for p in pages)
    for page in pages:
        for ref in LOADS.findall(page.read_text()):
            assert not ref.startswith(("http:", "https:", "//")), f"{page} loads {ref} from the internet"
            assert (page.parent / ref).resolve().is_file(), f"{page} loads {ref}, which the site lacks"

    with chromium() as browser:
        browser.get(index.as_uri())
        rows = WebDriverWait(browser, WAIT).until(
            ec.presence_of_all_elements_located((By.CSS_SELECTOR, "table tbody tr td a"))
        )
        text = wait_text(browser, "Validation Results", "tenant=acme", "landing")
        screenshot(browser, "data-docs-index")
        assert "Expectation Suites" in text, "a tab lists the suites the tenants' data is checked against"
        assert browser.execute_script("return typeof jQuery.fn.bootstrapTable") == "function"
        assert rows
        validation = next(p for p in pages if "/validations/" in p.as_posix() and "tenant_acme" in p.as_posix())
        browser.get(validation.as_uri())
        text = wait_text(browser, "Expectation Validation Result", "Data asset: tenant=acme", "Success Percent")
        assert "__none__" not in text, "the run is named (its file) and dated (when it was written)"
        screenshot(browser, "data-docs-validation")
        # Bootstrap's stylesheet applied: the statistics are a bordered table, not bare text
        border = browser.execute_script("return getComputedStyle(document.querySelector('table td')).borderTopStyle")
        assert border == "solid", border
        suite = browser.find_element(By.PARTIAL_LINK_TEXT, ".acme").get_attribute("href")
        browser.get(suite)
        wait_text(browser, "Expectation Suite", "Table-Level Expectations")
        screenshot(browser, "data-docs-suite")


def test_a_script_from_an_unknown_cdn_is_left_and_named(tmp_path: Path, caplog):
    site = tmp_path / "site"
    (site / "static").mkdir(parents=True)
    modules = tmp_path / "node_modules" / "jquery" / "dist"
    modules.mkdir(parents=True)
    (modules / "jquery.min.js").write_text("/* jquery */")
    page = site / "validations" / "a.html"
    page.parent.mkdir()
    page.write_text(
        '<script src="https://code.jquery.com/jquery-3.7.1.min.js" integrity="sha384-x" crossorigin="anonymous">'
        '</script><script src="https://cdn.example.org/new.js"></script><a href="https://greatexpectations.io">GX</a>'
    )
    remote = offline_assets(site, tmp_path / "node_modules")
    assert remote == ["https://cdn.example.org/new.js"]
    assert "https://cdn.example.org/new.js" in caplog.text
    text = page.read_text()
    assert '<script src="../static/vendor/jquery/dist/jquery.min.js">' in text, text
    assert (site / "static" / "vendor" / "jquery" / "dist" / "jquery.min.js").read_text() == "/* jquery */"
    assert '<a href="https://greatexpectations.io">' in text, "links are left: only what a page loads is replaced"
