"""Airflow's task-log server on the loopback interface: ``python -m ml.ops.airflow_logs``.

Airflow's scheduler and triggerer each start a log server in a subprocess, bound to every
interface (``airflow.utils.serve_logs.serve_logs`` runs uvicorn with ``host=""``; Airflow 3.3 has
no setting for the host). The API server asks it for the log of a task that is still running.
`tenantflow up` (the Procfile) and :class:`ml.ops.airflow.Services` start both with
``--skip-serve-logs`` and run this process instead: Airflow's own app
(``airflow.utils.serve_logs.log_server.create_app``: the files under the log folder, every request
a JWT signed with ``[api] secret_key``) on 127.0.0.1, at ``[logging] worker_log_server_port`` and
``trigger_log_server_port`` (8793 and 8794 by default: where the API server asks). ``[core] hostname_callable`` is
:func:`loopback`, so the API server fetches ``http://127.0.0.1:<port>/log/...``, not the machine's
name, which may resolve to an outside address.

This is for one machine, as `make up` and the demo run Airflow; the compose deployment's Celery
workers serve their logs inside the compose network, as Airflow does by default.
"""

from __future__ import annotations

import asyncio

LOOPBACK = "127.0.0.1"


def loopback() -> str:
    """``[core] hostname_callable``: task instances record 127.0.0.1 as their host."""
    return LOOPBACK


async def _serve(ports: list[int]) -> None:
    import uvicorn
    from airflow.utils.serve_logs.log_server import create_app

    app = create_app()
    servers = [uvicorn.Server(uvicorn.Config(app, host=LOOPBACK, port=p, log_level="warning")) for p in ports]
    await asyncio.gather(*(s.serve() for s in servers))


def main() -> None:
    """Serve task and trigger logs on the loopback interface until terminated."""
    from airflow.configuration import conf

    # where the API server fetches a running task's log (FileTaskHandler reads the same two keys)
    ports = [
        conf.getint("logging", "worker_log_server_port", fallback=8793),
        conf.getint("logging", "trigger_log_server_port", fallback=8794),
    ]
    asyncio.run(_serve(sorted(set(ports))))


if __name__ == "__main__":
    main()
