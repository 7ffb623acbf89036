"""A small trained and published world, and the real API started over HTTP on loopback.

``served_world`` is a session fixture of the root conftest: the serving and security suites share
one world.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.world import END, GenerationConfig, TenantSpec, World, build_world

SPECS = [
    TenantSpec("acme", "eu", users=450, items=250, fmt="parquet"),
    TenantSpec("globex", "eu", users=400, items=200, fmt="parquet", activity=1.2),
    TenantSpec("initech", "us", users=350, items=150, fmt="parquet"),  # silo
]
DAYS = 40
QUOTAS = {
    "initech": {"quota_requests_per_minute": 600, "quota_events_per_day": 500},
    "acme": {"quota_requests_per_minute": 60_000},
    "globex": {"quota_requests_per_minute": 60_000},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(base: str, proc: Any, log: Path, timeout: float = 120.0) -> None:
    """Until ``base``/health answers 200; AssertionError with the log's tail if ``proc`` ends or ``timeout`` s pass."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.5)


def build_served(mp: pytest.MonkeyPatch, home: Path) -> World:
    """Trained champions, features published for the API, a key per tenant (also ``benchmarks/world_build.py``)."""
    config = GenerationConfig(tenants=SPECS, days=DAYS, end_date=END, seed=5)
    return build_world(
        mp,
        home,
        [config],
        silo=("initech",),
        fields=QUOTAS,
        publish=True,
        keys=True,
        TENANTFLOW_TRAIN_MIN_HISTORY_DAYS=30,
    )


@pytest.fixture(scope="session")
def served_world(tmp_path_factory):
    """(settings, {tenant: api key}) of :func:`build_served`."""
    mp = pytest.MonkeyPatch()
    w = build_served(mp, tmp_path_factory.mktemp("serving") / "home")
    yield w.settings, w.keys
    mp.undo()


class Api:
    """A running ``tenantflow serve`` process and an HTTP client for it."""

    def __init__(self, proc: subprocess.Popen, base: str, log: Path, settings) -> None:
        self.proc, self.base, self.log, self.settings = proc, base, log, settings
        self.http = httpx.Client(base_url=base, timeout=30)

    def post(self, path: str, key: str | None, body: dict | None = None, **kw) -> httpx.Response:
        headers = kw.pop("headers", {})
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        return self.http.post(path, json=body, headers=headers, **kw)

    def get(self, path: str, ops: bool = False) -> httpx.Response:
        """A GET; ``ops`` sends the ops token (``/metrics``, the detailed ``/readyz``)."""
        return self.http.get(path, headers={"Authorization": f"Bearer {self.ops_token}"} if ops else {})

    @property
    def ops_token(self) -> str:
        """The token the API generated into its home at start."""
        return self.settings.stores.ops_token.read_text().strip()

    def wait_ready(self, timeout: float = 90.0, check=None) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc.poll() is None, f"the API exited: {self.log.read_text()[-3000:]}"
            try:
                r = self.get("/readyz", ops=True)
                if r.status_code == 200 and (check is None or check(r.json())):
                    return r.json()
            except (httpx.TransportError, FileNotFoundError):  # not listening yet; no token yet
                pass
            assert time.monotonic() < deadline, f"not ready: {self.log.read_text()[-3000:]}"
            time.sleep(0.2)


@contextmanager
def running_api(settings, **env):
    """Start the API as its own process (as `make up` does) and stop it after."""
    port = free_port()
    log = settings.home / f"api-{port}.log"
    full_env = {
        **os.environ,
        "TENANTFLOW_HOME": str(settings.home),
        "TENANTFLOW_SERVE_REFRESH_SECONDS": "0.5",
        "TENANTFLOW_SERVE_WATCH_SECONDS": "0.2",
        **{k: str(v) for k, v in env.items()},
    }
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ml.ops.cli", "serve", "--port", str(port)],
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    api = Api(proc, f"http://127.0.0.1:{port}", log, settings)
    try:
        api.wait_ready(check=lambda b: b["models_loaded"] > 0 and b["tenants_with_features"] > 0)
        yield api
    finally:
        api.http.close()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
