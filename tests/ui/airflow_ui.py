"""The Airflow UI as a person uses it, in headless Chromium: log in, read a mapped task's names in a
run, open a DAG's trigger form, open the tenant view and the Data Docs it links (issue 16, point 8). Called by the real-Airflow
test (``tests/integration``) on the Airflow it started and the runs it made; each step saves a
screenshot (``tests/ui/browser.py``)."""

from __future__ import annotations

import urllib.parse

from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from tests.ui.browser import WAIT, screenshot, wait_text


def log_in(driver, base: str, user: str, password: str) -> None:
    """Airflow's login form (the simple auth manager's); ends on the home page with its cookie."""
    driver.get(f"{base}/")
    WebDriverWait(driver, WAIT).until(lambda d: d.find_elements(By.CSS_SELECTOR, "input[type=password]"))
    fields = driver.find_elements(By.CSS_SELECTOR, "input")
    name = next(
        f for f in fields if f.get_attribute("type") in ("text", None, "") or f.get_attribute("name") == "username"
    )
    name.send_keys(user)
    driver.find_element(By.CSS_SELECTOR, "input[type=password]").send_keys(password + Keys.ENTER)
    WebDriverWait(driver, WAIT).until(lambda d: any(c["name"] == "_token" for c in d.get_cookies()))
    screenshot(driver, "airflow-home")


def mapped_names(driver, base: str, dag_id: str, run_id: str, task_id: str, expected: list[str]) -> str:
    """The run's mapped task instances page lists each instance by the name it rendered."""
    run = urllib.parse.quote(run_id, safe="")
    driver.get(f"{base}/dags/{dag_id}/runs/{run}/tasks/{task_id}/mapped")
    text = wait_text(driver, *expected)
    screenshot(driver, f"airflow-{dag_id}-{task_id}-mapped")
    return text


def _click(driver, label: str, within: str = "body") -> None:
    """Click the first button under ``within`` (a CSS selector) whose text is ``label``, once it
    appears; again if the page redrew it between finding and clicking (React re-renders)."""

    def click(d) -> bool:
        try:
            scopes = d.find_elements(By.CSS_SELECTOR, within)
            buttons = [b for scope in scopes for b in scope.find_elements(By.TAG_NAME, "button")]
            button = next((b for b in buttons if b.text.strip() == label), None)
            if button is None:
                return False
            button.click()
            return True
        except StaleElementReferenceException:
            return False

    WebDriverWait(driver, WAIT).until(click)


def backfill_offered(driver, base: str, dag_id: str) -> bool:
    """Whether the DAG's trigger dialog lets a person choose "Backfill" (Airflow greys it out for a
    DAG whose ``allowed_run_types`` leave backfills out)."""
    driver.get(f"{base}/dags/{dag_id}")
    _click(driver, "Trigger")

    def state(d) -> str | None:
        try:
            found = d.find_elements(By.CSS_SELECTOR, "[role=dialog] input[type=radio][value=backfill]")
            return ("enabled" if found[0].is_enabled() else "disabled") if found else None
        except StaleElementReferenceException:
            return None

    shown = WebDriverWait(driver, WAIT).until(state)
    screenshot(driver, f"airflow-{dag_id}-trigger-dialog")
    return shown == "enabled"


def trigger_form(driver, base: str, dag_id: str, sections: dict[str, list[str]]) -> None:
    """The DAG's trigger form: each section (collapsed at first; one open at a time), opened, shows
    its fields by their titles."""
    driver.get(f"{base}/dags/{dag_id}")
    _click(driver, "Trigger")
    wait_text(driver, *sections)
    for i, (section, fields) in enumerate(sections.items()):
        # inside the dialog: the page behind it has an "Options" button too
        _click(driver, section, within="[role=dialog]")
        wait_text(driver, *fields)
        screenshot(driver, f"airflow-{dag_id}-trigger-form-{i}")


def tenant_view(driver, base: str, tenant_id: str) -> str:
    """The "Tenants" view inside the Airflow UI (the plugin's page in its frame); one tenant's row."""
    driver.get(f"{base}/plugin/tenants")
    frame = WebDriverWait(driver, WAIT).until(lambda d: d.find_elements(By.TAG_NAME, "iframe"))[0]
    driver.switch_to.frame(frame)
    row = WebDriverWait(driver, WAIT).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, f'tr[data-tenant-id="{tenant_id}"]')
    )[0]
    text = row.text
    driver.switch_to.default_content()
    screenshot(driver, "airflow-tenant-view")
    return text


def data_docs(driver, base: str) -> None:
    """GX's Data Docs as the Tenants view opens them, inside Airflow's frame (sandboxed, so their
    assets come without the login cookie): the index's table drawn, and a suite's page reached."""
    driver.get(f"{base}/plugin/tenants")
    frame = WebDriverWait(driver, WAIT).until(lambda d: d.find_elements(By.TAG_NAME, "iframe"))[0]
    driver.switch_to.frame(frame)
    WebDriverWait(driver, WAIT).until(lambda d: d.find_elements(By.LINK_TEXT, "Data Docs"))[0].click()
    links = "table tbody tr td a"  # drawn by bootstrap-table, which may draw the table again
    WebDriverWait(driver, WAIT).until(lambda d: d.find_elements(By.CSS_SELECTOR, links))
    assert driver.execute_script("return typeof jQuery !== 'undefined' && typeof jQuery.fn.bootstrapTable"), (
        "the site's scripts loaded"
    )
    driver.switch_to.default_content()
    screenshot(driver, "airflow-data-docs-index")
    driver.switch_to.frame(frame)

    def follow_a_suite_link(d) -> bool:
        try:
            d.find_elements(By.CSS_SELECTOR, links)[0].click()
        except (StaleElementReferenceException, IndexError):  # redrawn since it was found: find it again
            return False
        return True

    WebDriverWait(driver, WAIT).until(follow_a_suite_link)
    wait_text(driver, "Expectation Suite", "Table-Level Expectations")
    driver.switch_to.default_content()
    screenshot(driver, "airflow-data-docs-suite")
