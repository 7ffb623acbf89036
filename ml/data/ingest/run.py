"""Ingesting tenants: each tenant's landing days read, validated once, and written day by day.

One tenant's failure never stops the others of its chunk (the DAG's mapped task); counts
always reconcile, or the run fails loudly.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from filelock import FileLock

from ml.core import prediction_log, webhook_ledger
from ml.core.erased_users import erased_rows
from ml.core.ids import validate_slug
from ml.core.layout import LAKE_FILE
from ml.core.settings import Settings, get_settings
from ml.core.tenant_parquet import is_encrypted, read_table, replace, writer_tenant_key
from ml.core.tenants import Tenant, TenantStore
from ml.data.ingest.landing import (
    HISTORY_FILE,
    dates_to_ingest,
    landed_files_gone,
    landing_dates,
    landing_dir,
    landing_files,
    seal_landing,
)
from ml.data.ingest.partitions import (
    DEDUP_WINDOW,
    LOOKBACK,
    WRITE_COLUMNS,
    LandedIds,
    PartitionReport,
    ingest_command,
    note_waiting,
    read_manifest,
    waiting_note,
    write_day,
)
from ml.data.ingest.raw_records import with_raw_lines
from ml.data.ingest.readers import read_day, reader, typed_rows
from ml.data.ingest.spec import landed_under, remember_spec, source_spec
from ml.data.ingest.validation import validate_batch
from ml.data.quality import ROW_ID

log = logging.getLogger(__name__)


def ingest_partition(settings: Settings, tenant: Tenant, day: date) -> PartitionReport:
    """Rebuild one tenant-day of the lake (and quarantine) from its complete landing files."""
    return ingest_days(settings, tenant, [day])[0]


def tenant_lock(settings: Settings, tenant: Tenant) -> FileLock:
    """The cross-process lock one tenant's lake is written under: ingestion and user erasure
    (:mod:`ml.ops.user_erasure`) hold it, so an ingest never writes back rows an erasure is
    removing. Re-entrant in a thread (one instance per file); another process or thread waits."""
    path = settings.stores.tenant_lock(tenant.region, tenant.tenant_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(path, is_singleton=True)


def seal_lake(settings: Settings, tenant: Tenant) -> int:
    """Encrypt a silo tenant's lake and quarantine files written before its files were encrypted
    (a features build reads the lake with the tenant's key, which a plain file fails), seal its
    landing files (:func:`~ml.data.ingest.landing.seal_landing`) and prediction log written before
    (:mod:`ml.core.sealed_files`), under :func:`tenant_lock`, and hash the event ids its webhook
    ledger kept as sent (:func:`ml.core.webhook_ledger.seal`). Returns the files and ids changed;
    nothing for a pool tenant.
    """
    if tenant.isolation != "silo":
        return 0
    stores = (settings.stores.lake, settings.stores.quarantine)
    plain = [p for s in stores for p in s.files(tenant.region, tenant.tenant_id, LAKE_FILE) if not is_encrypted(p)]
    with tenant_lock(settings, tenant):  # erasure rewrites these files under the same lock
        for path in plain:
            if path.exists() and not is_encrypted(path):  # an ingest may have replaced it meanwhile
                replace(read_table(path, settings, tenant.tenant_id), path, settings, tenant.tenant_id)
        landing = seal_landing(settings, tenant, landing_dates(settings, tenant))
        logs = prediction_log.seal(settings, tenant.region, tenant.tenant_id)
    key = writer_tenant_key(settings, tenant.tenant_id)
    assert key is not None  # a silo tenant's
    ids = webhook_ledger.seal(settings.stores.webhook_ledger, tenant.tenant_id, webhook_ledger.ledger_key(key))
    if plain or logs or ids:
        log.info("tenant %s: written before encryption: %d lake and quarantine files encrypted, %d prediction-log "
                 "files sealed, %d webhook ids hashed", tenant.tenant_id, len(plain), logs, ids)  # fmt: skip
    return len(plain) + landing + logs + ids


def ingest_days(
    settings: Settings,
    tenant: Tenant,
    days: list[date],
    wait_for_files: bool = True,
    files_replaced: bool = False,
    current_spec_days: Collection[date] = (),
) -> list[PartitionReport]:
    """Ingest several landing days of one tenant: read all, validate once, write each day.

    Days are written in date order, so each deduplicates against the days before it; the tenant's
    lake is written under :func:`tenant_lock`. A day in the lake whose landed file is being rewritten
    (still changing), or whose every file is still being written, is kept as it is (its report ``changed``
    False, the file named) unless ``wait_for_files`` is False (a history import, an erasure: a later run may never
    look back to them; and the later days whose deduplication the rebuilt days decide): such a rebuild waits up to
    :func:`resent_wait_seconds` for a landed file being rewritten, then names it in the day's problems
    (``file_being_resent``). A new file still being written waits alone (the day lands its complete files).
    A landed file sent again with other content, or gone, is named in its day's problems (``file_replaced``,
    ``file_gone``) unless ``files_replaced`` (the caller replaced them: an erasure); history files never are.
    A landed file is read with the source spec it was read with before (:func:`ml.data.ingest.spec.landed_under`)
    but on the days in ``current_spec_days`` (every file with the tenant's current one: a corrected spec; the later days
    their rebuild decides keep each file's).
    """
    with tenant_lock(settings, tenant):
        return _ingest_days(settings, tenant, days, wait_for_files, files_replaced, current_spec_days=current_spec_days)


def _ingest_days(
    settings: Settings,
    tenant: Tenant,
    days: list[date],
    wait_for_files: bool,
    files_replaced: bool,
    wait_until: float | None = None,
    current_spec_days: Collection[date] = (),
) -> list[PartitionReport]:
    settle = settings.landing.settle_seconds
    files = {d: landing_files(landing_dir(settings, tenant, d), settle) for d in sorted(set(days))}
    previous = {d: read_manifest(settings, tenant, d) for d in files}  # what each day landed before
    if not wait_for_files:  # (one wait for the whole rebuild, the later days' too: the tenant's lock is held)
        wait_until = wait_until or time.monotonic() + resent_wait_seconds(settle)
    resent = {} if wait_until is None else _await_resent(settings, tenant, files, previous, wait_until)
    kept = _kept_days(files, previous) if wait_for_files else []
    held = [_kept_as_it_is(settings, tenant, d, files[d][1]) for d in kept]
    days = [d for d in files if d not in kept]
    if not days:
        return held
    spec = source_spec(settings, tenant)
    remember_spec(settings, tenant, spec)  # (a later run reads the files read now with it)
    reports = {d: PartitionReport(tenant.tenant_id, tenant.region, d.isoformat()) for d in days}
    con = reader(settings)
    raws: list[pd.DataFrame] = []
    malformed: dict[date, pd.DataFrame | None] = {}
    settling: set[date] = set()  # nothing read yet and a file still being written: not an empty batch, a later one
    for d in days:
        complete, waiting = files[d]
        reports[d].waiting_files = [p.name for p in waiting]
        read_before = {} if d in current_spec_days else landed_under(settings, tenant, spec, previous[d])
        raw, bad = read_day(con, complete, reports[d], settings, spec, read_before)
        if not files_replaced:
            reports[d].batch_problems += _replaced_files(previous[d], reports[d].files, waiting)
        reports[d].batch_problems += [resent[d]] if d in resent else []
        if waiting and raw.empty and (bad is None or bad.empty):
            settling.add(d)
        raw["landed_on"] = d.isoformat()  # a fresh frame: no copy needed
        raws.append(raw)
        malformed[d] = bad
    con.close()
    # a day without rows has no column types to agree on (and would make an all-null column an object one)
    raw = pd.concat([r for r in raws if len(r)] or raws[:1], ignore_index=True)
    raw[ROW_ID] = np.arange(len(raw))
    typed = typed_rows(raw)
    verdict = validate_batch(typed, days, tenant, settings, spec.rows.max_null_user_share, settling)
    erased = erased_rows(settings, tenant.tenant_id, typed["user_id"])

    out = []
    landed = LandedIds(settings, tenant)
    day_rows = typed.groupby("landed_on").indices  # landing day -> row positions, in row order
    writable = typed[WRITE_COLUMNS]
    for d in days:
        key, report = d.isoformat(), reports[d]
        report.batch_problems += verdict.batch_problems + verdict.day_problems.get(key, [])
        rows = day_rows.get(key, np.array([], dtype=np.int64))
        bad = malformed[d]
        report.rows_in = len(rows) + (0 if bad is None else len(bad))
        reasons = verdict.reasons[rows]
        ok = pd.isna(reasons)
        # the day's own GX verdict: its rows and table checks passed (another day's bad rows are not its own)
        report.suite_success = not verdict.batch_problems and not verdict.day_problems.get(key) and bool(ok.all())
        keep = ~ok
        if spec.rows.missing_user == "drop":  # the tenant's rule: a row without a user is counted, not kept
            no_user = reasons == "null_user_id"
            report.dropped = {"null_user_id": int(no_user.sum())} if no_user.any() else {}
            keep &= ~no_user
        gone = erased[rows]  # an erased user's row is counted, never landed nor quarantined (raw text)
        if gone.any():
            report.dropped["erased_user"] = int(gone.sum())
            ok, keep = ok & ~gone, keep & ~gone
        # valid rows typed, rejected rows as the text they came in: each row is taken once
        valid, rejected = writable.iloc[rows[ok]], raw.iloc[rows[keep]]
        rejected = with_raw_lines(rejected, landing_dir(settings, tenant, d), settings, tenant.tenant_id)
        out.append(write_day(settings, tenant, d, report, valid, rejected, reasons[keep], malformed[d], landed))
    later = _decided_by(settings, tenant, days, landed)  # an earlier copy now lands, or no longer does (whatever files)
    rebuilt = _ingest_days(settings, tenant, later, False, files_replaced, wait_until) if later else []
    return held + out + rebuilt


def _kept_days(files: dict[date, tuple[list[Path], list[Path]]], previous: dict[date, Any]) -> list[date]:
    """The days a run that may leave them to a later one keeps as they are: a lake day with a landed file being
    rewritten keeps its partition until a later run sees the file settled (rebuilt from its complete files alone,
    that file's rows would leave the lake meanwhile), and a day whose every file is still being written (nothing to
    land yet, nothing of it changes); a new file still being written waits alone."""
    return [
        d for d, (complete, waiting) in files.items() if waiting and (not complete or _rewritten(previous[d], waiting))
    ]


def _rewritten(previous: dict[str, Any] | None, waiting: list[Path]) -> list[str]:
    """The files still being written that were landed before (the day's ``previous`` manifest names them)."""
    landed = {f["name"] for f in previous["files"]} if previous else set()
    return sorted({p.name for p in waiting} & landed)


# how long a rebuild that cannot leave a day to a later run (wait_for_files False) gives a landed file of it being
# written again to be finished: rebuilt without it, the day's lake loses that file's rows until it is complete
RESENT_WAIT_SECONDS = 60.0


def resent_wait_seconds(settle_seconds: float) -> float:
    """How long such a rebuild waits, at most, for its landed files being written again, in seconds: a writer's
    :data:`RESENT_WAIT_SECONDS` to finish, then the settle time (``TENANTFLOW_LANDING_SETTLE_SECONDS``) for the file
    to count as complete; one wait for the rebuild and the later days it rebuilds (the tenant's lock is held)."""
    return RESENT_WAIT_SECONDS + settle_seconds


def _await_resent(
    settings: Settings,
    tenant: Tenant,
    files: dict[date, tuple[list[Path], list[Path]]],
    previous: dict[date, Any],
    deadline: float,
) -> dict[date, str]:
    """Wait until ``deadline`` (``time.monotonic()``) for the days' landed files being written again (``files``,
    each day's complete and waiting files, listed again in place); the days whose files still are, with the problem
    their rebuild reports."""
    said = False
    while (resent := {d: names for d, (_, w) in files.items() if (names := _rewritten(previous[d], w))}) and (
        time.monotonic() < deadline
    ):
        if not said:  # (once, where the CLI shows it)
            said = True
            log.warning(
                "tenant %s: waiting up to %.0f s for landed files being written again to be complete: %s",
                tenant.tenant_id,
                deadline - time.monotonic(),
                {str(d): names for d, names in resent.items()},
            )
        time.sleep(1.0)
        for d in files:  # every day's: a file of another day may have changed meanwhile too
            files[d] = landing_files(landing_dir(settings, tenant, d), settings.landing.settle_seconds)
    recent = datetime.now(UTC).date() - LOOKBACK  # the ingest DAG's runs look back this far for files that changed
    out = {}
    for d, names in resent.items():
        command = ingest_command(tenant.tenant_id, d, d + timedelta(days=1))
        out[d] = (
            f"file_being_resent: {', '.join(names)}, landed before, was being written again when this day was "
            "rebuilt: its rows are out of the lake until it is complete and the day ingested again "
            + (f"(the ingest DAG's next run does it, or {command})" if d >= recent else f"(run {command})")
        )
    return out


def _replaced_files(previous: dict[str, Any] | None, files: list[dict[str, Any]], waiting: list[Path]) -> list[str]:
    """The day's landed files sent again with other content, or gone from landing, as the day's problems: the
    new version replaces the old (a tenant's correction), and its rows the old one's, so say so."""
    now, written = {f["name"]: f for f in files}, {p.name for p in waiting}
    out = []
    for f in (previous or {}).get("files", []):
        if HISTORY_FILE.fullmatch(f["name"]) or f["name"] in written:
            continue  # an import's own file (replaced by importing again), or one being written (file_being_resent)
        new = now.get(f["name"])
        if new is None:
            out.append(f"file_gone: {f['name']} ({f['rows']:,} rows landed before) is no longer in landing")
        elif f["sha256"] and new["sha256"] and new["sha256"] != f["sha256"]:
            rows = f"{f['rows']:,} rows, now {new['rows']:,}"
            out.append(f"file_replaced: {f['name']} was sent again with other content ({rows})")
    return out


def _kept_as_it_is(settings: Settings, tenant: Tenant, day: date, waiting: list[Path]) -> PartitionReport:
    """The report of a day left as it is while a landed file of it is rewritten, or its every file is still being
    written (nothing changed but the waiting files its manifest names, for ``status``)."""
    log.info("tenant %s: %s kept as it is in the lake until its files settle: %s", tenant.tenant_id, day, waiting)
    report = PartitionReport(tenant.tenant_id, tenant.region, day.isoformat(), changed=False)
    report.waiting_files = [p.name for p in waiting]
    note_waiting(settings, tenant, day, report.waiting_files)
    return report


def _decided_by(settings: Settings, tenant: Tenant, days: list[date], landed: LandedIds) -> list[date]:
    """The lake days after ``days`` (within ``DEDUP_WINDOW``) whose deduplication the rewritten days
    decide: ones holding an id a rewritten day now holds, or that dropped duplicates (their earlier
    copy may be gone). Rebuilding them keeps the lake what a rebuild of every day in order gives; a day whose landed
    files were deleted by hand (:func:`~ml.data.ingest.landing.landed_files_gone`) is left as it is."""
    later = []
    for e in sorted({d + timedelta(days=k) for d in days for k in range(1, DEDUP_WINDOW.days + 1)} - set(days)):
        manifest = read_manifest(settings, tenant, e)  # (None where the lake has no such day: ids None too)
        if (theirs := landed.ids(e)) is None or landed_files_gone(settings, tenant, e, manifest):
            continue
        # an id of e now in a day before it can only have come from a rewritten day
        if (manifest is not None and manifest["duplicates_dropped"]) or landed.seen_before(e, pd.Series(theirs)).any():
            later.append(e)
    return later


def ingest_tenant(
    settings: Settings, tenant: Tenant, start: date, end: date, current_spec: bool = False
) -> list[PartitionReport]:
    """Ingest every landing date of ``[start, end)`` (and late files) for one tenant; then seal a
    silo tenant's drops that are due (:func:`~ml.data.ingest.landing.seal_landing`, every date: a
    drop comes due an hour after its ingestion, whether or not anything is ingested then).
    ``current_spec``: read every file of ``[start, end)`` with the tenant's current source spec (:func:`ingest_days`;
    a late file's day before ``start`` keeps each file's)."""
    days = dates_to_ingest(settings, tenant, start, end)
    asked = [d for d in days if start <= d < end] if current_spec else []
    reports = ingest_days(settings, tenant, days, current_spec_days=asked) if days else []
    if tenant.isolation == "silo":
        with tenant_lock(settings, tenant):
            seal_landing(settings, tenant, landing_dates(settings, tenant))
    return reports


def ingest_tenants(
    tenant_ids: Iterable[str],
    start: date,
    end: date,
    settings: Settings | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
    current_spec: bool = False,
) -> list[dict[str, Any]]:
    """Ingest a chunk of tenants; one tenant's failure never stops the others (``current_spec``:
    :func:`ingest_days`).

    Returns one summary per tenant (each also passed to ``progress`` as it is done). Raises at the
    end if any tenant failed unexpectedly, so Airflow retries the chunk (safe: every partition is
    rebuilt idempotently).
    """
    settings = settings or get_settings()
    store = TenantStore(settings)
    summaries, failures = [], []
    for tid in tenant_ids:
        tenant = store.get(validate_slug(tid))
        try:
            reports = ingest_tenant(settings, tenant, start, end, current_spec)
        except Exception as exc:
            log.exception("tenant %s: ingestion failed", tid)
            failures.append(f"{tid}: {type(exc).__name__}: {exc}")
            continue
        summary = summarise(tenant, reports)
        log.info("tenant %s: %s", tid, json.dumps(summary))
        summaries.append(summary)
        if progress:
            progress(summary)
    if failures:
        raise RuntimeError(
            "ingestion failed for "
            + "; ".join(failures)
            + ". Other tenants of this chunk were ingested. Fix the cause and clear the task to retry."
        )
    return summaries


def totals(reports: list[PartitionReport]) -> dict[str, Any]:
    """What a run's partitions add up to: rows in, landed, quarantined and dropped by reason,
    duplicates, and what a shared export held for others (other tenants' rows, lines naming no
    tenant); ``rows_in = landed + quarantined + dropped + duplicates``."""
    quarantined: Counter[str] = Counter()
    dropped: Counter[str] = Counter()
    for r in reports:
        quarantined.update(r.quarantined)
        dropped.update(r.dropped)
    return {
        "rows_in": sum(r.rows_in for r in reports),
        "landed": sum(r.landed for r in reports),
        "quarantined": dict(sorted(quarantined.items())),
        "duplicates_dropped": sum(r.duplicates_dropped for r in reports),
        "dropped": dict(sorted(dropped.items())),
        "other_tenant_rows": sum(r.other_tenant_rows for r in reports),
        "unattributed_lines": sum(r.unattributed_lines for r in reports),
    }


def summarise(tenant: Tenant, reports: list[PartitionReport]) -> dict[str, Any]:
    return {
        "tenant_id": tenant.tenant_id,
        "dates": [r.date for r in reports],
        "changed_dates": [r.date for r in reports if r.changed],  # a rerun of the same files changes nothing
        **totals(reports),
        "batch_problems": [f"{r.date}: {p}" for r in reports for p in r.batch_problems],
        "waiting_files": [f"{r.date}: {waiting_note(r.waiting_files)}" for r in reports if r.waiting_files],
    }
