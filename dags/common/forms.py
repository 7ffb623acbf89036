"""The fields of the DAGs' trigger forms that mean the same in every DAG.

Airflow 3 renders a DAG's ``params`` as its trigger form: ``title``, ``description`` and
``section`` arrange it; a field is required unless its type admits ``null``; an array with
``examples`` is a multi-select. Model kinds are offered as choices (:func:`kind_choices`). Tenant
ids are not: a DAG file must not read the tenant registry or import the ``ml`` package while it is
parsed (tests/dags), so `plan` validates them when the run starts and fails with a message that
names the unknown id and where to see the registered ones.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from airflow.sdk import Param

SCOPE = "What to run"
OPTIONS = "Options"
TUNING = "Tuning (the defaults suit most runs)"


def tenants(verb: str) -> Param:
    """The optional ``tenants`` field: which tenants to ``verb``; empty means every tenant."""
    return Param(
        [],
        type=["null", "array"],
        items={"type": "string"},
        title="Tenants",
        description=f"Tenant ids to {verb}, one per line; empty means every tenant. "
        "An unknown id fails the `plan` task, which names it.",
        section=SCOPE,
    )


def day(title: str, description: str, section: str = OPTIONS) -> Param:
    """An optional date field (empty: the DAG's default for it)."""
    return Param(None, type=["null", "string"], format="date", title=title, description=description, section=section)


def flag(default: bool, title: str, description: str) -> Param:
    """An on/off option."""
    return Param(default, type="boolean", title=title, description=description, section=OPTIONS)


def chunk_size(default: int, what: str) -> Param:
    """How many tenants one mapped task holds."""
    return Param(
        default,
        type="integer",
        minimum=1,
        title="Tenants per task",
        description=f"Tenants per mapped {what} task",
        section=TUNING,
    )


def kind_choices() -> list[str]:
    """The registered model kinds, from the files of ``ml/models/kinds`` (one module per kind, named
    after it; tests/models/test_kinds.py holds them to that), without importing ``ml``: a DAG file is
    parsed every 30 s, and the kinds' modules take seconds to import."""
    spec = importlib.util.find_spec("ml")  # locates the package; does not import it
    if spec is None or not spec.submodule_search_locations:
        return []
    folder = Path(next(iter(spec.submodule_search_locations))) / "models" / "kinds"
    return sorted(p.stem for p in folder.glob("*.py") if not p.stem.startswith("_") and p.stem != "base")
