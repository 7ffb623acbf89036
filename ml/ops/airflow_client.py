"""The few calls of Airflow 3's REST API (v2) that Tenantflow drives, and waits on their outcomes.

Waits poll with tenacity (a fixed interval, a deadline) and always name what they waited for; a
failed call carries the tail of the api-server's own log, so a 500 says why.
"""

from __future__ import annotations

import urllib.parse
from typing import TYPE_CHECKING, Any

import httpx
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception_type,
    retry_if_result,
    stop_after_delay,
    wait_fixed,
)

from ml.core import secret_files
from ml.core.settings import Settings

if TYPE_CHECKING:
    from ml.ops.airflow import Services

FINISHED = ("success", "failed")
# the DAGs in dags/ (ingest → features → train → score, and monitor)
TENANTFLOW_DAGS = ("ingest", "features", "train", "score", "monitor")


def airflow_password(settings: Settings) -> str:
    """The Airflow admin's password: ``TENANTFLOW_AIRFLOW_PASSWORD``, else generated once into
    ``<home>/secrets/airflow-admin-password`` (mode 0600; never ``admin``)."""
    return settings.airflow.password or secret_files.generated(settings.stores.secrets / "airflow-admin-password", 18)


class AirflowError(RuntimeError):
    """A REST call failed; the message has the status, the body and the api-server's recent log."""


class AirflowClient:
    """A logged-in client of one local Airflow (``Services`` when it runs in this process's care)."""

    def __init__(self, settings: Settings, services: Services | None = None) -> None:
        self.settings = settings
        self.services = services
        self.base = f"http://127.0.0.1:{settings.airflow.port}"
        self.http = httpx.Client(base_url=self.base, timeout=30)
        self._token: str | None = None

    def request(self, method: str, path: str, body: dict[str, Any] | None = None, auth: bool = True) -> dict[str, Any]:
        """One call; the JSON answer.

        Raises:
            AirflowError: a status of 400 or more (with the api-server's log tail).
            httpx.TransportError: Airflow is not reachable.
        """
        headers = {"Authorization": f"Bearer {self.token()}"} if auth else {}
        r = self.http.request(method, path, json=body, headers=headers)
        if r.status_code >= 400:
            raise AirflowError(f"Airflow API {method} {path}: HTTP {r.status_code}: {r.text[:500]}{self._log_tail()}")
        return r.json() if r.content else {}

    def _log_tail(self, lines: int = 40, component: str = "api-server") -> str:
        log = self.settings.stores.logs / f"{component}.log"
        try:
            tail = log.read_text(errors="replace").splitlines()[-lines:]
        except FileNotFoundError:
            return ""
        return f"\n--- last {len(tail)} lines of {log} ---\n" + "\n".join(tail)

    def token(self) -> str:
        if self._token is None:
            creds = {"username": self.settings.airflow.user, "password": airflow_password(self.settings)}
            self._token = self.request("POST", "/auth/token", creds, auth=False)["access_token"]
        return self._token

    def _alive(self) -> None:
        if self.services:
            self.services.check_alive()

    def _poll(self, fetch: Any, done: Any, timeout: float, every: float, what: str, retry_on: tuple = ()) -> Any:
        """Call ``fetch`` every ``every`` s until ``done(result)``; TimeoutError naming ``what`` after ``timeout`` s."""

        def attempt() -> Any:
            self._alive()
            return fetch()

        retrying = Retrying(
            stop=stop_after_delay(timeout),
            wait=wait_fixed(every),
            retry=retry_if_result(lambda r: not done(r)) | retry_if_exception_type(retry_on),
            reraise=False,
        )
        try:
            return retrying(attempt)
        except RetryError as exc:
            last = exc.last_attempt
            detail = f"last error: {last.exception()}" if last.failed else f"last state: {str(last.result())[:1000]}"
            raise TimeoutError(f"{what} within {timeout:.0f}s; {detail}{self._log_tail(30, 'scheduler')}") from None

    def wait_ready(self, timeout: float = 180.0) -> None:
        """Until the api-server answers and its metadata database is healthy."""
        self._poll(
            lambda: self.request("GET", "/api/v2/monitor/health", auth=False),
            lambda h: h.get("metadatabase", {}).get("status") == "healthy",
            timeout,
            1.0,
            f"Airflow API did not become healthy on {self.base}",
            (httpx.TransportError, AirflowError),
        )

    def wait_dag(self, dag_id: str, timeout: float = 180.0) -> dict[str, Any]:
        """Until the dag-processor has parsed ``dag_id``."""
        return self._poll(
            lambda: self.request("GET", f"/api/v2/dags/{dag_id}"),
            lambda d: True,
            timeout,
            2.0,
            f"DAG {dag_id} was not parsed (see logs/dag-processor.log)",
            (AirflowError,),
        )

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self.request("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": paused})

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None, logical_date: str | None = None) -> str:
        """Start a run; its run id."""
        res = self.request("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": logical_date, "conf": conf or {}})
        return str(res["dag_run_id"])

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}")

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        """The DAG's latest 100 runs, newest first."""
        return list(self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns?limit=100&order_by=-run_after")["dag_runs"])

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        quoted = urllib.parse.quote(run_id, safe="")
        return list(
            self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{quoted}/taskInstances?limit=500")["task_instances"]
        )

    def task_log(self, dag_id: str, run_id: str, ti: dict[str, Any]) -> list[dict[str, Any]]:
        """The structured log lines (``event``, ``level``, ``timestamp``, ...) of a task instance's
        last try (``ti``: one row of :meth:`task_instances`)."""
        quoted = urllib.parse.quote(run_id, safe="")
        path = f"/api/v2/dags/{dag_id}/dagRuns/{quoted}/taskInstances/{ti['task_id']}/logs/{ti['try_number']}"
        content = self.request("GET", f"{path}?map_index={ti['map_index']}&full_content=true").get("content") or []
        return [line for line in content if isinstance(line, dict)]

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 1800.0) -> dict[str, Any]:
        """Until the run has finished (``success`` or ``failed``); the run. The run must exist."""
        return self._poll(
            lambda: self.run(dag_id, run_id),
            lambda r: r["state"] in FINISHED,
            timeout,
            2.0,
            f"{dag_id} run {run_id} did not finish",
        )

    def wait_run_exists(self, dag_id: str, run_id: str, timeout: float = 600.0) -> dict[str, Any]:
        """Until a run with this id exists (e.g. one another DAG triggers), then until it finishes."""
        self._poll(
            lambda: self.run(dag_id, run_id),
            lambda r: True,
            timeout,
            2.0,
            f"{dag_id} run {run_id} was not created",
            (AirflowError,),
        )
        return self.wait_run(dag_id, run_id)

    def runs_triggered_by(self, source_dag_id: str, source_run_id: str, dag_id: str) -> list[str]:
        """The runs of ``dag_id`` that consumed an asset event of ``source_dag_id``'s run ``source_run_id``."""
        query = urllib.parse.urlencode({"source_dag_id": source_dag_id, "source_run_id": source_run_id, "limit": 100})
        events = self.request("GET", f"/api/v2/assets/events?{query}")["asset_events"]
        return sorted({r["run_id"] for e in events for r in e["created_dagruns"] if r["dag_id"] == dag_id})

    def wait_triggered(
        self, source_dag_id: str, source_run_id: str, dag_id: str, timeout: float = 1800.0
    ) -> list[dict[str, Any]]:
        """Until the asset events of one run have started ``dag_id`` and those runs have finished; the runs.

        Waiting on run ids, not on time windows: runs of ``dag_id`` started by anything else (a
        schedule, another run's events) are not waited for, and cannot end the wait early.
        """
        # Airflow before 3.3 answered 500 to this listing while a run the events created was queued with no
        # start date yet (apache/airflow#71360): that means "not yet", so an error is retried.
        ids = self._poll(
            lambda: self.runs_triggered_by(source_dag_id, source_run_id, dag_id),
            bool,
            timeout,
            2.0,
            f"no {dag_id} run consumed the asset events of {source_dag_id} run {source_run_id}",
            (AirflowError,),
        )
        return [self.wait_run(dag_id, run_id, timeout) for run_id in ids]

    def clear_queued_events(self, dag_id: str) -> None:
        """Forget the asset events queued for a (paused) DAG, so unpausing it starts nothing old."""
        try:
            self.request("DELETE", f"/api/v2/dags/{dag_id}/assets/queuedEvents")
        except AirflowError as exc:
            if "HTTP 404" not in str(exc):  # nothing queued
                raise

    def close(self) -> None:
        self.http.close()
