"""The house rules of ``ml/``, checked on the source: where things live, and how big they grow.

Import direction between the planes is import-linter's contract (pyproject.toml, run by ``make
test``); these are the rules it cannot express.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ml.core.settings import REPO_ROOT, TOOL_VARIABLES
from ml.models.kinds import kind_names

ML = REPO_ROOT / "ml"
MODULES = sorted(p for p in ML.rglob("*.py"))
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _docstrings(tree: ast.Module) -> set[int]:
    """ids of the string constants that are docstrings (words about a thing, not code)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                out.add(id(body[0].value))
    return out


def _strings(path: Path) -> list[tuple[int, str]]:
    tree = _tree(path)
    skip = _docstrings(tree)
    return [
        (n.lineno, n.value)
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in skip
    ]


def _calls(path: Path, names: set[str]) -> list[int]:
    """Lines calling ``a.b`` or ``b`` for each dotted name in ``names``."""
    hits = []
    for n in ast.walk(_tree(path)):
        if isinstance(n, ast.Call):
            f = n.func
            dotted = (
                f"{f.value.id}.{f.attr}" if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) else None
            )
            if dotted in names or (isinstance(f, ast.Name) and f.id in names):
                hits.append(n.lineno)
    return hits


def _rel(p: Path) -> str:
    return p.relative_to(REPO_ROOT).as_posix()


def test_modules_and_functions_stay_small():
    big_modules = {_rel(p): n for p in MODULES if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not big_modules, f"modules over {MAX_MODULE_LINES} lines hold more than one idea: {big_modules}"
    long = []
    for p in MODULES:
        for n in ast.walk(_tree(p)):
            if (
                isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                and n.end_lineno - n.lineno + 1 > MAX_FUNCTION_LINES
            ):
                long.append(f"{_rel(p)}:{n.lineno} {n.name} ({n.end_lineno - n.lineno + 1} lines)")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_only_the_layout_module_spells_a_partition_path():
    found = [
        f"{_rel(p)}:{line} {s!r}"
        for p in MODULES
        if p != ML / "core" / "layout.py"
        for line, s in _strings(p)
        if any(k in s for k in ("region=", "tenant=", "date="))
    ]
    assert not found, f"paths are spelled in ml/core/layout.py only: {found}"


@pytest.mark.parametrize(
    "call,home",
    [
        ("os.replace", "core/atomic.py"),  # one atomic-write helper
        ("sqlite3.connect", "core/control_db.py"),  # one way into the control database (and the webhook ledger)
        ("duckdb.connect", "core/warehouse.py"),  # one way into a warehouse (ingestion reads files in memory)
    ],
)
def test_one_home_for_each_kind_of_write(call, home):
    others = {
        # in-memory DuckDB that reads landing files, writes JSON lines, parses a source spec's
        # expressions, or reads and writes a silo tenant's encrypted Parquet (no warehouse)
        "duckdb.connect": {
            ML / "core" / "tenant_parquet.py",
            ML / "data" / "ingest" / "readers.py",
            ML / "data" / "ingest" / "spec.py",
            ML / "data" / "generate" / "drops.py",
        },
    }
    allowed = {ML / home, *others.get(call, set())}
    found = [f"{_rel(p)}:{line}" for p in MODULES if p not in allowed for line in _calls(p, {call})]
    assert not found, f"{call} belongs in ml/{home}: {found}"


def test_nothing_in_ml_unpickles_or_calls_an_mlflow_model_loader():
    """Models are parsed from LightGBM's text or arrays read with allow_pickle=False
    (ml/models/champion.py); MLflow's loaders follow an MLmodel's loader_module or unpickle."""
    banned = re.compile(
        r"\b(pickle|cloudpickle|joblib|dill)\.loads?\b|\bmlflow\.(\w+\.)?load_model\b|\bpyfunc\.load_model\b"
        r"|allow_pickle\s*=\s*True"
    )
    found = [
        f"{_rel(p)}:{n}: {line.strip()}"
        for p in MODULES
        for n, line in enumerate(p.read_text().splitlines(), start=1)
        if banned.search(line) and not line.lstrip().startswith("#")
    ]
    assert not found, f"code from a registry or a file would run: {found}"


def test_settings_are_read_only_by_the_settings_module():
    found = [
        f"{_rel(p)}:{line} {s!r}"
        for p in MODULES
        if p != ML / "core" / "settings.py"
        for line, s in _strings(p)
        if s.startswith("TENANTFLOW_") and s not in TOOL_VARIABLES | _PASSED_ON
    ]
    assert not found, f"read settings from ml.core.settings, not the environment: {found}"


# settings written (not read) for child processes: `make up`'s Procfile, `tenantflow env`'s exports,
# the demo's cooldown for its Airflow tasks, and the .env of `tenantflow compose-env`
_PASSED_ON = {
    "TENANTFLOW_AIRFLOW_PASSWORD",
    "TENANTFLOW_MLFLOW_ADMIN_USER",
    "TENANTFLOW_MLFLOW_ADMIN_PASSWORD",
    "TENANTFLOW_MLFLOW_SERVICE_USER",
    "TENANTFLOW_MLFLOW_SERVICE_PASSWORD",
    "TENANTFLOW_SERVE_OPS_TOKEN",
    "TENANTFLOW_HOME",
    "TENANTFLOW_AIRFLOW_PORT",
    "TENANTFLOW_AIRFLOW_HOST",
    "TENANTFLOW_MLFLOW_PORT",
    "TENANTFLOW_SERVE_PORT",
    "TENANTFLOW_MONITOR_COOLDOWN_HOURS",
}


def test_model_kinds_are_named_only_in_their_own_modules():
    """Scoring, monitoring, publishing, the API and the DAGs iterate over registered kinds; none names one."""
    kinds = set(kind_names())
    allowed = {ML / "models" / "kinds", ML / "ops" / "cli"}
    found = [
        f"{_rel(p)}:{line} {s!r}"
        for p in [*MODULES, *(REPO_ROOT / "dags").rglob("*.py")]
        if not any(a in p.parents for a in allowed)
        for line, s in _strings(p)
        if s in kinds
    ]
    assert not found, f"a kind is defined in ml/models/kinds/ only: {found}"


def test_the_import_contracts_hold():
    out = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout[-3000:]
