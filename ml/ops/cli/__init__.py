"""``tenantflow``: onboard tenants, generate and ingest data, build features, train, score, monitor, serve.

A Typer app; each group is a module of this package. Errors people will see (an unknown tenant,
a bad id, nothing to roll back) print ``error: ...`` and exit with code 2; long work shows a
progress bar on a terminal and one line per step otherwise.
"""

from __future__ import annotations

import inspect
import os
import sys
from typing import Any

import typer

from ml.core.errors import RegistryError, SetupError, TenantError
from ml.core.layout import keep_private
from ml.core.settings import unknown_variables
from ml.ops.cli import audit, data, models, monitor, platform, tenants

app = typer.Typer(
    name="tenantflow",
    help=__doc__.split("\n\n")[0].replace("``", ""),  # the docstring's reST quotes are no help text's
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(tenants.app, name="tenants")
data.register(app)
models.register(app)
app.add_typer(monitor.app, name="monitor")
app.add_typer(audit.app, name="audit")
platform.register(app)


def main(argv: list[str] | None = None) -> int:
    """The console script's entry point; the exit code."""
    keep_private()  # every file it (or a process it starts) writes is its owner's only
    # MLflow draws a progress bar for every model it downloads (a train or score of 40 tenants: hundreds);
    # the CLI reports its own steps. Set the variable to "true" to see them.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for warning in unknown_variables():
        print(f"warning: {warning}", file=sys.stderr)
    try:
        # without standalone mode click returns a command's typer.Exit code instead of raising it
        code = _reflowed(typer.main.get_command(app))(args=argv, prog_name="tenantflow", standalone_mode=False)
    except (TenantError, RegistryError, SetupError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except SystemExit as exc:
        return int(exc.code or 0) if isinstance(exc.code, int) else 1
    except typer.Abort:  # Ctrl-C at a prompt
        return 1
    except typer.TyperException as exc:
        # Typer's own click (typer._click) raises usage errors (an unknown command, a missing
        # argument, a bad option) as TyperException subclasses, not click's: print the usage line
        # and the message, never a traceback
        if not hasattr(exc, "show"):
            raise
        exc.show()
        return int(getattr(exc, "exit_code", 2))
    return code if isinstance(code, int) else 0


def _reflowed(command: Any) -> Any:
    """``command`` and its subcommands with each help paragraph on one line, for the terminal to wrap: Typer 0.29
    prints a docstring's later paragraphs with the source's line breaks, so a terminal narrower than the source
    showed ragged lines (every command's help is prose: no lists or code blocks; click's ``\\b`` no-rewrap marker is
    not kept either). Paragraphs and ``\\f`` stay."""
    if command.help:
        text, cut, rest = inspect.cleandoc(command.help).partition("\f")
        command.help = "\n\n".join(" ".join(p.split()) for p in text.split("\n\n")) + cut + rest
    # a flag takes no value: Typer 0.29 shows its type (``--json <bool>``) as if it took one; --help's included
    for param in [*command.params, command.get_help_option(command.context_class(command))]:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    for sub in getattr(command, "commands", {}).values():
        _reflowed(sub)
    return command


if __name__ == "__main__":
    sys.exit(main())
