"""Headless Chromium for the UI tests, from Debian's packages (``make browser``), driven by Selenium.

Selenium is given the browser (``/usr/bin/chromium``) and its driver (``/usr/bin/chromedriver``),
so Selenium Manager never runs and nothing is downloaded (``SE_OFFLINE`` too). Every host but
loopback fails to resolve (``--host-resolver-rules``): a page that needs a CDN shows it as this
machine would without internet, whatever the network. Screenshots are test artifacts, under
``TENANTFLOW_TEST_ARTIFACTS`` (default ``test-artifacts/`` in the repository, ignored by git).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ml.core.settings import REPO_ROOT

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
WAIT = 60  # seconds a page may take to show what a test waits for (the server may be busy)
FLAGS = (
    "--headless=new",
    "--no-sandbox",  # the tests may run as root
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
    "--window-size=1600,1000",
)


def artifacts() -> Path:
    """Where screenshots go (created)."""
    path = Path(os.environ.get("TENANTFLOW_TEST_ARTIFACTS") or REPO_ROOT / "test-artifacts") / "ui"
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def chromium() -> Iterator:
    """A Selenium WebDriver on headless Chromium; quit on exit.

    Raises:
        RuntimeError: Chromium or its driver is missing (``make browser`` installs both).
    """
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    missing = [p for p in (CHROMIUM, DRIVER) if not shutil.which(p)]
    if missing:
        raise RuntimeError(f"{' and '.join(missing)} missing: run `make browser` (Debian's chromium, chromium-driver)")
    os.environ["SE_OFFLINE"] = "true"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the console, for get_log("browser")
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(driver, name: str) -> Path:
    """Save the page as ``<artifacts>/<name>.png``; the path."""
    path = artifacts() / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def _text(driver) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.TAG_NAME, "body").text


def wait_text(driver, *needles: str, timeout: float = WAIT) -> str:
    """Until the page shows every needle; the page's text.

    Raises:
        AssertionError: the needles still missing after ``timeout`` seconds, with the page's text
            (and a screenshot, ``timeout-<first needle>.png``).
    """
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        WebDriverWait(driver, timeout).until(lambda d: all(n in _text(d) for n in needles))
    except TimeoutException:
        shot = screenshot(driver, "timeout-" + "".join(c if c.isalnum() else "_" for c in needles[0])[:40])
        text = _text(driver)
        missing = [n for n in needles if n not in text]
        raise AssertionError(
            f"{driver.current_url} never showed {missing} (see {shot}); it shows:\n{text[:3000]}"
        ) from None
    return _text(driver)
