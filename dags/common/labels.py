"""What a mapped task instance holds, as its name in the Airflow UI (``map_index_template``).

Each mapped task renders :data:`MAP_LABEL` after it runs; its first line calls :func:`name` with
the tenants of its chunk or its warehouse, so the grid shows ``acme,globex (+3)`` or ``eu/pool``
instead of ``0``, ``1``, ``2`` (a task that fails later still has its name).
"""

from __future__ import annotations

MAP_LABEL = "{{ map_label }}"


def name(label: str) -> None:
    """Name the running mapped task instance (see :data:`MAP_LABEL`)."""
    from airflow.sdk import get_current_context

    get_current_context()["map_label"] = label  # type: ignore[typeddict-unknown-key]


def tenants(ids: list[str], shown: int = 2) -> str:
    """A chunk of tenants by name: ``acme,globex (+3)``."""
    more = f" (+{len(ids) - shown})" if len(ids) > shown else ""
    return ",".join(ids[:shown]) + more
