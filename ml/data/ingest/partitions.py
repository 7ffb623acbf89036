"""Lake and quarantine partitions: one tenant-day, deduplicated and replaced whole, atomically.

A lake partition belongs to one landing date and is rebuilt whole from that date's complete
files every time the date is ingested; ``_manifest.json`` beside it records which files (by
content hash) made it and how its rows reconcile::

    rows_in = landed + sum(quarantined.values()) + sum(dropped.values()) + duplicates_dropped
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from ml.core import atomic, lineage, tenant_parquet
from ml.core.contract import LANDING_COLUMNS, MAX_LATENESS
from ml.core.erased_users import erased_lines
from ml.core.layout import LAKE_FILE, MANIFEST_FILE
from ml.core.settings import Settings
from ml.core.tenants import Tenant

LOOKBACK = timedelta(days=7)  # how far back late files are picked up
# How far apart two partitions can hold the same event: a drop accepts events from 7 days before
# its day (MAX_LATENESS) to an hour into the next (CLOCK_SKEW), so one event fits drops of the
# day before it up to 7 days after it.
DEDUP_WINDOW = MAX_LATENESS + timedelta(days=1)
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
        ("value", pa.float64()),
        ("quantity", pa.float64()),
        ("price", pa.float64()),
        ("source_file", pa.string()),
    ]
)
# every column text as sent (a partition whose column is all null still types it: a folder of them reads as one table)
QUARANTINE_SCHEMA = pa.schema(
    [
        *((c, pa.string()) for c in LANDING_COLUMNS),
        ("reason", pa.string()),
        ("source_file", pa.string()),
        ("line_no", pa.int64()),
        ("raw_line", pa.string()),
    ]
)
MALFORMED_LINE = "malformed_line"  # the quarantine reason of a line that could not be parsed (its text kept)
WRITE_COLUMNS = [*(f.name for f in LAKE_SCHEMA), "_file_no", "_line_no"]  # what write_day needs of valid rows


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
    dropped: dict[str, int] = field(default_factory=dict)  # by a spec's row rule (rows.missing_user: drop)
    other_tenant_rows: int = 0  # skipped: another tenant's rows of a shared export (not in rows_in)
    unattributed_lines: int = 0  # skipped: a shared export's lines naming no tenant (not in rows_in)
    batch_problems: list[str] = field(default_factory=list)
    waiting_files: list[str] = field(default_factory=list)  # still being written: ingested by a later run
    suite_success: bool = True
    landing_contract: int = 2  # 2: value, quantity, price and the shop event types
    changed: bool = True  # whether this run changed the partition (lake, quarantine or manifest); not in the manifest

    def manifest(self) -> dict:
        """The content of the partition's ``_manifest.json``."""
        return {k: v for k, v in asdict(self).items() if k != "changed"}

    @property
    def reconciles(self) -> bool:
        kept = self.landed + sum(self.quarantined.values()) + sum(self.dropped.values())
        return self.rows_in == kept + self.duplicates_dropped


def ingest_command(tenant_id: str, start: date, end: date) -> str:
    """The command that lands a tenant's days ``[start, end)`` by hand, in backticks, as hints quote it."""
    return f"`tenantflow ingest --tenant {tenant_id} --start {start} --end {end}`"


def waiting_note(names: list[str]) -> str:
    """``1 file waiting: still being written (a.csv)``: files a later run ingests."""
    return f"{len(names)} file{'s' if len(names) > 1 else ''} waiting: still being written ({', '.join(names)})"


def lake_dir(settings: Settings, tenant: Tenant, day: date) -> Path:
    return settings.stores.lake.day_dir(tenant.region, tenant.tenant_id, day)


def quarantine_dir(settings: Settings, tenant: Tenant, day: date) -> Path:
    return settings.stores.quarantine.day_dir(tenant.region, tenant.tenant_id, day)


def read_manifest(settings: Settings, tenant: Tenant, day: date) -> dict | None:
    """A lake partition's manifest (files, counts per reason), or None before its first ingestion."""
    try:
        return json.loads((lake_dir(settings, tenant, day) / MANIFEST_FILE).read_text())
    except FileNotFoundError:
        return None


def write_day(
    settings: Settings,
    tenant: Tenant,
    day: date,
    report: PartitionReport,
    valid: pd.DataFrame,
    rejected: pd.DataFrame,
    reasons: np.ndarray,
    malformed_all: pd.DataFrame | None,
    landed: LandedIds,
) -> PartitionReport:
    """Deduplicate one day's valid rows and atomically replace its lake and quarantine files.

    ``valid``: the day's rows that passed validation (``WRITE_COLUMNS``); ``rejected``: the
    others, as read, with ``reasons``; ``report.rows_in`` is already counted. A malformed line naming an erased
    user (:func:`ml.core.erased_users.erased_lines`) is dropped, counted in ``report.dropped["erased_user"]``.
    """
    was = _partition_digest(settings, tenant, day)
    manifest = lake_dir(settings, tenant, day) / MANIFEST_FILE
    stamp = manifest.stat() if manifest.exists() else None  # its time is the day's last change (status)
    # Deduplicate: first occurrence within the day, then against the days before it (LandedIds).
    before = len(valid)
    order = valid["_file_no"].to_numpy(np.int64) << 32 | valid["_line_no"].to_numpy(np.int64)
    if len(order) > 1 and not (order[1:] > order[:-1]).all():  # read in this order already: no sort
        valid = valid.iloc[np.argsort(order, kind="stable")]
    valid = valid.drop_duplicates("event_id", keep="first")
    valid = valid[~landed.seen_before(day, valid["event_id"])]
    report.duplicates_dropped = before - len(valid)
    report.landed = len(valid)

    # (a clean day builds no quarantine frame: ~19 ms a day of a history import, most of its days clean)
    quarantine_frames = [_quarantine_rows(rejected, pd.Series(reasons))] if len(rejected) else []
    if malformed_all is not None and len(malformed_all):
        named = erased_lines(settings, tenant.tenant_id, malformed_all["raw_line"])
        if named.any():  # an erased user's re-sent line: counted, never quarantined (its raw text names the user)
            report.dropped["erased_user"] = report.dropped.get("erased_user", 0) + int(named.sum())
        quarantine_frames.append(_quarantine_malformed(malformed_all[~named]))
    quarantined = pd.concat(quarantine_frames, ignore_index=True) if quarantine_frames else None
    report.quarantined = dict(sorted(Counter(quarantined["reason"]).items())) if quarantined is not None else {}

    _fault_pause(settings, "before_write")
    _write_parquet(settings, tenant, _lake_table(valid), lake_dir(settings, tenant, day) / LAKE_FILE)
    landed.remember(day, valid["event_id"])
    qfile = quarantine_dir(settings, tenant, day) / LAKE_FILE
    if quarantined is not None and len(quarantined):
        table = pa.Table.from_pandas(quarantined, schema=QUARANTINE_SCHEMA, preserve_index=False)
        _write_parquet(settings, tenant, table.replace_schema_metadata(None), qfile)
    else:
        qfile.unlink(missing_ok=True)
    _fault_pause(settings, "before_manifest")
    atomic.write_json(lake_dir(settings, tenant, day) / MANIFEST_FILE, report.manifest(), sort_keys=True)
    if not report.reconciles:  # a bug, not bad data: fail loudly
        raise RuntimeError(f"tenant {tenant.tenant_id} {day}: counts do not reconcile: {report.manifest()}")
    report.changed = _partition_digest(settings, tenant, day) != was
    if not report.changed and stamp is not None:  # the same bytes again: the day did not change
        os.utime(manifest, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    _record_lineage(settings, tenant, day, quarantined=quarantined is not None and len(quarantined) > 0)
    return report


def note_waiting(settings: Settings, tenant: Tenant, day: date, names: list[str]) -> None:
    """Record in a lake day's manifest (where it has one) the files a run left waiting, keeping its change time:
    the day's rows did not change (``status`` reads the note)."""
    manifest = lake_dir(settings, tenant, day) / MANIFEST_FILE
    if not manifest.exists():
        return
    content, stamp = json.loads(manifest.read_text()), manifest.stat()
    if content.get("waiting_files") != names:
        atomic.write_json(manifest, content | {"waiting_files": names}, sort_keys=True)
        os.utime(manifest, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))


def _record_lineage(settings: Settings, tenant: Tenant, day: date, quarantined: bool) -> None:
    """The day read from landing and written to the lake (and quarantine): tables with a partition."""
    stores = settings.stores
    r, ids, part = tenant.region, [tenant.tenant_id], (stores.lake.day_dir(tenant.region, tenant.tenant_id, day).name,)
    written = [lineage.file_dataset(stores.lake.tenant_dir(r, tenant.tenant_id), "lake", r, ids, partitions=part)]
    if quarantined:
        q = stores.quarantine.tenant_dir(r, tenant.tenant_id)
        written.append(lineage.file_dataset(q, "quarantine", r, ids, partitions=part))
    landing = stores.landing.tenant_dir(r, tenant.tenant_id)
    lineage.record(inputs=[lineage.file_dataset(landing, "landing", r, ids, partitions=part)], outputs=written)


def _partition_digest(settings: Settings, tenant: Tenant, day: date) -> str:
    """SHA-256 over a tenant-day's lake file, quarantine file and manifest (an absent file hashes as
    empty): equal before and after a write when a rerun or backfill rebuilt the same bytes. The manifest's
    ``waiting_files`` and its files' ``spec`` do not count: a file that starts or stops waiting, or read to the same
    rows with another spec (recorded where none was), changes no row (no feature build for it)."""
    digest = hashlib.sha256()
    for path in (lake_dir(settings, tenant, day) / LAKE_FILE, quarantine_dir(settings, tenant, day) / LAKE_FILE):
        digest.update(path.read_bytes() if path.exists() else b"")
        digest.update(b"\0")
    manifest = lake_dir(settings, tenant, day) / MANIFEST_FILE
    if manifest.exists():
        content = {k: v for k, v in json.loads(manifest.read_text()).items() if k != "waiting_files"}
        content["files"] = [{k: v for k, v in f.items() if k != "spec"} for f in content.get("files", [])]
        digest.update(json.dumps(content, sort_keys=True).encode())
    return digest.hexdigest()


class LandedIds:
    """The event ids already in a tenant's lake partitions, for deduplication across days.

    An event is kept on the earliest day that holds it within ``DEDUP_WINDOW``; its copies on later
    days are duplicates. The rule depends only on landing (a rebuild of every day in date order
    gives the same lake), so :func:`ml.data.ingest.run.ingest_days` also rebuilds the later days a
    changed day decides for. One run writes its days in date order, so every partition is read
    (and hashed) at most once per run: days written by this run are remembered as they are written.
    """

    def __init__(self, settings: Settings, tenant: Tenant) -> None:
        self.settings, self.tenant = settings, tenant
        self._days: dict[date, tuple[np.ndarray, np.ndarray]] = {}  # day -> (ids, 64-bit hashes)

    def remember(self, day: date, event_ids: pd.Series) -> None:
        ids = event_ids.to_numpy(dtype=object)
        self._days[day] = (ids, pd.util.hash_array(ids))

    def ids(self, day: date) -> np.ndarray | None:
        """The event ids of ``day``'s lake partition (None: no partition)."""
        found = self._day(day)
        return None if found is None else found[0]

    def _day(self, day: date) -> tuple[np.ndarray, np.ndarray] | None:
        if day not in self._days:
            path = lake_dir(self.settings, self.tenant, day) / LAKE_FILE
            if not path.exists():
                return None
            ids = tenant_parquet.read_table(path, self.settings, self.tenant.tenant_id, columns=["event_id"])
            self.remember(day, ids.column("event_id").to_pandas())
        return self._days[day]

    def seen_before(self, day: date, event_ids: pd.Series) -> np.ndarray:
        """Which ``event_ids`` already landed in the days within ``DEDUP_WINDOW`` before ``day``.

        A 64-bit hash finds the candidates fast; candidates are then confirmed by exact string
        comparison, so a hash collision can never drop a real event.
        """
        found = np.zeros(len(event_ids), dtype=bool)
        earlier = [e for k in range(1, DEDUP_WINDOW.days + 1) if (e := self._day(day - timedelta(days=k))) is not None]
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
    cols = [*LANDING_COLUMNS]
    out = raw[cols].astype(object).where(raw[cols].notna(), None)
    out = out.astype(dict.fromkeys(cols, "string")).astype(object)
    out["reason"] = reason.to_numpy()
    out["source_file"] = raw["source_file"].to_numpy()
    out["line_no"] = raw["_line_no"].astype("int64").to_numpy()
    out["raw_line"] = raw["_raw"].astype(object).where(raw["_raw"].notna(), None).to_numpy()
    return out


def _quarantine_malformed(bad: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame({c: pd.Series([None] * len(bad), dtype=object) for c in LANDING_COLUMNS})
    out["reason"] = MALFORMED_LINE
    out["source_file"] = bad["source_file"].to_numpy()
    out["line_no"] = bad["_line_no"].astype("int64").to_numpy()
    out["raw_line"] = bad["raw_line"].astype(str).to_numpy()
    return out


def _write_parquet(settings: Settings, tenant: Tenant, table: pa.Table, path: Path) -> None:
    """Durably and atomically: readers see the old partition or the new one. A silo tenant's file
    is encrypted, and left as it was when its rows did not change (:func:`ml.core.tenant_parquet.replace`)."""
    tenant_parquet.replace(table, path, settings, tenant.tenant_id, write_statistics=True)


def _fault_pause(settings: Settings, stage: str) -> None:
    """Test hook: sleep at a named stage so a test can SIGKILL the process right there."""
    if settings.fault_pause == stage and settings.fault_pause_flag is not None:
        settings.fault_pause_flag.write_text(stage)
        time.sleep(3600)
