"""History import: a tenant's past events, in one file or many, landed into date partitions by event time.

``tenantflow import TENANT PATH...`` reads each file with the tenant's source spec
(:func:`ml.data.ingest.readers.read_file`, the live path's reader) and splits its rows by the
UTC date of their event time into one *history landing file* per source file and date::

    landing/region=R/tenant=T/date=D/history-<sha256 of the source file, 16 hex>.parquet

(the rows as read: text, parsed values, raw records and malformed lines; its Parquet metadata
marks it). Those dates are then ingested as any landing date, so the landing contract,
quarantine, deduplication and the lake's lineage are the live path's. The 7-day lateness rule
holds by construction (every row lands on its own day): a declared history import is exempt from
it, a live drop is not. Rows whose time cannot be read, or that lie after the import's day, land
on the import's day, where ingestion quarantines them (``bad_timestamp``,
``timestamp_in_future``) with their raw record.

Idempotent: the same file imported again writes the same bytes and ingests nothing; imported
again under a changed spec, its history files are replaced (and ones for dates it no longer
covers removed) and only the dates touched are ingested again.
"""

from __future__ import annotations

import hashlib
import io
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ml.core import atomic, sealed_files
from ml.core.erased_users import erased_lines, erased_rows
from ml.core.settings import Settings
from ml.core.tenants import Tenant
from ml.data.ingest.files import UnreadableFile
from ml.data.ingest.landing import history_file_name, sha256_file
from ml.data.ingest.partitions import PartitionReport, read_manifest
from ml.data.ingest.readers import HISTORY_MARK, MALFORMED, READ_COLUMNS, READ_SCHEMA, read_file, reader
from ml.data.ingest.run import ingest_days, totals
from ml.data.ingest.spec import source_spec

log = logging.getLogger(__name__)


@dataclass
class SourceFileImport:
    """What became of one file of an import."""

    path: str
    sha256: str
    rows: int = 0  # this tenant's rows and malformed lines read from it
    other_tenant_rows: int = 0
    unattributed_lines: int = 0  # a shared export's lines naming no tenant, or not parseable
    erased_user_rows: int = 0  # rows and malformed lines of an erased user: not written
    days: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    changed: bool = False  # its history files were written (False: imported before, same bytes)

    @property
    def written(self) -> int:
        """The rows and lines of the file its history files hold."""
        return self.rows - self.erased_user_rows


@dataclass
class HistoryImport:
    """An import's outcome: its files, and the reports of the dates it ingested."""

    tenant_id: str
    files: list[SourceFileImport]
    reports: list[PartitionReport]

    def summary(self) -> dict[str, Any]:
        """Totals and per-day counts (JSON-ready); ``rows_in = landed + quarantined + dropped + duplicates``, over
        every landed file of the days ingested (a day is rebuilt whole: its webhook and earlier files too);
        ``rows_read``: this tenant's rows and malformed lines read from the import's files."""
        return {
            "tenant_id": self.tenant_id,
            "files": len(self.files),
            "rows_read": sum(f.rows for f in self.files),
            "files_unchanged": sum(not f.changed and not f.problems and f.written > 0 for f in self.files),
            "files_without_rows": sum(f.written == 0 and not f.problems for f in self.files),
            "erased_user_rows": sum(f.erased_user_rows for f in self.files),  # in rows_read, never written
            "days_ingested": len(self.reports),
            **totals(self.reports),
            # skipped while reading the source files (their history files hold this tenant's rows only)
            "other_tenant_rows": sum(f.other_tenant_rows for f in self.files),
            "unattributed_lines": sum(f.unattributed_lines for f in self.files),
            "problems": [p for f in self.files for p in f.problems]
            + [f"{r.date}: {p}" for r in self.reports for p in r.batch_problems],
            "per_day": [
                {
                    "date": r.date,
                    "rows_in": r.rows_in,
                    "landed": r.landed,
                    "quarantined": r.quarantined,
                    "dropped": r.dropped,
                    "duplicates_dropped": r.duplicates_dropped,
                }
                for r in self.reports
            ],
        }


def import_history(
    settings: Settings,
    tenant: Tenant,
    paths: list[Path],
    today: date | None = None,
    progress: Callable[[str], None] | None = None,
) -> HistoryImport:
    """Land ``paths`` (files of ``tenant``'s export, any format its spec reads) into date
    partitions by event time and ingest the dates that changed.

    ``today``: the import's day (default: today, UTC), where rows without a usable time land.
    ``progress``: called once per file read (its name and rows) and once when the dates are
    ingested (``len(paths) + 1`` calls).

    Raises:
        FileNotFoundError: a path does not exist or is not a file (nothing is imported).
        SpecError: the tenant's stored spec no longer parses.
    """
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"tenant {tenant.tenant_id}: not a file: {', '.join(missing)}; nothing was imported")
    today = today or datetime.now(UTC).date()
    spec = source_spec(settings, tenant)
    con = reader(settings)
    files: list[SourceFileImport] = []
    touched: set[date] = set()
    with tempfile.TemporaryDirectory(prefix="tenantflow-import-") as workdir:
        for file_no, path in enumerate(paths):
            try:
                record = SourceFileImport(str(path), sha256_file(path))
                files.append(record)
                if any(f.sha256 == record.sha256 for f in files[:-1]):
                    record.problems.append(f"{path.name}: the same bytes as an earlier file of this import: skipped")
                    continue
                try:
                    read = read_file(con, path, file_no, Path(workdir), tenant.tenant_id, spec, keep_raw=True)
                except UnreadableFile as exc:
                    record.problems.append(f"{exc.reason}: {exc}")
                    continue
                except duckdb.Error as exc:
                    record.problems.append(f"unreadable_file: {path.name}: {str(exc).splitlines()[0][:200]}")
                    continue
                record.problems += read.problems
                record.other_tenant_rows = read.other_tenant_rows
                record.unattributed_lines = read.unattributed_lines
                rows = with_malformed(read.rows, read.malformed, path.name)
                record.rows = len(rows)
                if read.problems and not len(rows):  # e.g. a spec that no longer fits it: keep what it landed before
                    continue
                rows = _without_erased(settings, tenant, record, rows)
                touched |= _write_days(settings, tenant, record, rows, today)
            finally:  # every file, read or refused, is a step
                if progress:
                    progress(f"read {path.name}")
    con.close()
    reports = ingest_days(settings, tenant, sorted(touched), wait_for_files=False) if touched else []
    if progress:
        progress(f"ingested {len(touched)} dates")
    return HistoryImport(tenant.tenant_id, files, reports)


def _without_erased(settings: Settings, tenant: Tenant, record: SourceFileImport, rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` without an erased user's (:mod:`ml.core.erased_users`): a row with the user's id, a malformed line
    naming it (the erasure's rule): never written to landing again; counted in ``record.erased_user_rows``."""
    bad = rows[MALFORMED].to_numpy(dtype=bool)
    gone = erased_rows(settings, tenant.tenant_id, rows["user_id"].astype("string"))
    gone[bad] = erased_lines(settings, tenant.tenant_id, rows.loc[bad, "_raw"].astype("string"))
    record.erased_user_rows = int(gone.sum())
    return rows[~gone] if record.erased_user_rows else rows


def with_malformed(rows: pd.DataFrame, malformed: pd.DataFrame, name: str) -> pd.DataFrame:
    """The file's rows and its malformed lines in one frame (a malformed line: its text in ``_raw``; its
    ``source_file`` as read, ``name`` where it has none)."""
    rows = rows[READ_COLUMNS].assign(**{MALFORMED: False})
    if not len(malformed):
        return rows
    bad = pd.DataFrame(
        {
            "_line_no": malformed["_line_no"].astype("int64").to_numpy(),
            "_raw": malformed["raw_line"].astype(str).to_numpy(),
            "_event_at": pd.Series(pd.NaT, index=malformed.index, dtype="datetime64[us, UTC]").to_numpy(),
            "source_file": malformed["source_file"].to_numpy() if "source_file" in malformed else name,
            MALFORMED: True,
        }
    )
    return pd.concat([rows, bad], ignore_index=True) if len(rows) else bad.reindex(columns=[*READ_COLUMNS, MALFORMED])


def _write_days(
    settings: Settings, tenant: Tenant, record: SourceFileImport, rows: pd.DataFrame, today: date
) -> set[date]:
    """Write one source file's rows as history files by event date; the dates whose files changed."""
    at = pd.to_datetime(rows["_event_at"], utc=True)
    # no usable time, a malformed line, or after the import's day: the import's day (quarantined there)
    end_of_today = pd.Timestamp(today, tz="UTC") + pd.Timedelta(days=1)
    usable = (at.notna() & ~rows[MALFORMED].astype(bool) & (at < end_of_today)).to_numpy()
    days = at.dt.date.to_numpy(dtype=object)
    days[~usable] = today
    rows = rows.assign(_day=days)
    store = settings.stores.landing
    name = history_file_name(record.sha256)
    before = {store.day_of(p.parent) for p in store.files(tenant.region, tenant.tenant_id, name)}
    changed: set[date] = set()
    key = sealed_files.writer_key(settings, tenant.tenant_id)  # a silo tenant's landing files are sealed
    for day, part in rows.groupby("_day", sort=True):
        record.days.append(day.isoformat())
        path = store.day_dir(tenant.region, tenant.tenant_id, day) / name
        data = history_bytes(part.drop(columns="_day").drop(columns="_file_no"), record.sha256)
        same = path.exists() and sealed_files.read_bytes(path, settings, tenant.tenant_id) == data
        if same and _ingested(settings, tenant, day, data):
            continue  # an import that stopped after writing it (a crash, a kill) ingests it on the rerun
        atomic.write_bytes(path, data if key is None else sealed_files.seal_bytes(data, key), durable=True)
        changed.add(day)
    for day in before - {date.fromisoformat(d) for d in record.days}:  # a changed spec moved its rows
        (store.day_dir(tenant.region, tenant.tenant_id, day) / name).unlink()
        changed.add(day)
    record.changed = bool(changed)
    log.info("tenant %s: %s -> %d days (%d changed)", tenant.tenant_id, record.path, len(record.days), len(changed))
    return changed


def _ingested(settings: Settings, tenant: Tenant, day: date, data: bytes) -> bool:
    """Whether the lake partition of ``day`` was built from a history file of these bytes."""
    manifest = read_manifest(settings, tenant, day)
    digest = hashlib.sha256(data).hexdigest()
    return manifest is not None and any(f.get("sha256") == digest for f in manifest["files"])


def history_bytes(part: pd.DataFrame, source_sha256: str) -> bytes:
    """A history file's bytes (rows in ``READ_COLUMNS`` but ``_file_no``, and ``_malformed``), marked
    with the SHA-256 of the source file they were read from: the same rows always give the same bytes."""
    schema = pa.schema([f for f in READ_SCHEMA if f.name != "_file_no"] + [pa.field(MALFORMED, pa.bool_())])
    table = pa.Table.from_pandas(part.reset_index(drop=True), schema=schema, preserve_index=False)
    table = table.replace_schema_metadata({HISTORY_MARK: source_sha256.encode()})
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()
