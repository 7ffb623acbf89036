"""Landing files into rows: each file parsed by DuckDB as text, malformed lines kept with their raw text.

Every value is read as text first (quarantine keeps what the tenant sent); ``event_at`` and
``dwell_seconds`` are also parsed while reading (``_event_at``, ``_dwell_seconds``; unparseable
values are null) so the lake gets typed columns without a second pass.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa

from ml.core.contract import LANDING_COLUMNS
from ml.data.ingest.files import SUPPORTED, UnreadableFile, file_kind, plain_copy, sniff_dialect
from ml.data.ingest.landing import sha256_file
from ml.data.ingest.mapping import PARSED, landing_select, quote_identifier, sql_literal
from ml.data.ingest.partitions import PartitionReport
from ml.data.ingest.spec import DEFAULT, SourceSpec

log = logging.getLogger(__name__)

TEXT_COLUMNS = [c for c in LANDING_COLUMNS if c not in ("event_at", "dwell_seconds")]
# The columns of a frame ``read_file`` returns.
READ_COLUMNS = ["_line_no", *LANDING_COLUMNS, *(f"_{c}" for c in PARSED), "_file_no", "source_file"]


def read_file(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    file_no: int,
    workdir: Path,
    tenant_id: str,
    spec: SourceSpec = DEFAULT,
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Parse one landing file of ``tenant_id``, per its source ``spec``, into (rows as text,
    malformed lines, problems).

    ``workdir``: a temporary folder for a plain UTF-8 copy when the file is compressed or not
    UTF-8 (:func:`ml.data.ingest.files.plain_copy`).

    Raises:
        UnreadableFile: the file cannot be decompressed or decoded.
        duckdb.Error: DuckDB cannot parse it at all.
    """
    problems: list[str] = []
    empty = pd.DataFrame(columns=READ_COLUMNS)
    malformed = pd.DataFrame(columns=["_line_no", "raw_line", "source_file"])
    kind = file_kind(path, spec.format)
    if kind is None:
        return empty, malformed, [f"unsupported_file: {path.name} is not {SUPPORTED}"]
    if path.stat().st_size == 0:
        return empty, malformed, [f"empty_file: {path.name}"]
    plain, encoding = plain_copy(path, kind, workdir, spec.encoding)
    if encoding not in ("utf-8", "binary"):
        log.info("%s read as %s", path, encoding)
    p = str(plain).replace("'", "''")
    if kind.format == "parquet":
        raw = con.sql(f"select row_number() over () as _line_no, * from read_parquet('{p}')")
        names = [c for c in raw.columns if c != "_line_no"]
    elif kind.format == "csv":
        delimited, names, csv_problems = _read_delimited(con, plain, p, spec.delimiter)
        problems += csv_problems
        if delimited is None:
            return empty, malformed, problems
        raw = delimited
    else:
        raw, malformed, names = _read_json(con, plain, p, spec)
    mapping = landing_select(spec, names, tenant_id)
    if mapping.missing:
        problems.append(f"schema_mismatch: {path.name} lacks columns {mapping.missing} (found {names})")
    # typed columns parsed here: pandas' ISO-8601 parser and a copy of the frame cost more than the read.
    # Times without an offset are in the spec's time zone.
    con.execute(f"set TimeZone = '{spec.timestamp.timezone}'")
    try:
        df = _arrow_backed(raw.query("src", mapping.sql))
    except duckdb.BinderException as exc:  # e.g. a spec expression naming a column this file lacks
        problems.append(f"schema_mismatch: {path.name}: the source spec does not fit it: {str(exc).splitlines()[0]}")
        return empty, malformed, problems
    finally:
        con.execute("set TimeZone = 'UTC'")
    if kind.format == "csv":
        # DuckDB rejects a line once per error in it: one malformed line each
        rej = con.sql(
            "select line as _line_no, any_value(csv_line) as raw_line from rej_err group by line order by line"
        ).df()
        malformed = pd.concat([malformed, rej], ignore_index=True) if len(malformed) else rej
    df["_file_no"] = file_no
    df["source_file"] = path.name
    malformed["source_file"] = path.name
    return df, malformed, problems


def _read_delimited(
    con: duckdb.DuckDBPyConnection, plain: Path, p: str, delimiter: str | None
) -> tuple[duckdb.DuckDBPyRelation | None, list[str], list[str]]:
    """A delimited file's rows as text (the delimiter sniffed from its header; unnamed columns,
    such as the empty one a trailing delimiter makes, are ignored), its column names, problems."""
    # Our own header read and explicit columns: DuckDB's sniffer costs more than the read.
    dialect = sniff_dialect(plain, delimiter)
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
        f"select row_number() over () as _line_no, * from read_csv('{p}', header=true, auto_detect=false,"
        f" delim='{delim}', quote='\"', escape='\"', columns={spec},"
        " store_rejects=true, rejects_table='rej_err', rejects_scan='rej_scan')"
    )
    return raw, named, []


def _read_json(
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
    if starts_as_array:  # one JSON array (pretty-printed or not) is one "line"; else its lines after all
        whole = con.sql(f"select try(json_type(content)) = 'ARRAY' from read_text('{p}')").fetchone()
        if whole and whole[0]:
            lines = f"select 1 as _line_no, content as line from read_text('{p}')"
    con.execute(
        "create or replace temp table jl as "
        f"with typed as (select _line_no, line, try(json_type(line)) as t from ({lines}) where length(trim(line)) > 0)"
        " select _line_no, line, coalesce(t = 'OBJECT', false) as ok from typed where t is distinct from 'ARRAY'"
        " union all"  # an array's elements are events (elements of valid JSON are valid JSON)
        " select _line_no, e as line, coalesce(json_type(e) = 'OBJECT', false) as ok"
        " from (select _line_no, unnest(json_extract(line, '$[*]')::varchar[]) as e from typed where t = 'ARRAY')"
    )
    malformed = con.sql("select _line_no, line as raw_line from jl where not ok").df()
    keys = con.sql("select distinct unnest(json_keys(line)) as k from jl where ok").fetchall()
    # keys that differ only in case or surrounding spaces are one column (as header names are)
    groups: dict[str, list[str]] = {}
    for (k,) in sorted(keys):
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
    names = [ks[0] for ks in groups.values()]
    raw = con.sql(
        f"select _line_no{exprs} from (select _line_no, json_extract_string(line, {pointers}) as v from jl where ok)"
    )
    return raw, malformed, names


def _arrow_backed(rel: duckdb.DuckDBPyRelation) -> pd.DataFrame:
    """A DuckDB result as pandas with Arrow-backed strings: no Python string objects are made
    (most of the cost of ``.df()``)."""
    return rel.fetch_arrow_table().to_pandas(types_mapper={pa.string(): pd.StringDtype("pyarrow")}.get)


def categorical(s: pd.Series) -> pd.Series:
    """A text column as a pandas categorical, dictionary-encoded by Arrow (nulls stay null)."""
    arr = pa.array(s, from_pandas=True)
    enc = (arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr).dictionary_encode()
    codes = enc.indices.fill_null(-1).to_numpy(zero_copy_only=False)
    return pd.Series(pd.Categorical.from_codes(codes, categories=enc.dictionary.to_pandas()), index=s.index)


def typed_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The rows in the lake's types: text columns as read (nulls are None), ``event_at`` and
    ``dwell_seconds`` from the columns ``read_file`` parsed (unparseable values are null), and
    ``dwell_parses`` (bool: no dwell was sent, or it is a finite number)."""
    out = df.copy(deep=False)  # setting a column never writes into ``df``: it keeps the text
    out["event_at"] = pd.to_datetime(df["_event_at"], utc=True).astype("datetime64[us, UTC]")
    out["dwell_seconds"] = pd.to_numeric(df["_dwell_seconds"]).astype("float64")
    # a dwell that was sent but is not a number (``12,5``, ``12s``, ``NaN``) is bad, not missing
    out["dwell_parses"] = df["dwell_seconds"].isna().to_numpy() | out["dwell_seconds"].notna().to_numpy()
    return out


def read_day(
    con: duckdb.DuckDBPyConnection, files: list[Path], report: PartitionReport, spec: SourceSpec = DEFAULT
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Read one landing day's complete files (skipping re-sent copies) into text rows, per the
    tenant's source ``spec``.

    A file that cannot be read at all is named in the day's problems with why; the others land.
    """
    with tempfile.TemporaryDirectory(prefix="tenantflow-read-") as workdir:
        return _read_day(con, files, report, spec, Path(workdir))


def _read_day(
    con: duckdb.DuckDBPyConnection, files: list[Path], report: PartitionReport, spec: SourceSpec, workdir: Path
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    frames, bad_lines = [], []
    seen_hashes: dict[str, str] = {}
    for file_no, path in enumerate(files):
        digest = sha256_file(path)
        entry = {"name": path.name, "sha256": digest, "rows": 0, "status": "ingested"}
        report.files.append(entry)
        if digest in seen_hashes:
            entry["status"] = f"duplicate_of:{seen_hashes[digest]}"
            continue
        seen_hashes[digest] = path.name
        try:
            df, malformed, problems = read_file(con, path, file_no, workdir, report.tenant_id, spec)
        except UnreadableFile as exc:
            problems, df, malformed = [f"{exc.reason}: {exc}"], None, None
        except duckdb.Error as exc:  # not a file we can parse at all: keep it out, say why
            problems = [f"unreadable_file: {path.name}: {str(exc).splitlines()[0][:200]}"]
            df, malformed = None, None
        report.batch_problems += problems
        if problems:
            entry["status"] = "; ".join(problems)
        if df is None:
            continue
        entry["rows"] = len(df) + len(malformed)
        frames.append(df)
        if len(malformed):
            bad_lines.append(malformed)
    frames = [f for f in frames if len(f)]  # an empty file's frame has no column types to agree on
    raw = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=READ_COLUMNS)
    return raw, (pd.concat(bad_lines, ignore_index=True) if bad_lines else None)
