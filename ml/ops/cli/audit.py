"""``tenantflow audit``: check the hash chain of the audit log, and export it as JSON lines."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from ml.core import audit as audit_log
from ml.core.settings import get_settings

app = typer.Typer(help="The tamper-evident audit log: verify its hash chain, export it.", no_args_is_help=True)


@app.command()
def verify() -> None:
    """Recompute every entry's hash and link; exit 1 naming each edit, deletion or cut-off end."""
    settings = get_settings()
    result = audit_log.verify(settings)
    if result.ok:
        head = f"up to the head (entry {result.head['id']})" if result.head else "(no head written yet)"
        print(f"audit log OK: {result.entries} entries chained {head}; {settings.stores.control_db}")
        return
    for problem in result.problems:
        print(f"TAMPERED: {problem}", file=sys.stderr)
    print(f"audit log of {settings.stores.control_db}: {len(result.problems)} problem(s)", file=sys.stderr)
    raise typer.Exit(1)


@app.command()
def export(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's entries")] = None,
    since: Annotated[str | None, typer.Option(help="Only entries at or after this UTC date or time (ISO 8601)")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="File to write; default standard output")] = None,
) -> None:
    """Write entries as JSON lines, with their hashes (keep a copy where the home cannot write: the anchor)."""
    rows = audit_log.entries(get_settings(), tenant_id=tenant, since=since)
    lines = "".join(json.dumps(e.to_json(), sort_keys=True) + "\n" for e in rows)
    if out is None:
        sys.stdout.write(lines)
    else:
        out.write_text(lines)
        print(f"{len(rows)} entries -> {out}", file=sys.stderr)
