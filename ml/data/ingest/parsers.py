"""A landing file's text parsed by DuckDB into rows of text: delimited files (the dialect sniffed
from the header) and JSON (lines, or one array of events), with the lines that do not parse.

:mod:`ml.data.ingest.readers` maps these rows onto the landing contract.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from ml.core.contract import LANDING_COLUMNS
from ml.data.ingest.files import record_lines, sniff_dialect
from ml.data.ingest.mapping import quote_identifier, sql_literal
from ml.data.ingest.spec import DEFAULT, SourceSpec

JSON_LINE = "__tenantflow_line"  # a JSON row's line, its raw record


def csv_rejects(
    con: duckdb.DuckDBPyConnection, plain: Path, df: pd.DataFrame, records: int, header_lines: int = 1
) -> tuple[pd.DataFrame, bool]:
    """The lines DuckDB rejected (``_line_no, raw_line``), one per line however many errors it
    had; and whether ``df``'s records could be renumbered by their file line, as rejected lines
    are (not when a record spans lines: they keep their record number)."""
    rej = con.sql(
        "select line as _line_no, any_value(csv_line) as raw_line from rej_err group by line order by line"
    ).df()
    rej["raw_line"] = rej["raw_line"].str.strip("\r\n")  # DuckDB keeps a CRLF file's "\n" before the line
    lines = record_lines(plain, records, rej["_line_no"].to_numpy(), header_lines)
    if lines is not None and len(df):
        df["_line_no"] = lines[df["_line_no"].to_numpy(np.int64) - 1]
    return rej, lines is not None


def read_delimited(
    con: duckdb.DuckDBPyConnection, plain: Path, p: str, delimiter: str | None, header: list[str] | None = None
) -> tuple[duckdb.DuckDBPyRelation | None, list[str], list[str]]:
    """A delimited file's rows as text (the delimiter sniffed from its header; unnamed columns,
    such as the empty one a trailing delimiter makes, are ignored), its column names, problems.
    ``header``: the column names of a file without a header line (a source spec's), whose first
    line is then a record."""
    # Our own header read and explicit columns: DuckDB's sniffer costs more than the read.
    dialect = sniff_dialect(plain, delimiter, header)
    file = plain.name.removesuffix(".plain")
    names: list[str] = []  # the columns DuckDB reads: unique ignoring case (as DuckDB's names are)
    for i, written in enumerate(dialect.header):
        name = written.strip()
        if name and name.lower() in {n.lower() for n in names}:
            if name.lower() in LANDING_COLUMNS:
                return None, names, [f"schema_mismatch: {file} names column {name!r} twice"]
            name = ""  # a second column of a name we do not read: ignored like an unnamed one
        names.append(name or f"_unnamed_{i}")
    named = [n for n in names if not n.startswith("_unnamed_")]
    if not named:
        return None, [], [f"schema_mismatch: {file} has no header line"]
    spec = "{" + ", ".join("'" + c.replace("'", "''") + "': 'VARCHAR'" for c in names) + "}"
    delim = dialect.delimiter.replace("'", "''")
    con.execute("drop table if exists rej_err; drop table if exists rej_scan")
    raw = con.sql(
        f"select row_number() over () as _line_no, * from read_csv('{p}', header={header is None},"
        " auto_detect=false,"
        f" delim='{delim}', quote='\"', escape='\"', columns={spec},"
        " store_rejects=true, rejects_table='rej_err', rejects_scan='rej_scan')"
    )
    return raw, named, []


def read_json(
    con: duckdb.DuckDBPyConnection, plain: Path, p: str, spec: SourceSpec
) -> tuple[duckdb.DuckDBPyRelation, pd.DataFrame, list[str]]:
    """JSON lines (or one JSON array of events) as text rows, the lines that are not a JSON
    object (or an array of them) as malformed lines, and the keys found.

    Each line is parsed once to learn its type (``try(json_type(...))``: null when it is not
    JSON), once for its keys and once for its values.
    """
    lines = (
        "select generate_subscripts(l, 1) as _line_no, unnest(l) as line"
        f" from (select string_split(content, chr(10)) as l from read_text('{p}'))"
    )
    with open(plain, "rb") as f:
        starts_as_array = f.read(4096).lstrip()[:1] == b"["
    whole_array = False
    if starts_as_array:  # one JSON array (pretty-printed or not) is one "line"; else its lines after all
        whole = con.sql(f"select try(json_type(content)) = 'ARRAY' from read_text('{p}')").fetchone()
        whole_array = bool(whole and whole[0])
        if whole_array:
            lines = f"select 1 as _line_no, content as line from read_text('{p}')"
    # an array's elements are events (elements of valid JSON are valid JSON); a line holding an
    # array that is not all events is one malformed line (the file's whole array: each element)
    element_is_event = "list_bool_and(list_transform(es, e -> json_type(e) = 'OBJECT'))"
    con.execute(
        "create or replace temp table jl as "
        f"with typed as (select _line_no, line, try(json_type(line)) as t from ({lines}) where length(trim(line)) > 0),"
        " arrays as (select _line_no, line, json_extract(line, '$[*]')::varchar[] as es from typed where t = 'ARRAY')"
        " select _line_no, line, coalesce(t = 'OBJECT', false) as ok, false as arr from typed"
        " where t is distinct from 'ARRAY'"
        f" union all select _line_no, line, false, false from arrays where len(es) > 0 and not {element_is_event}"
        f" and {not whole_array}"
        " union all"
        " select _line_no, e as line, coalesce(json_type(e) = 'OBJECT', false) as ok, true as arr"
        f" from (select _line_no, unnest(es) as e from arrays where {whole_array} or {element_is_event})"
    )
    malformed = con.sql("select _line_no, line as raw_line from jl where not ok").df()
    keys = con.sql("select distinct unnest(json_keys(line)) as k from jl where ok").fetchall()
    # keys that differ only in case or surrounding spaces are one column (as header names are)
    groups: dict[str, list[str]] = {}
    for (k,) in sorted(keys, key=lambda k: (k[0] != k[0].strip(), k[0])):  # " kind" after "kind": names its column
        groups.setdefault(k.strip().lower(), []).append(k)
    if spec == DEFAULT:  # the keys the contract reads; a spec's expressions may use any
        groups = {g: ks for g, ks in groups.items() if g in LANDING_COLUMNS}
    ordered = [k for ks in groups.values() for k in ks]
    position = {k: i + 1 for i, k in enumerate(ordered)}
    # one JSON parse per line for all keys, addressed by JSON pointer (no quoting of the key needed)
    pointers = "[" + ", ".join(sql_literal("/" + k.replace("~", "~0").replace("/", "~1")) for k in ordered) + "]"
    exprs = "".join(
        f", coalesce({', '.join(f'v[{position[k]}]' for k in ks)}) as {quote_identifier(ks[0])}"
        for ks in groups.values()
    )
    names = [ks[0] for ks in groups.values()]  # a group's column is named as its first key
    raw = con.sql(
        f"select _line_no{exprs}, line as {JSON_LINE}, arr as {JSON_LINE}_of_array from"
        f" (select _line_no, line, arr, json_extract_string(line, {pointers}) as v from jl where ok)"
    )
    return raw, malformed, names
