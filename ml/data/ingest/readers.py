"""Landing files into rows: each file parsed by DuckDB as text, malformed lines kept with their raw text.

Every value is read as text first (quarantine keeps what the tenant sent); ``event_at`` and the
numbers (:data:`~ml.core.contract.NUMERIC_COLUMNS`) are also parsed while reading (``_event_at``,
``_dwell_seconds``, ...; unparseable values are null) so the lake gets typed columns without a
second pass.
"""

from __future__ import annotations

import logging
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ml.core import sealed_files
from ml.core.contract import LANDING_COLUMNS, NUMERIC_COLUMNS
from ml.core.settings import Settings
from ml.data.ingest.files import SUPPORTED, UnreadableFile, file_kind, plain_copy
from ml.data.ingest.landing import HISTORY_FILE, sha256_file
from ml.data.ingest.mapping import PARSED, landing_select, raw_record
from ml.data.ingest.parsers import JSON_LINE, csv_rejects, read_delimited, read_json
from ml.data.ingest.partitions import PartitionReport
from ml.data.ingest.spec import DEFAULT, SourceSpec, spec_for, spec_id

log = logging.getLogger(__name__)

TEXT_COLUMNS = [c for c in LANDING_COLUMNS if c != "event_at" and c not in NUMERIC_COLUMNS]
# The columns of a frame ``read_file`` returns.
READ_COLUMNS = ["_line_no", *LANDING_COLUMNS, "_raw", *(f"_{c}" for c in PARSED), "_file_no", "source_file"]
# READ_COLUMNS' types (a history file is written in them, so an all-null column keeps its type)
READ_SCHEMA = pa.schema(
    [
        ("_line_no", pa.int64()),
        *((c, pa.string()) for c in LANDING_COLUMNS),
        ("_raw", pa.string()),
        *((f"_{c}", pa.timestamp("us", tz="UTC") if t == "timestamptz" else pa.float64()) for c, t in PARSED.items()),
        ("_file_no", pa.int64()),
        ("source_file", pa.string()),
    ]
)
HISTORY_MARK = b"tenantflow.history"  # Parquet metadata key of a history import's landing files
MALFORMED = "_malformed"  # a history file's flag column: the row is a malformed line (its text in _raw)


@dataclass
class FileRead:
    """One landing file read: its rows as text (``READ_COLUMNS``), its malformed lines
    (``_line_no, raw_line, source_file``), problems naming the file, and, in a shared export (the
    spec's ``rows.other_tenant: skip``), how many rows named another tenant and how many lines
    could not be attributed to any (no tenant, or not parseable): both skipped, neither kept here."""

    rows: pd.DataFrame
    malformed: pd.DataFrame
    problems: list[str] = field(default_factory=list)
    other_tenant_rows: int = 0
    unattributed_lines: int = 0
    columns: list[str] = field(default_factory=list)  # the file's own column names, as sent (where it has rows)


def read_file(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    file_no: int,
    workdir: Path,
    tenant_id: str,
    spec: SourceSpec = DEFAULT,
    keep_raw: bool = False,
) -> FileRead:
    """Parse one landing file of ``tenant_id``, per its source ``spec``.

    ``workdir``: for a plain UTF-8 copy (:func:`ml.data.ingest.files.plain_copy`). A history file
    (:mod:`ml.data.ingest.history`) is read as it is. ``_raw``, each row's raw record: for an own
    export (or ``keep_raw``: a history import's rows leave their file), a JSON row's line or a
    delimited/Parquet row's columns as a JSON object; else only where the line cannot be read
    again later (:mod:`ml.data.ingest.raw_records`): a JSON array's element, a multi-line record.

    Raises:
        UnreadableFile: the file cannot be decompressed or decoded.
        duckdb.Error: DuckDB cannot parse it at all.
    """
    empty = pd.DataFrame(columns=READ_COLUMNS)
    malformed = pd.DataFrame(columns=["_line_no", "raw_line", "source_file"])
    if path.suffix == ".parquet" and is_history_file(path):  # whatever the spec's format
        return _read_history(path, file_no)
    kind = file_kind(path, spec.format)
    if kind is None:
        return FileRead(empty, malformed, [f"unsupported_file: {path.name} is not {SUPPORTED}"])
    if path.stat().st_size == 0:
        return FileRead(empty, malformed, [f"empty_file: {path.name}"])
    problems: list[str] = []
    plain, encoding = plain_copy(path, kind, workdir, spec.encoding)
    if encoding not in ("utf-8", "binary"):
        log.info("%s read as %s", path, encoding)
    p = str(plain).replace("'", "''")
    own_export = keep_raw or spec != DEFAULT
    if kind.format == "parquet":
        raw = con.sql(f"select row_number() over () as _line_no, * from read_parquet('{p}')")
        names = [c for c in raw.columns if c != "_line_no"]
        record = raw_record(names) if own_export else "null"
    elif kind.format == "csv":
        delimited, names, csv_problems = read_delimited(con, plain, p, spec.delimiter, spec.header)
        problems += csv_problems
        if delimited is None:
            return FileRead(empty, malformed, problems)
        raw, record = delimited, raw_record(names) if own_export else "null"
    else:
        raw, malformed, names = read_json(con, plain, p, spec)
        # the line is the record: kept for arrays' elements and own exports (else read again if quarantined)
        record = JSON_LINE if own_export else f"case when {JSON_LINE}_of_array then {JSON_LINE} end"
    mapping = landing_select(spec, names, tenant_id, record)
    if mapping.missing and not names:  # e.g. a JSON file holding [], or only malformed lines
        malformed["source_file"] = path.name
        return FileRead(empty, malformed, [] if len(malformed) else [f"empty_file: {path.name} holds no records"])
    if mapping.missing:
        problems.append(_lacking(path.name, mapping.missing, names, spec, kind.format == "csv"))
    # typed columns parsed here: pandas' ISO-8601 parser and a copy of the frame cost more than the read.
    # Times without an offset are in the spec's time zone.
    con.execute(f"set TimeZone = '{spec.timestamp.timezone}'")
    try:
        table = raw.query("src", mapping.sql).fetch_arrow_table()
    except duckdb.BinderException as exc:  # e.g. a spec expression naming a column this file lacks
        problems.append(f"schema_mismatch: {path.name}: the source spec does not fit it: {str(exc).splitlines()[0]}")
        return FileRead(empty, malformed, problems)
    finally:
        con.execute("set TimeZone = 'UTC'")
    records = table.num_rows
    shared = spec.rows.other_tenant == "skip"
    table, other = _skip_other_tenants(table, tenant_id) if shared else (table, 0)
    df = _arrow_backed(_with_nulls(table, [*mapping.absent, *([] if record != "null" else ["_raw"])]))
    if kind.format == "csv":
        malformed, numbered = csv_rejects(con, plain, df, records, header_lines=0 if spec.header else 1)
        if not numbered and record == "null" and len(df):  # a record spans lines: its line cannot be read again
            df["_raw"] = raw.query("src", f"select {raw_record(names)} as r from src").fetchnumpy()["r"]
    df["_file_no"] = file_no
    df["source_file"] = path.name
    malformed["source_file"] = path.name
    read = FileRead(df, malformed, problems, other, columns=names)
    return _without_unattributed(read, path.name) if shared else read


def _lacking(name: str, missing: list[str], names: list[str], spec: SourceSpec, delimited: bool) -> str:
    """The schema_mismatch problem of a file without columns its spec names, and what to do."""
    found = "a shared export: its columns are not listed" if spec.rows.other_tenant == "skip" else f"found {names}"
    if delimited and not spec.header and names and all(_looks_like_data(n) for n in names):
        found += (
            "; its first line looks like a record, not column names: for an export without a header"
            " line, name its columns in the source spec's header: [...]"
        )
    return f"schema_mismatch: {name} lacks columns {missing} ({found})"


def _looks_like_data(name: str) -> bool:
    """A header cell that is a number or a date/time: the first line of an export without a header."""
    return bool(re.fullmatch(r"[+-]?\d+([.,:/ T-]\d+)*([.]\d+)?(Z|[+-]\d\d:?\d\d)?", name.strip()))


def _without_unattributed(read: FileRead, name: str) -> FileRead:
    """A shared export's read without the lines whose tenant is unknown (naming none, or not
    parseable): never copied into this tenant's stores; counted and named by line instead."""
    no_tenant = read.rows["tenant_id"].isna().to_numpy()
    lines = sorted([*read.rows["_line_no"].to_numpy()[no_tenant].tolist(), *read.malformed["_line_no"].astype(int)])
    if not lines:
        return read
    shown = ", ".join(map(str, lines[:10])) + (f" and {len(lines) - 10} more" if len(lines) > 10 else "")
    problem = (
        f"unattributed_lines: {name}: {len(lines)} line{'s' if len(lines) > 1 else ''} of this shared export"
        f" name no tenant or cannot be parsed (line {shown}); every tenant reading it skips them"
        " (rows.other_tenant: skip), so their text stays only in the file: fix them in the export"
    )
    rows = read.rows[~no_tenant].reset_index(drop=True)
    return FileRead(rows, read.malformed.iloc[:0], [*read.problems, problem], read.other_tenant_rows, len(lines))


def _skip_other_tenants(table: pa.Table, tenant_id: str) -> tuple[pa.Table, int]:
    """A shared export's rows that name another tenant left out (theirs to import), and how many."""
    theirs = pc.fill_null(pc.not_equal(table.column("tenant_id"), pa.scalar(tenant_id)), False)
    other = pc.sum(theirs).as_py() or 0
    return (table.filter(pc.invert(theirs)) if other else table), other


def _read_history(path: Path, file_no: int) -> FileRead:
    """A history import's landing file: its rows already in ``READ_COLUMNS``, and its malformed lines."""
    df = _arrow_backed(pq.read_table(path))
    bad = df[MALFORMED].to_numpy(dtype=bool)
    lines = df.loc[bad, ["_line_no", "_raw", "source_file"]].rename(columns={"_raw": "raw_line"})
    rows = df.loc[~bad, READ_COLUMNS[:-2]].reset_index(drop=True)
    rows["_file_no"], rows["source_file"] = file_no, df.loc[~bad, "source_file"].to_numpy()
    return FileRead(rows, lines.astype({"raw_line": object}).reset_index(drop=True))


def _arrow_backed(table: pa.Table) -> pd.DataFrame:
    """An Arrow table as pandas with Arrow-backed strings: no Python string objects are made
    (most of the cost of DuckDB's ``.df()``)."""
    return table.to_pandas(types_mapper={pa.string(): pd.StringDtype("pyarrow")}.get)


def _with_nulls(table: pa.Table, columns: list[str]) -> pa.Table:
    """``table`` with the landing ``columns`` a file does not send (and their parsed ``_`` twins
    where they have one) as nulls of their types, in ``READ_COLUMNS`` order."""
    if not columns:
        return table
    n = table.num_rows
    for c in columns:
        for name in (c, f"_{c}") if c in PARSED else (c,):
            table = table.append_column(name, pa.nulls(n, READ_SCHEMA.field(name).type))
    return table.select([c for c in READ_COLUMNS if c in table.column_names])


def is_history_file(path: Path) -> bool:
    """Whether a landing file is a history import's (:mod:`ml.data.ingest.history`): named like
    one, Parquet whose metadata says so, with its columns (anything else is read as a tenant's file)."""
    if not HISTORY_FILE.fullmatch(path.name):
        return False
    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowInvalid):
        return False
    marked = (schema.metadata or {}).get(HISTORY_MARK) is not None
    return marked and {*READ_COLUMNS[:-2], MALFORMED} - {"_file_no"} <= set(schema.names)


def categorical(s: pd.Series) -> pd.Series:
    """A text column as a pandas categorical, dictionary-encoded by Arrow (nulls stay null)."""
    arr = pa.array(s, from_pandas=True)
    enc = (arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr).dictionary_encode()
    codes = enc.indices.fill_null(-1).to_numpy(zero_copy_only=False)
    return pd.Series(pd.Categorical.from_codes(codes, categories=enc.dictionary.to_pandas()), index=s.index)


def typed_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The rows in the lake's types: text columns as read (nulls are None), ``event_at`` and the
    numbers from the columns ``read_file`` parsed (unparseable values are null), ``dwell_parses``
    (bool: no dwell was sent, or it is a finite number) and ``numbers_parse`` (the same for
    ``value``, ``quantity`` and ``price`` together)."""
    out = df.copy(deep=False)  # setting a column never writes into ``df``: it keeps the text
    at = df["_event_at"]  # already an instant, unless every value was null (to_datetime samples 500 values)
    out["event_at"] = (at if isinstance(at.dtype, pd.DatetimeTZDtype) else pd.to_datetime(at, utc=True)).astype(
        "datetime64[us, UTC]"
    )
    parses = {}
    for c in NUMERIC_COLUMNS:
        out[c] = pd.to_numeric(df[f"_{c}"]).astype("float64")
        # a number that was sent but does not parse (``12,5``, ``12s``, ``NaN``) is bad, not missing
        parses[c] = df[c].isna().to_numpy() | out[c].notna().to_numpy()
    out["dwell_parses"] = parses["dwell_seconds"]
    out["numbers_parse"] = parses["value"] & parses["quantity"] & parses["price"]
    return out


def reader(settings: Settings) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection for reading a tenant's files: rows kept in file order, times
    in UTC unless a spec says otherwise, memory capped by ``landing.read_memory_limit``."""
    con = duckdb.connect()
    con.execute("set preserve_insertion_order = true; set TimeZone = 'UTC'")
    con.execute("set memory_limit = ?", [settings.landing.read_memory_limit])
    return con


def read_landed(
    con: duckdb.DuckDBPyConnection, path: Path, file_no: int, workdir: Path, tenant_id: str, spec: SourceSpec
) -> tuple[FileRead, SourceSpec]:
    """:func:`read_file` with ``spec``, and the spec the file was read with: a file ``spec`` leaves unread
    (:func:`unread`; or cannot decode) is read as the landing contract where it is a contract file
    (:func:`_contract_file`), never under a shared export's spec (``rows.other_tenant: skip``: its rows may be other
    tenants'); a history file as it is. The errors of :func:`read_file` with ``spec``, where the contract fails too."""
    if spec == DEFAULT or is_history_file(path):
        return read_file(con, path, file_no, workdir, tenant_id, spec), DEFAULT
    read: FileRead | None = None
    try:
        read = read_file(con, path, file_no, workdir, tenant_id, spec)
        if not unread(read) or spec.rows.other_tenant == "skip":
            return read, spec
    except (UnreadableFile, duckdb.Error):
        if spec.rows.other_tenant == "skip":
            raise
    try:
        contract = read_file(con, path, file_no, workdir, tenant_id, DEFAULT)
        if _contract_file(contract, path):
            return contract, DEFAULT
    except (UnreadableFile, duckdb.Error):
        pass
    if read is None:  # (the spec's own error, raised again: what the tenant's file says)
        read = read_file(con, path, file_no, workdir, tenant_id, spec)
    return read, spec


def _contract_file(read: FileRead, path: Path) -> bool:
    """Whether a file read as the landing contract is one: rows read without any problem, and every column of the
    file a landing column or a key of its folders (``key=value``: DuckDB adds them to a Parquet file's); an export
    with the required columns and others beside them is not (its spec's problem is reported instead)."""
    keys = {part.split("=", 1)[0] for part in path.parent.parts if "=" in part}
    columns = {c.strip().lower() for c in read.columns}
    return len(read.rows) > 0 and not read.problems and columns <= {*LANDING_COLUMNS, *keys}


def unread(read: FileRead) -> bool:
    """Whether a read left a file's rows unread: its spec does not fit it (``schema_mismatch``: columns it names are
    not there), nothing of it parsed (no row, only malformed lines: another format or encoding), or its format is
    not one read here (``unsupported_file``)."""
    nothing = len(read.rows) == 0 and len(read.malformed) > 0
    return nothing or any(p.startswith(("schema_mismatch", "unsupported_file")) for p in read.problems)


def read_day(
    con: duckdb.DuckDBPyConnection,
    files: list[Path],
    report: PartitionReport,
    settings: Settings,
    spec: SourceSpec = DEFAULT,
    landed_under: dict[tuple[str, str], SourceSpec] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Read one landing day's complete files (skipping re-sent copies) into text rows, per the
    tenant's source ``spec``; a sealed file (:mod:`ml.core.sealed_files`) is read from its content,
    opened into the read's private temporary folder. A file read before with another spec is read with it
    again (``landed_under``: (name, SHA-256) -> spec, :func:`ml.data.ingest.spec.landed_under`); a webhook file
    with the landing contract. Each file's entry in ``report.files`` names the spec it was read with (``spec``:
    :func:`ml.data.ingest.spec.spec_id`).

    A file that cannot be read at all is named in the day's problems with why; the others land.

    Raises:
        TenantKeyError: a sealed file does not open with the tenant's key.
    """
    with tempfile.TemporaryDirectory(prefix="tenantflow-read-") as workdir:
        return _read_day(con, files, report, spec, Path(workdir), settings, landed_under or {})


def opened(path: Path, workdir: Path, settings: Settings, tenant_id: str) -> tuple[Path, str]:
    """A landing file to parse and its content's SHA-256: the file itself, or a sealed file's
    content under the same name in ``workdir``/``opened`` (a private temporary folder)."""
    if not sealed_files.is_sealed(path):
        return path, sha256_file(path)
    plain = workdir / "opened" / path.name
    plain.parent.mkdir(exist_ok=True)
    return plain, sealed_files.open_plain(path, plain, settings, tenant_id)


def _read_day(
    con: duckdb.DuckDBPyConnection,
    files: list[Path],
    report: PartitionReport,
    spec: SourceSpec,
    workdir: Path,
    settings: Settings,
    landed_under: dict[tuple[str, str], SourceSpec],
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    frames, bad_lines = [], []
    seen: dict[str, dict[str, Any]] = {}  # content SHA-256 -> the entry of the day's first file with it
    for file_no, path in enumerate(files):
        if path.is_symlink() or not path.is_file():  # never read through a link or into a folder
            report.batch_problems.append(
                f"unsupported_file: {path.name} is a {'link' if path.is_symlink() else 'folder'}:"
                " put the files themselves in the date folder"
            )
            report.files.append({"name": path.name, "sha256": None, "rows": 0, "status": report.batch_problems[-1]})
            continue
        plain, digest = opened(path, workdir, settings, report.tenant_id)
        entry = {"name": path.name, "sha256": digest, "rows": 0, "status": "ingested"}
        report.files.append(entry)
        if digest in seen:  # read as its copy was (its spec, where one fitted it)
            entry["status"] = f"duplicate_of:{seen[digest]['name']}"
            entry |= {"spec": seen[digest]["spec"]} if "spec" in seen[digest] else {}
            continue
        seen[digest] = entry
        try:
            read, used = read_landed(
                con, plain, file_no, workdir, report.tenant_id, spec_for(path.name, digest, spec, landed_under)
            )
        except UnreadableFile as exc:
            report.batch_problems.append(f"{exc.reason}: {exc}")
            entry["status"] = report.batch_problems[-1]
            continue
        except duckdb.Error as exc:  # not a file we can parse at all: keep it out, say why
            report.batch_problems.append(f"unreadable_file: {path.name}: {str(exc).splitlines()[0][:200]}")
            entry["status"] = report.batch_problems[-1]
            continue
        if not unread(read):  # a spec is kept for the file only where it read it (a wrong one is not)
            entry["spec"] = spec_id(used)
        df, malformed, problems = read.rows, read.malformed, read.problems
        report.batch_problems += problems
        if problems:
            entry["status"] = "; ".join(problems)
        report.other_tenant_rows += read.other_tenant_rows
        report.unattributed_lines += read.unattributed_lines
        entry["rows"] = len(df) + len(malformed)
        frames.append(df)
        if len(malformed):
            bad_lines.append(malformed)
    frames = [f for f in frames if len(f)]  # an empty file's frame has no column types to agree on
    raw = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=READ_COLUMNS)
    return raw, (pd.concat(bad_lines, ignore_index=True) if bad_lines else None)
