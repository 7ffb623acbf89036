"""Landing files into rows: each file parsed by DuckDB as text, malformed lines kept with their raw text.

Every value is read as text first (quarantine keeps what the tenant sent); ``event_at`` and
``dwell_seconds`` are also parsed while reading (``_event_at``, ``_dwell_seconds``; unparseable
values are null) so the lake gets typed columns without a second pass.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa

from ml.core.contract import LANDING_COLUMNS
from ml.data.ingest.landing import LANDING_FORMATS, sha256_file
from ml.data.ingest.partitions import PartitionReport

TEXT_COLUMNS = [c for c in LANDING_COLUMNS if c not in ("event_at", "dwell_seconds")]
# Landing columns parsed into the lake's types by DuckDB while reading, kept as ``_<column>``
# next to the text (which quarantine keeps); unparseable -> null. Timestamps: ISO 8601 with an
# offset or ``Z``; without one, UTC (the session time zone).
PARSED = {"event_at": "timestamptz", "dwell_seconds": "double"}
# The columns of a frame ``read_file`` returns.
READ_COLUMNS = ["_line_no", *LANDING_COLUMNS, *(f"_{c}" for c in PARSED), "_file_no", "source_file"]


def _parse_sql(cols: list[str]) -> str:
    """The select list of the parsed columns, null where the file lacks the column."""
    return ", ".join(
        (f'try_cast("{c}" as {t})' if c in cols else f"cast(null as {t})") + f" as _{c}" for c, t in PARSED.items()
    )


def read_file(con: duckdb.DuckDBPyConnection, path: Path, file_no: int) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Parse one landing file into (rows as text, malformed lines, problems)."""
    fmt = LANDING_FORMATS[path.suffix.lower()]
    problems: list[str] = []
    empty = pd.DataFrame(columns=READ_COLUMNS)
    malformed = pd.DataFrame(columns=["_line_no", "raw_line", "source_file"])
    if path.stat().st_size == 0:
        return empty, malformed, [f"empty_file: {path.name}"]
    p = str(path).replace("'", "''")
    if fmt == "parquet":
        raw = con.sql(f"select row_number() over () as _line_no, * from read_parquet('{p}')")
        cols = [c for c in raw.columns if c != "_line_no"]
    elif fmt == "csv":
        # Our own header read and explicit columns: DuckDB's sniffer costs more than the read.
        import csv

        with open(path, newline="") as f:
            header = next(csv.reader(f), [])
        if not header or len(set(header)) != len(header):
            return empty, malformed, [f"schema_mismatch: {path.name} has no usable header line"]
        spec = "{" + ", ".join("'" + c.replace("'", "''") + "': 'VARCHAR'" for c in header) + "}"
        con.execute("drop table if exists rej_err; drop table if exists rej_scan")
        raw = con.sql(
            f"select row_number() over () as _line_no, * from read_csv('{p}', header=true, auto_detect=false,"
            f" delim=',', quote='\"', escape='\"', columns={spec},"
            " store_rejects=true, rejects_table='rej_err', rejects_scan='rej_scan')"
        )
        cols = header
    else:
        con.execute(
            "create or replace temp table jl as select *, coalesce(json_valid(line), false) as ok from ("
            f"select generate_subscripts(l, 1) as _line_no, unnest(l) as line "
            f"from (select string_split(content, chr(10)) as l from read_text('{p}'))"
            ") where length(trim(line)) > 0"
        )
        malformed = con.sql("select _line_no, line as raw_line from jl where not ok").df()
        keys = con.sql("select distinct unnest(json_keys(line)) as k from jl where ok").fetchall()
        cols = sorted(k for (k,) in keys)
        wanted = [c for c in LANDING_COLUMNS if c in cols]
        # one JSON parse per line for all columns (``line->>'$.c'`` per column parses it again each time)
        paths = "[" + ", ".join("'$.\"" + c.replace("'", "''") + "\"'" for c in wanted) + "]"
        exprs = "".join(f', v[{i + 1}] as "{c}"' for i, c in enumerate(wanted))
        raw = con.sql(
            f"select _line_no{exprs} from (select _line_no, json_extract_string(line, {paths}) as v from jl where ok)"
        )
    missing = [c for c in LANDING_COLUMNS if c not in cols]
    if missing:
        problems.append(f"schema_mismatch: {path.name} lacks columns {missing}")
    select = ", ".join(
        f'cast("{c}" as varchar) as "{c}"' if c in cols else f'cast(null as varchar) as "{c}"' for c in LANDING_COLUMNS
    )
    # typed columns parsed here: pandas' ISO-8601 parser and a copy of the frame cost more than the read
    df = _arrow_backed(raw.query("raw_rel", f"select _line_no, {select}, {_parse_sql(cols)} from raw_rel"))
    if fmt == "csv":
        rej = con.sql("select line as _line_no, csv_line as raw_line from rej_err").df()
        malformed = pd.concat([malformed, rej], ignore_index=True) if len(malformed) else rej
    df["_file_no"] = file_no
    df["source_file"] = path.name
    malformed["source_file"] = path.name
    return df, malformed, problems


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
    ``dwell_seconds`` from the columns ``read_file`` parsed (unparseable values are null)."""
    out = df.copy(deep=False)  # setting a column never writes into ``df``: it keeps the text
    out["event_at"] = pd.to_datetime(df["_event_at"], utc=True).astype("datetime64[us, UTC]")
    out["dwell_seconds"] = pd.to_numeric(df["_dwell_seconds"]).astype("float64")
    return out


def read_day(
    con: duckdb.DuckDBPyConnection, files: list[Path], report: PartitionReport
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Read one landing day's complete files (skipping re-sent copies) into text rows."""
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
            df, malformed, problems = read_file(con, path, file_no)
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
