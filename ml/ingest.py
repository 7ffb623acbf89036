"""Ingestion: landing drops → validated, deduplicated, Hive-partitioned Parquet in the lake.

One lake partition ``lake/region=R/tenant=T/date=D/`` belongs to exactly one landing date: it
is rebuilt whole from that date's complete landing files every time the date is ingested, and
replaced atomically (``os.replace`` of one Parquet file). That makes every run idempotent:
re-running an interval, a backfill, or an Airflow retry after a SIGKILL gives the same bytes,
never duplicates. Beside the data, ``_manifest.json`` records which files (by content hash)
made the partition and how the rows reconcile::

    rows_in = landed + sum(quarantined.values()) + duplicates_dropped

Rows that break the landing contract (:mod:`ml.quality`) go to
``quarantine/region=R/tenant=T/date=D/part-0.parquet`` with a reason per row; nothing is
dropped silently. One tenant's bad batch never touches another tenant's files.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ml import quality
from ml.settings import Settings, get_settings
from ml.tenants import Tenant, TenantRegistry, validate_slug

log = logging.getLogger(__name__)

LANDING_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
LOOKBACK = timedelta(days=7)  # how far back late files are picked up and event ids deduplicated
MANIFEST = "_manifest.json"
DATA_FILE = "part-0.parquet"
LAKE_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("tenant_id", pa.string()),
        ("user_id", pa.string()),
        ("item_id", pa.string()),
        ("event_type", pa.string()),
        ("event_at", pa.timestamp("us", tz="UTC")),
        ("session_id", pa.string()),
        ("dwell_seconds", pa.float64()),
        ("topic", pa.string()),
        ("device", pa.string()),
        ("source_file", pa.string()),
    ]
)
TEXT_COLUMNS = [c for c in quality.LANDING_COLUMNS if c not in ("event_at", "dwell_seconds")]


def settle_seconds() -> float:
    """A landing file younger than this is treated as still being written."""
    return float(os.environ.get("TENANTFLOW_LANDING_SETTLE_SECONDS", "5"))


@dataclass
class PartitionReport:
    """How one tenant-day reconciled (also the content of its ``_manifest.json``)."""

    tenant_id: str
    region: str
    date: str
    files: list[dict] = field(default_factory=list)
    rows_in: int = 0
    landed: int = 0
    quarantined: dict[str, int] = field(default_factory=dict)
    duplicates_dropped: int = 0
    batch_problems: list[str] = field(default_factory=list)
    suite_success: bool = True
    landing_contract: int = 1

    @property
    def reconciles(self) -> bool:
        return self.rows_in == self.landed + sum(self.quarantined.values()) + self.duplicates_dropped


# ---------------------------------------------------------------------------------- paths


def _partition(root: Path, tenant: Tenant, day: date) -> Path:
    return root / f"region={tenant.region}" / f"tenant={tenant.tenant_id}" / f"date={day.isoformat()}"


def landing_dir(settings: Settings, tenant: Tenant, day: date) -> Path:
    return _partition(settings.landing, tenant, day)


def lake_dir(settings: Settings, tenant: Tenant, day: date) -> Path:
    return _partition(settings.lake, tenant, day)


def quarantine_dir(settings: Settings, tenant: Tenant, day: date) -> Path:
    return _partition(settings.quarantine, tenant, day)


def complete_landing_files(folder: Path, now: float | None = None) -> list[Path]:
    """Files of a landing folder that are complete: not temporary, hidden or still growing.

    Writers that can rename (our generator, the webhook) write ``*.tmp`` and rename; for other
    uploaders a file counts as complete once unchanged for :func:`settle_seconds`.
    """
    if not folder.is_dir():
        return []
    now = time.time() if now is None else now
    out = []
    # First arrived first (a resent copy is the duplicate, not the original); name breaks ties.
    for p in sorted(folder.iterdir(), key=lambda q: (q.stat().st_mtime_ns, q.name)):
        if p.name.startswith((".", "_")) or p.suffix == ".tmp" or not p.is_file():
            continue
        if p.suffix.lower() not in LANDING_FORMATS:
            continue
        if now - p.stat().st_mtime < settle_seconds():
            log.info("skipping %s: modified %.1fs ago, may still be written", p, now - p.stat().st_mtime)
            continue
        out.append(p)
    return out


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_manifest(partition: Path) -> dict | None:
    try:
        return json.loads((partition / MANIFEST).read_text())
    except FileNotFoundError:
        return None


# ---------------------------------------------------------------------------------- reading


# Landing columns parsed into the lake's types by DuckDB while reading, kept as ``_<column>``
# next to the text (which quarantine keeps); unparseable -> null. Timestamps: ISO 8601 with an
# offset or ``Z``; without one, UTC (the session time zone).
PARSED = {"event_at": "timestamptz", "dwell_seconds": "double"}
# The columns of a frame ``_read_file`` returns.
READ_COLUMNS = ["_line_no", *quality.LANDING_COLUMNS, *(f"_{c}" for c in PARSED), "_file_no", "source_file"]


def _parse_sql(cols: list[str]) -> str:
    """The select list of the parsed columns, null where the file lacks the column."""
    return ", ".join(
        (f'try_cast("{c}" as {t})' if c in cols else f"cast(null as {t})") + f" as _{c}" for c, t in PARSED.items()
    )


def _read_file(con: duckdb.DuckDBPyConnection, path: Path, file_no: int) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
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
        wanted = [c for c in quality.LANDING_COLUMNS if c in cols]
        # one JSON parse per line for all columns (``line->>'$.c'`` per column parses it again each time)
        paths = "[" + ", ".join("'$.\"" + c.replace("'", "''") + "\"'" for c in wanted) + "]"
        exprs = "".join(f', v[{i + 1}] as "{c}"' for i, c in enumerate(wanted))
        raw = con.sql(f"select _line_no{exprs} from (select _line_no, json_extract_string(line, {paths}) as v from jl where ok)")
    missing = [c for c in quality.LANDING_COLUMNS if c not in cols]
    if missing:
        problems.append(f"schema_mismatch: {path.name} lacks columns {missing}")
    select = ", ".join(
        f"cast(\"{c}\" as varchar) as \"{c}\"" if c in cols else f"cast(null as varchar) as \"{c}\""
        for c in quality.LANDING_COLUMNS
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


def _categorical(s: pd.Series) -> pd.Series:
    """A text column as a pandas categorical, dictionary-encoded by Arrow (nulls stay null)."""
    arr = pa.array(s, from_pandas=True)
    enc = (arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr).dictionary_encode()
    codes = enc.indices.fill_null(-1).to_numpy(zero_copy_only=False)
    return pd.Series(pd.Categorical.from_codes(codes, categories=enc.dictionary.to_pandas()), index=s.index)


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    """The rows in the lake's types: text columns as read (nulls are None), ``event_at`` and
    ``dwell_seconds`` from the columns ``_read_file`` parsed (unparseable values are null)."""
    out = df.copy(deep=False)  # setting a column never writes into ``df``: it keeps the text
    out["event_at"] = pd.to_datetime(df["_event_at"], utc=True).astype("datetime64[us, UTC]")
    out["dwell_seconds"] = pd.to_numeric(df["_dwell_seconds"]).astype("float64")
    return out


# ---------------------------------------------------------------------------------- ingest


def ingest_partition(settings: Settings, tenant: Tenant, day: date) -> PartitionReport:
    """Rebuild one tenant-day of the lake (and quarantine) from its complete landing files."""
    return ingest_days(settings, tenant, [day])[0]


def _read_day(con: duckdb.DuckDBPyConnection, files: list[Path], report: PartitionReport) -> tuple[pd.DataFrame, pd.DataFrame | None]:
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
            df, malformed, problems = _read_file(con, path, file_no)
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


def ingest_days(settings: Settings, tenant: Tenant, days: list[date]) -> list[PartitionReport]:
    """Ingest several landing days of one tenant: read all, validate once, write each day.

    Great Expectations costs about a second per validation whatever the size, so a backfill
    validates all its rows in one call (the timestamp rule is relative to each row's landing
    day) and the per-day table checks in a second one, over a one-row-per-day summary.
    Days are written in date order, so each deduplicates against the days before it.
    """
    days = sorted(set(days))
    reports = {d: PartitionReport(tenant.tenant_id, tenant.region, d.isoformat()) for d in days}
    con = duckdb.connect()
    con.execute("set preserve_insertion_order = true; set TimeZone = 'UTC'")
    raws, malformed = [], {}
    for d in days:
        raw, bad = _read_day(con, complete_landing_files(landing_dir(settings, tenant, d)), reports[d])
        raw["landed_on"] = d.isoformat()  # a fresh frame: no copy needed
        raws.append(raw)
        malformed[d] = bad
    con.close()
    raw = pd.concat(raws, ignore_index=True)
    raw[quality.ROW_ID] = np.arange(len(raw))
    typed = _typed(raw)
    day_end = pd.to_datetime(typed["landed_on"]).dt.tz_localize("UTC") + pd.Timedelta(days=1)
    typed["hours_before_drop_end"] = (day_end - typed["event_at"]).dt.total_seconds() / 3600
    gx_frame = typed[[quality.ROW_ID, *quality.LANDING_COLUMNS, "landed_on", "hours_before_drop_end"]]
    # GX filters the whole frame once per expectation (nulls, row conditions), so every string
    # column is copied a few dozen times: as categoricals that copy is of integer codes (a
    # million rows: 2.8 s of checks -> 0.2 s to encode + 1.2 s). event_id is nearly unique, so
    # encoding it costs more than it saves: Arrow-backed strings.
    gx_frame = gx_frame.assign(
        event_id=gx_frame["event_id"].astype("string[pyarrow]"),
        **{c: _categorical(gx_frame[c]) for c in [*TEXT_COLUMNS, "landed_on"] if c != "event_id"},
    )
    outcome = quality.validate_events(gx_frame, tenant.tenant_id)

    # Per-day table checks, validated by GX over a one-row-per-day summary.
    user_rows = typed["event_type"].isin(quality.USER_EVENT_TYPES)
    flags = pd.DataFrame({  # only the columns the summary needs: no copy of the whole frame
        "landed_on": typed["landed_on"], quality.ROW_ID: typed[quality.ROW_ID], "_null_eid": typed["event_id"].isna(),
        "_null_uid": typed["user_id"].isna() & user_rows, "_user": user_rows,
    })
    summary = pd.DataFrame({"landed_on": [d.isoformat() for d in days]}).merge(
        flags.groupby("landed_on", as_index=False)
        .agg(rows=(quality.ROW_ID, "size"), _n_null_eid=("_null_eid", "sum"), _n_null_uid=("_null_uid", "sum"),
             _n_user=("_user", "sum")),
        on="landed_on", how="left",
    ).fillna(0)
    summary["null_event_id_share"] = summary["_n_null_eid"] / summary["rows"].clip(lower=1)
    summary["null_user_id_share"] = summary["_n_null_uid"] / summary["_n_user"].clip(lower=1)
    summary["rows"] = summary["rows"].astype("int64")
    day_problems, batch_result = quality.validate_daily_batches(
        summary[["landed_on", "rows", "null_event_id_share", "null_user_id_share"]], tenant.tenant_id
    )
    results_dir = settings.reports / "gx" / "landing" / f"tenant={tenant.tenant_id}"
    stamp = f"{days[0].isoformat()}_{days[-1].isoformat()}"
    quality.save_result(outcome.result, results_dir / "events" / f"{stamp}.json")
    quality.save_result(batch_result, results_dir / "batches" / f"{stamp}.json")

    reasons = outcome.row_reasons
    failed_days = {d for d, probs in day_problems.items() if probs}
    if outcome.batch_problems:  # e.g. the schema itself is wrong: nothing of this run lands
        failed_days = {d.isoformat() for d in days}
    batch_failed = typed["landed_on"].isin(failed_days).to_numpy() & pd.isna(reasons)
    reasons = np.where(batch_failed, "batch_failed", reasons).astype(object)

    out = []
    landed = LandedIds(settings, tenant)
    day_rows = typed.groupby("landed_on").indices  # landing day -> row positions, in row order
    writable = typed[WRITE_COLUMNS]
    for d in days:
        key, report = d.isoformat(), reports[d]
        report.batch_problems += outcome.batch_problems + day_problems.get(key, [])
        report.suite_success = outcome.success and not day_problems.get(key)
        rows = day_rows.get(key, np.array([], dtype=np.int64))
        report.rows_in = len(rows) + (0 if malformed[d] is None else len(malformed[d]))
        ok = pd.isna(reasons[rows])
        # valid rows typed, rejected rows as the text they came in: each row is taken once
        valid, rejected = writable.iloc[rows[ok]], raw.iloc[rows[~ok]]
        out.append(_write_day(settings, tenant, d, report, valid, rejected, reasons[rows[~ok]], malformed[d], landed))
    return out


WRITE_COLUMNS = [*(f.name for f in LAKE_SCHEMA), "_file_no", "_line_no"]  # what _write_day needs of valid rows


def _write_day(
    settings: Settings, tenant: Tenant, day: date, report: PartitionReport,
    valid: pd.DataFrame, rejected: pd.DataFrame, reasons: np.ndarray, malformed_all: pd.DataFrame | None,
    landed: LandedIds,
) -> PartitionReport:
    """Deduplicate one day's valid rows and atomically replace its lake and quarantine files.

    ``valid``: the day's rows that passed validation (``WRITE_COLUMNS``); ``rejected``: the
    others, as read, with ``reasons``; ``report.rows_in`` is already counted.
    """
    # Deduplicate: first occurrence within the day, then against earlier days' partitions.
    before = len(valid)
    order = valid["_file_no"].to_numpy(np.int64) << 32 | valid["_line_no"].to_numpy(np.int64)
    if len(order) > 1 and not (order[1:] > order[:-1]).all():  # read in this order already: no sort
        valid = valid.iloc[np.argsort(order, kind="stable")]
    valid = valid.drop_duplicates("event_id", keep="first")
    valid = valid[~landed.seen_before(day, valid["event_id"])]
    report.duplicates_dropped = before - len(valid)
    report.landed = len(valid)

    quarantine_frames = [_quarantine_rows(rejected, pd.Series(reasons))]
    if malformed_all is not None:
        quarantine_frames.append(_quarantine_malformed(malformed_all))
    quarantined = pd.concat(quarantine_frames, ignore_index=True)
    report.quarantined = dict(sorted(Counter(quarantined["reason"]).items()))

    _fault_pause("before_write")
    _write_parquet(_lake_table(valid), lake_dir(settings, tenant, day) / DATA_FILE)
    landed.remember(day, valid["event_id"])
    qdir = quarantine_dir(settings, tenant, day)
    if len(quarantined):
        _write_parquet(pa.Table.from_pandas(quarantined, preserve_index=False).replace_schema_metadata(None),
                       qdir / DATA_FILE)
    elif (qdir / DATA_FILE).exists():
        (qdir / DATA_FILE).unlink()
    _fault_pause("before_manifest")
    _write_json(asdict(report), lake_dir(settings, tenant, day) / MANIFEST)
    if not report.reconciles:  # a bug, not bad data: fail loudly
        raise RuntimeError(f"tenant {tenant.tenant_id} {day}: counts do not reconcile: {asdict(report)}")
    return report


class LandedIds:
    """The event ids already in a tenant's lake partitions, for deduplication across days.

    One ingestion run writes its days in date order and each day is checked against the
    lookback days before it, so every partition is read (and hashed) at most once per run:
    days written by this run are remembered as they are written.
    """

    def __init__(self, settings: Settings, tenant: Tenant) -> None:
        self.settings, self.tenant = settings, tenant
        self._days: dict[date, tuple[np.ndarray, np.ndarray]] = {}  # day -> (ids, 64-bit hashes)

    def remember(self, day: date, event_ids: pd.Series) -> None:
        ids = event_ids.to_numpy(dtype=object)
        self._days[day] = (ids, pd.util.hash_array(ids))

    def _day(self, day: date) -> tuple[np.ndarray, np.ndarray] | None:
        if day not in self._days:
            path = lake_dir(self.settings, self.tenant, day) / DATA_FILE
            if not path.exists():
                return None
            self.remember(day, pq.read_table(path, columns=["event_id"]).column("event_id").to_pandas())
        return self._days[day]

    def seen_before(self, day: date, event_ids: pd.Series) -> np.ndarray:
        """Which ``event_ids`` already landed in the days before ``day`` (within the lookback).

        A 64-bit hash finds the candidates fast; candidates are then confirmed by exact string
        comparison, so a hash collision can never drop a real event.
        """
        found = np.zeros(len(event_ids), dtype=bool)
        earlier = [e for k in range(1, LOOKBACK.days + 1) if (e := self._day(day - timedelta(days=k))) is not None]
        if not earlier or not len(event_ids):
            return found
        ids = np.concatenate([e[0] for e in earlier])
        theirs = np.concatenate([e[1] for e in earlier])
        ours = pd.util.hash_array(event_ids.to_numpy(dtype=object))
        candidates = np.nonzero(pd.Series(ours).isin(theirs).to_numpy())[0]  # a hash table; np.isin sorts
        if len(candidates):
            exact = set(ids[pd.Series(theirs).isin(ours[candidates]).to_numpy()])
            found[candidates] = [v in exact for v in event_ids.to_numpy(dtype=object)[candidates]]
        return found


def _lake_table(valid: pd.DataFrame) -> pa.Table:
    """The lake's rows in a fixed order (event time, then id: ids are unique by now), so the
    same rows always give the same bytes. Arrow sorts strings about twice as fast as pandas."""
    table = pa.Table.from_pandas(valid[[f.name for f in LAKE_SCHEMA]], schema=LAKE_SCHEMA, preserve_index=False)
    return table.sort_by([("event_at", "ascending"), ("event_id", "ascending")]).replace_schema_metadata(None)


def _quarantine_rows(raw: pd.DataFrame, reason: pd.Series) -> pd.DataFrame:
    cols = [*quality.LANDING_COLUMNS]
    out = raw[cols].astype(object).where(raw[cols].notna(), None)
    out = out.astype({c: "string" for c in cols}).astype(object)
    out["reason"] = reason.to_numpy()
    out["source_file"] = raw["source_file"].to_numpy()
    out["line_no"] = raw["_line_no"].astype("int64").to_numpy()
    out["raw_line"] = None
    return out


def _quarantine_malformed(bad: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame({c: pd.Series([None] * len(bad), dtype=object) for c in quality.LANDING_COLUMNS})
    out["reason"] = "malformed_line"
    out["source_file"] = bad["source_file"].to_numpy()
    out["line_no"] = bad["_line_no"].astype("int64").to_numpy()
    out["raw_line"] = bad["raw_line"].astype(str).to_numpy()
    return out


def _write_parquet(table: pa.Table, path: Path) -> None:
    """Write to a hidden temp file, fsync, then atomically replace: readers see old or new."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp, compression="zstd", write_statistics=True)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _write_json(obj: object, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=True))
    os.replace(tmp, path)


def _fault_pause(stage: str) -> None:
    """Test hook: sleep at a named stage so a test can SIGKILL the process right there."""
    if os.environ.get("TENANTFLOW_FAULT_PAUSE") == stage:
        Path(os.environ["TENANTFLOW_FAULT_PAUSE_FLAG"]).write_text(stage)
        time.sleep(3600)


# ---------------------------------------------------------------------------------- planning


def landing_dates(settings: Settings, tenant: Tenant) -> list[date]:
    root = settings.landing / f"region={tenant.region}" / f"tenant={tenant.tenant_id}"
    if not root.is_dir():
        return []
    return sorted(date.fromisoformat(p.name[5:]) for p in root.iterdir() if p.name.startswith("date="))


def dates_to_ingest(settings: Settings, tenant: Tenant, start: date, end: date) -> list[date]:
    """Landing dates of ``[start, end)``, plus earlier dates (within the lookback) whose
    complete files changed since they were ingested: a file that finished uploading late."""
    dates = [d for d in landing_dates(settings, tenant) if start <= d < end]
    for d in landing_dates(settings, tenant):
        if start - LOOKBACK <= d < start:
            manifest = read_manifest(lake_dir(settings, tenant, d))
            done = {f["sha256"] for f in manifest["files"]} if manifest else set()
            now = {sha256_file(p) for p in complete_landing_files(landing_dir(settings, tenant, d))}
            if now - done:
                dates.append(d)
    return sorted(set(dates))


def ingest_tenant(settings: Settings, tenant: Tenant, start: date, end: date) -> list[PartitionReport]:
    """Ingest every landing date of ``[start, end)`` (and late files) for one tenant."""
    days = dates_to_ingest(settings, tenant, start, end)
    return ingest_days(settings, tenant, days) if days else []


def ingest_tenants(tenant_ids: Iterable[str], start: date, end: date, settings: Settings | None = None) -> list[dict]:
    """Ingest a chunk of tenants; one tenant's failure never stops the others.

    Returns one summary per tenant. Raises at the end if any tenant failed unexpectedly, so
    Airflow retries the chunk (safe: every partition is rebuilt idempotently).
    """
    settings = settings or get_settings()
    registry = TenantRegistry(settings)
    summaries, failures = [], []
    for tid in tenant_ids:
        tenant = registry.get(validate_slug(tid))
        try:
            reports = ingest_tenant(settings, tenant, start, end)
        except Exception as exc:  # noqa: BLE001 — isolate tenants; re-raised below
            log.exception("tenant %s: ingestion failed", tid)
            failures.append(f"{tid}: {type(exc).__name__}: {exc}")
            continue
        summary = summarise(tenant, reports)
        log.info("tenant %s: %s", tid, json.dumps(summary))
        summaries.append(summary)
    if failures:
        raise RuntimeError(
            "ingestion failed for " + "; ".join(failures)
            + ". Other tenants of this chunk were ingested. Fix the cause and clear the task to retry."
        )
    return summaries


def summarise(tenant: Tenant, reports: list[PartitionReport]) -> dict:
    q: Counter[str] = Counter()
    for r in reports:
        q.update(r.quarantined)
    return {
        "tenant_id": tenant.tenant_id,
        "dates": [r.date for r in reports],
        "rows_in": sum(r.rows_in for r in reports),
        "landed": sum(r.landed for r in reports),
        "quarantined": dict(sorted(q.items())),
        "duplicates_dropped": sum(r.duplicates_dropped for r in reports),
        "batch_problems": [f"{r.date}: {p}" for r in reports for p in r.batch_problems],
    }


def resolve_interval(params: dict, interval_start: object, interval_end: object) -> tuple[str, str]:
    """The landing dates ``[start, end)`` of a run: its params, else its data interval."""
    if params.get("start"):
        start = date.fromisoformat(params["start"])
        end = date.fromisoformat(params["end"]) if params.get("end") else start + timedelta(days=1)
    elif interval_start is not None and interval_end is not None:
        start, end = interval_start.date(), interval_end.date()  # type: ignore[attr-defined]
        if end <= start:
            end = start + timedelta(days=1)
    else:
        raise ValueError("this run has no data interval: trigger it with params start and end (dates, end exclusive).")
    if end <= start:
        raise ValueError(f"empty interval: start {start} must be before end {end}.")
    return start.isoformat(), end.isoformat()


def chunk(items: list[str], size: int, weights: dict[str, float] | None = None) -> list[list[str]]:
    """Split tenants into groups of at most ``size`` so a thousand tenants are not a thousand
    tiny tasks. With ``weights`` (e.g. landing bytes), the groups are balanced: each tenant,
    heaviest first, joins the lightest group with room, so parallel tasks finish together
    instead of one waiting on a group that happened to get the big tenants. Each group keeps
    the order of ``items``; the same input gives the same groups."""
    size = max(1, size)
    if not weights:
        return [items[i : i + size] for i in range(0, len(items), size)]
    n = -(-len(items) // size)
    groups: list[list[int]] = [[] for _ in range(n)]
    load = [0.0] * n
    for i in sorted(range(len(items)), key=lambda i: (-weights.get(items[i], 0), i)):
        g = min((g for g in range(n) if len(groups[g]) < size), key=lambda g: (load[g], g))
        groups[g].append(i)
        load[g] += weights.get(items[i], 0)
    return [[items[i] for i in sorted(g)] for g in groups]


def plan_chunks(settings: Settings, tenants: list[Tenant], start: date, end: date, chunk_size: int, parallel: int) -> list[list[str]]:
    """The ingest DAG's mapped work: at most ``chunk_size`` tenants per chunk, at least
    ``parallel`` chunks (the tasks that run at once), balanced by the bytes each tenant landed
    in ``[start, end)``."""
    ids = [t.tenant_id for t in tenants]
    size = max(1, min(chunk_size, -(-len(ids) // max(1, parallel))))
    return chunk(ids, size, {t.tenant_id: landing_bytes(settings, t, start, end) for t in tenants})


def landing_bytes(settings: Settings, tenant: Tenant, start: date, end: date) -> int:
    """Size of a tenant's complete landing files of ``[start, end)``: how heavy its ingestion is."""
    return sum(
        p.stat().st_size
        for d in landing_dates(settings, tenant) if start <= d < end
        for p in complete_landing_files(landing_dir(settings, tenant, d))
    )  # fmt: skip
