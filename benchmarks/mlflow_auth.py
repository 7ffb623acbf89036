"""What MLflow's basic-auth costs each request, with and without its credential cache.

MLflow's basic-auth app checks the caller's password on every request (werkzeug's ``check_password_hash``,
scrypt by default: tens of milliseconds of CPU by design) unless ``auth_cache_ttl_seconds`` in its config is above
zero (off by default; ``mlflow/server/auth/basic_auth.ini``). The server is started as ``make up`` starts it (the
Procfile's ``mlflow-ui`` line, one worker) with the config ``tenantflow mlflow-auth`` writes, once with the cache
off (``TENANTFLOW_MLFLOW_AUTH_CACHE_SECONDS=0``) and once with the platform's default; as the service account,
each time: ``--runs`` sequences of what a training run asks of the registry (create a run, log a batch of params
and metrics, tag it, upload two artifacts, register a version, move its alias, read it back, end the run) and
``--reads`` alias reads (as the API's watcher and the gate do). Reported: wall seconds per sequence and per read, and
the server's CPU seconds over the whole load (its ``/proc`` times).

    .venv/bin/python benchmarks/mlflow_auth.py [--runs 20] [--reads 100]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import fresh_home, report


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and its children that were waited for (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _server_tree_cpu(root: int) -> float:
    """CPU seconds of ``root`` and every live descendant (the Procfile's shell, uvicorn, its worker)."""
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        try:
            total += _cpu_seconds(pid)
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except FileNotFoundError:
            continue
        todo += [int(c) for c in children]
    return total


def _serve(cache_seconds: int, home: Path) -> tuple[subprocess.Popen, str, dict[str, str]]:
    from ml.core.settings import REPO_ROOT, get_settings
    from ml.ops import mlflow_auth
    from tests.served import free_port, wait_healthy

    os.environ["TENANTFLOW_HOME"] = str(home)
    os.environ["TENANTFLOW_MLFLOW_AUTH_CACHE_SECONDS"] = str(cache_seconds)
    settings = get_settings()
    auth = mlflow_auth.prepare(settings)
    settings.stores.mlflow_artifacts.mkdir(parents=True, exist_ok=True)
    port = free_port()
    line = next(x for x in (REPO_ROOT / "Procfile").read_text().splitlines() if x.startswith("mlflow-ui:"))
    env = {
        **os.environ,
        **mlflow_auth.server_env(auth),
        "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
        "TENANTFLOW_UP_MLFLOW_ARTIFACTS": str(settings.stores.mlflow_artifacts),
        "TENANTFLOW_MLFLOW_PORT": str(port),
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    log = open(home / "mlflow.log", "ab")  # noqa: SIM115 — the server's, closed with it
    proc = subprocess.Popen(
        ["bash", "-c", f"exec {line.split(':', 1)[1].strip()}"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    wait_healthy(base, proc, home / "mlflow.log")
    return proc, base, mlflow_auth.client_env(auth)


def _load(base: str, runs: int, reads: int, home: Path) -> dict[str, float]:
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    c = MlflowClient(tracking_uri=base, registry_uri=base)
    experiment = c.create_experiment(f"bench-{home.name}")
    c.create_registered_model("recommender.acme")
    artifact = home / "model.txt"
    artifact.write_text("tree\n" * 2000)
    started = time.perf_counter()
    for i in range(runs):
        run = c.create_run(experiment, tags={"tenant_id": "acme"})
        rid, now = run.info.run_id, int(time.time() * 1000)
        c.log_batch(
            rid,
            metrics=[Metric(f"m{j}", float(j), now, 0) for j in range(30)],
            params=[Param(f"p{j}", str(j)) for j in range(30)],
        )
        for tag in ("trained_on", "family", "snapshot_id"):
            c.set_tag(rid, tag, str(i))
        c.log_artifact(rid, str(artifact), "model")
        c.log_artifact(rid, str(artifact), "judged")
        v = c.create_model_version("recommender.acme", f"runs:/{rid}/model", rid)
        c.set_registered_model_alias("recommender.acme", "champion", v.version)
        c.get_model_version_by_alias("recommender.acme", "champion")
        c.set_terminated(rid)
    per_run = (time.perf_counter() - started) / runs
    started = time.perf_counter()
    for _ in range(reads):
        c.get_model_version_by_alias("recommender.acme", "champion")
    return {"s_per_run": per_run, "ms_per_read": (time.perf_counter() - started) / reads * 1000}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--reads", type=int, default=100)
    args = ap.parse_args()
    from ml.core.settings import MlflowSettings

    for cache in (0, MlflowSettings().auth_cache_seconds):
        home = fresh_home(f"mlflow-auth-{cache}")
        proc, base, client = _serve(cache, home)
        os.environ.update(client)
        try:
            before = _server_tree_cpu(proc.pid)
            figures = _load(base, args.runs, args.reads, home)
            cpu = _server_tree_cpu(proc.pid) - before
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
        report("mlflow_auth", auth_cache_seconds=cache, runs=args.runs, reads=args.reads, server_cpu_s=cpu, **figures)


if __name__ == "__main__":
    main()
