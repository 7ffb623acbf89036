"""A file's columns onto the landing contract, per the tenant's source spec: one DuckDB select.

:func:`landing_select` turns a :class:`~ml.data.ingest.spec.SourceSpec` and the columns a file
holds into SQL over the file's relation (``src``) that yields ``_line_no``, the ten landing
columns as text (trimmed, empty as null: what quarantine keeps) and the parsed ``_event_at`` and
``_dwell_seconds``. The default spec maps each landing column to the column of its name, so a
file in the landing contract reads as it always did.
"""

from __future__ import annotations

from dataclasses import dataclass

from ml.core.contract import LANDING_COLUMNS
from ml.data.ingest.spec import Const, Expr, Hash, SourceSpec, Timestamp

# Landing columns parsed into the lake's types while reading, kept as ``_<column>`` next to the
# text; unparseable -> null.
PARSED = {"event_at": "timestamptz", "dwell_seconds": "double"}
_NUMERIC_ID = r"^(-?[0-9]+)\.0+$"  # 17850.0 -> 17850


@dataclass(frozen=True)
class Mapping:
    """``sql``: the select over ``src``; ``missing``: spec'd source columns the file lacks."""

    sql: str
    missing: list[str]


def quote_identifier(name: str) -> str:
    """A column name as a SQL identifier, whatever characters it holds."""
    return '"' + name.replace('"', '""') + '"'


def sql_literal(value: str) -> str:
    """A text as a SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def _text(sql: str) -> str:
    """A value's text as the lake keeps it: surrounding spaces trimmed, empty as null."""
    return f"nullif(trim(cast({sql} as varchar)), '')"


def resolve(name: str, names: list[str]) -> str | None:
    """The file's column written ``name``, ignoring case and surrounding spaces (None: absent)."""
    key = name.strip().lower()
    return next((n for n in names if n.strip().lower() == key), None)


def landing_select(spec: SourceSpec, names: list[str], tenant_id: str) -> Mapping:
    """The select list mapping a file with columns ``names`` onto the landing contract."""
    missing: list[str] = []

    def column(name: str) -> str:
        found = resolve(name, names)
        if found is None:
            missing.append(name)
            return "cast(null as varchar)"
        return quote_identifier(found)

    texts = {}
    for c in LANDING_COLUMNS:
        source = spec.source(c)
        if source is None:  # not in the spec: the column of its name if the file has one
            found = resolve(c, names)
            sql = quote_identifier(found) if found else sql_literal(tenant_id) if c == "tenant_id" else "null"
        elif isinstance(source, str):
            sql = column(source)
        elif isinstance(source, Const):
            sql = sql_literal(source.const)
        elif isinstance(source, Expr):
            # a value the expression cannot compute is null (then checked like any missing
            # value), never an error that loses the file; the newline ends a trailing -- comment
            sql = f"try({source.expr}\n)"
        elif isinstance(source, Hash):  # a deterministic id: the same row sent again is the same event
            parts = ", ".join(f"coalesce(cast({column(n)} as varchar), chr(0))" for n in source.hash)
            sql = f"sha256(concat_ws(chr(31), {parts}))"
        text = _text(sql)
        if c in spec.numeric_ids:
            text = f"regexp_replace({text}, {sql_literal(_NUMERIC_ID)}, '\\1')"
        if c == "event_type" and spec.event_types:
            cases = " ".join(f"when {sql_literal(k)} then {sql_literal(v)}" for k, v in spec.event_types.items())
            text = f"(case {text} {cases} else {text} end)"
        texts[c] = text
    inner = ", ".join(f'{sql} as "{c}"' for c, sql in texts.items())
    parsed = f"{_event_at(spec.timestamp)} as _event_at, {_dwell('dwell_seconds')} as _dwell_seconds"
    sql = f"select *, {parsed} from (select _line_no, {inner} from src)"
    return Mapping(sql, missing)


def _event_at(ts: Timestamp) -> str:
    """``event_at`` text to an instant. Times without an offset are in the session time zone,
    which the reader sets to the spec's ``timezone``."""
    t = '"event_at"'
    if ts.format == "iso":
        return f"coalesce(try_cast({t} as timestamptz), {_iso_minutes(t)})"
    if ts.format == "epoch_s":  # try(): an out-of-range epoch is a bad timestamp, not an unreadable file
        return f"try(to_timestamp(try_cast({t} as double)))"
    if ts.format == "epoch_ms":
        return f"try(to_timestamp(try_cast({t} as double) / 1000))"
    return f"cast(try_strptime({t}, {sql_literal(ts.format)}) as timestamptz)"


def _iso_minutes(sql: str) -> str:
    """ISO 8601 times to the minute with an offset (``2026-11-20T09:00Z``, ``...09:00+01:00``), which
    DuckDB's cast refuses, given seconds. Only tried where the cast failed (COALESCE is lazy)."""
    pattern = r"^(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2})([Zz]|[+-]\d{2}(:?\d{2})?)$"
    return f"try_cast(regexp_replace({sql}, '{pattern}', '\\1:00\\2') as timestamptz)"


def _dwell(col: str) -> str:
    """A finite number of seconds, else null (``NaN`` and ``inf`` parse as doubles)."""
    d = f'try_cast("{col}" as double)'
    return f"case when isfinite({d}) then {d} end"
