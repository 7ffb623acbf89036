"""A file's columns onto the landing contract, per the tenant's source spec: one DuckDB select.

:func:`landing_select` turns a :class:`~ml.data.ingest.spec.SourceSpec` and the columns a file
holds into SQL over the file's relation (``src``) that yields ``_line_no``, the landing
columns as text (trimmed, empty as null: what quarantine keeps) and the parsed ``_event_at`` and
numbers (``_dwell_seconds``, ``_value``, ``_quantity``, ``_price``). The default spec maps each
landing column to the column of its name, so a file in the landing contract reads as it always did.
"""

from __future__ import annotations

from dataclasses import dataclass

from ml.core.contract import LANDING_COLUMNS, NUMERIC_COLUMNS, REQUIRED_COLUMNS
from ml.data.ingest.spec import Const, Expr, Hash, SourceSpec, Timestamp

# Landing columns parsed into the lake's types while reading, kept as ``_<column>`` next to the
# text; unparseable -> null.
PARSED = {"event_at": "timestamptz", **dict.fromkeys(NUMERIC_COLUMNS, "double")}
_NUMERIC_ID = r"^(-?[0-9]+)\.0+$"  # 17850.0 -> 17850
# Event times outside [1990, 2200) are bad timestamps: nothing a platform records happened
# before 1990, and a Unix time in the wrong unit lands far outside (seconds declared as
# milliseconds: January 1970; milliseconds as seconds: year 57,000). Also keeps pandas'
# nanoseconds from overflowing (``infinity``, year 1).
EARLIEST_YEAR, LATEST_YEAR = 1990, 2200
_EARLIEST = f"timestamptz '{EARLIEST_YEAR}-01-01 00:00:00+00'"
_LATEST = f"timestamptz '{LATEST_YEAR}-01-01 00:00:00+00'"


@dataclass(frozen=True)
class Mapping:
    """``sql``: the select over ``src``; ``missing``: spec'd source columns the file lacks;
    ``absent``: optional landing columns neither the spec nor the file sends (left out of ``sql``:
    the reader adds them as nulls, which costs nothing, where DuckDB would fill a column)."""

    sql: str
    missing: list[str]
    absent: list[str]


def quote_identifier(name: str) -> str:
    """A column name as a SQL identifier, whatever characters it holds."""
    return '"' + name.replace('"', '""') + '"'


def sql_literal(value: str) -> str:
    """A text as a SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def _text(sql: str) -> str:
    """A value's text as the lake keeps it: surrounding spaces trimmed, empty as null."""
    return f"nullif(trim(cast({sql} as varchar)), '')"


def raw_record(names: list[str]) -> str:
    """SQL of a row's raw record: a JSON object of every source column's text, as read."""
    return "json_object(" + ", ".join(f"{sql_literal(n)}, {quote_identifier(n)}" for n in names) + ")"


def resolve(name: str, names: list[str]) -> str | None:
    """The file's column written ``name``, ignoring case and surrounding spaces (None: absent)."""
    key = name.strip().lower()
    return next((n for n in names if n.strip().lower() == key), None)


def landing_select(spec: SourceSpec, names: list[str], tenant_id: str, raw: str = "null") -> Mapping:
    """The select mapping a file with columns ``names`` onto the landing contract; ``raw``: the
    SQL of each row's raw record as the tenant sent it (``_raw``, kept if the row is quarantined)."""
    missing: list[str] = []

    def column(name: str) -> str:
        found = resolve(name, names)
        if found is None:
            missing.append(name)
            return "cast(null as varchar)"
        return quote_identifier(found)

    texts, absent = {}, []
    for c in LANDING_COLUMNS:
        source = spec.source(c)
        if source is None:  # not in the spec: the column of its name if the file has one
            found = resolve(c, names)
            if found is None and c in REQUIRED_COLUMNS:  # a spec that leaves it out still needs it
                missing.append(c)
            elif found is None and c != "tenant_id":
                absent.append(c)
                continue
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
    numbers = [f"{_number(c)} as _{c}" for c in NUMERIC_COLUMNS if c not in absent]
    parsed = ", ".join([f"{_event_at(spec.timestamp)} as _event_at", *numbers])
    raw_sql = f", {raw} as _raw" if raw != "null" else ""
    # an implausible instant (see EARLIEST_YEAR) is a bad timestamp, never one that fails the tenant
    plausible = f"case when _event_at >= {_EARLIEST} and _event_at < {_LATEST} then _event_at end as _event_at"
    sql = f"select * replace ({plausible}) from (select *, {parsed} from (select _line_no, {inner}{raw_sql} from src))"
    return Mapping(sql, list(dict.fromkeys(missing)), absent)


def _event_at(ts: Timestamp) -> str:
    """``event_at`` text to an instant. Times without an offset are in the session time zone,
    which the reader sets to the spec's ``timezone``."""
    t = '"event_at"'
    if ts.format == "iso":  # and epoch numbers, as the webhook (pydantic) reads them
        return f"coalesce(try_cast({t} as timestamptz), {_iso_minutes(t)}, {_epoch_by_magnitude(t)})"
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


def _epoch_by_magnitude(sql: str) -> str:
    """A number as Unix time the way pydantic (the webhook's parser) reads one: seconds when its
    magnitude is at most 2e10, else milliseconds. Only tried where the ISO casts failed."""
    n = f"try_cast({sql} as double)"
    return f"try(to_timestamp(case when abs({n}) <= 2e10 then {n} else {n} / 1000 end))"


def _number(col: str) -> str:
    """A finite number, else null (``NaN`` and ``inf`` parse as doubles)."""
    d = f'try_cast("{col}" as double)'
    return f"case when isfinite({d}) then {d} end"
