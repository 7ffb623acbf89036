"""Erasure of one end user of a tenant (``tenantflow erase user TENANT USER_ID``; GDPR art. 17).

``user_id`` is the id as the platform knows it: the lake's and the API's ``user_id`` (after the
tenant's source spec mapped it). In order:

1. a tombstone (:mod:`ml.core.erased_users`: a keyed hash, never the id) is recorded first, so an
   ingestion running meanwhile, or any later re-sent export, drops the user's rows
   (``dropped["erased_user"]`` in the partition manifest; a quarantine would keep raw text);
2. every landing file of the tenant that holds the user (a row whose ``user_id`` is the user, or a
   malformed line naming the id as a whole token) is replaced by a history landing file
   (:mod:`ml.data.ingest.history`'s format: the rows as read, each with its raw line) without
   them (deleted where it holds nothing else); the original bytes are deleted. The day is then ingested again,
   which rebuilds its lake and quarantine partitions from what is left (so counts still reconcile); a day of the
   user's rows only is removed whole (``removed_days``), and a lake day a landed file of which was deleted by hand is
   filtered instead (``filtered_days``): :mod:`ml.ops.erasure_days`;
3. the user's rows are deleted from every warehouse table with a ``user_id`` (the file is
   rewritten: DuckDB keeps deleted rows' bytes in free blocks), from the training snapshots (each
   snapshot's metadata records ``erased_users``: its id names the data as it was trained on),
   from the published serving features (republished under a new id, so the API swaps them), from
   the prediction log (every record naming the user), and from the webhook's ledger (the user's
   event ids; ``secure_delete`` and ``VACUUM``);
4. the tenant's models (of the kinds it uses), and its region's global models (every kind) when its data trained
   them, are marked for retraining (:mod:`ml.core.erasure_marks`: the next train run retrains them, reason
   ``erasure``);
5. the audit log gains ``user_erasure`` with the counts and the hash, never the id.

A landing file that cannot be read back or is still being written stops the erasure before any
file changes; the days rebuilt are those of the rewritten files and every lake or quarantine day
that still holds the user, so running the command again after a refusal or a crash finishes it.
The landing pass and the rebuild hold the tenant's lake lock (:func:`ml.data.ingest.run.tenant_lock`):
no ingest of the tenant writes the user back meanwhile.
A malformed line is the user's when the id is a whole token of it (``alice`` is not in
``alice2``). When no store held the id, nothing is marked for retraining and ``found`` is False.

Not yet handled: models already trained keep what they learned until their marked retrain (a
classic family's saved arrays and the API's copies of a version keep the user's index); lines of
a shared export that name no tenant are not searched; a prediction-log record naming several
users is removed whole; a removed tenant that was not purged cannot have one user erased (purge it).
A history import run again, and ingestion of a re-sent export, drop the user's rows and malformed lines by the
tombstone (:func:`ml.core.erased_users.erased_rows`, :func:`~ml.core.erased_users.erased_lines`); the tenant's own
re-sent files stay in landing as sent.
"""

from __future__ import annotations

import json
import tempfile
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow.compute as pc
import pyarrow.parquet as pq

from ml.core import (
    atomic,
    audit,
    control_db,
    erased_users,
    erasure_marks,
    prediction_log,
    sealed_files,
    tenant_parquet,
)
from ml.core.erased_users import names_pattern
from ml.core.errors import TenantError
from ml.core.ids import validate_slug
from ml.core.layout import LAKE_FILE
from ml.core.settings import Settings, get_settings
from ml.core.tenants import Tenant, TenantStore
from ml.core.warehouse import delete_user, warehouse_lock
from ml.core.webhook_ledger import forget_events, ledger_key
from ml.data.ingest.history import history_bytes, with_malformed
from ml.data.ingest.landing import HISTORY_FILE, history_file_name, landing_files
from ml.data.ingest.partitions import read_manifest
from ml.data.ingest.raw_records import with_raw_lines
from ml.data.ingest.readers import HISTORY_MARK, MALFORMED, is_history_file, opened, read_landed, reader, unread
from ml.data.ingest.run import ingest_days, tenant_lock
from ml.data.ingest.spec import SourceSpec, landed_under, source_spec, spec_for
from ml.data.publish import republish_without
from ml.models.kinds import kind_names, kinds_of
from ml.models.registry import global_owner
from ml.ops import erasure_days

if TYPE_CHECKING:
    import duckdb


def erase_user(tenant_id: str, user_id: str, settings: Settings | None = None) -> dict[str, Any]:
    """Erase one end user of a tenant from every store of the home (see the module docstring).

    Returns what changed: ``user_hash``, ``landing_files`` (names replaced or deleted), ``lake_days``
    (re-ingested), ``removed_days`` and ``filtered_days`` (:mod:`ml.ops.erasure_days`), ``warehouse`` (rows per
    table), ``snapshot_rows``, ``published_rows``,
    ``prediction_log_records``, ``ledger_rows``, ``models_marked`` (owners).

    Raises:
        TenantError: the tenant is not registered, or ``user_id`` is empty or has surrounding spaces.
    """
    settings = settings or get_settings()
    tenant = TenantStore(settings).get(validate_slug(tenant_id))
    if not user_id or user_id != user_id.strip():
        raise TenantError(
            f"tenant {tenant_id}: user id {user_id!r} is empty or has surrounding spaces; "
            "pass the id exactly as the lake and the API show it"
        )
    with control_db.connect(settings) as con:
        digest = erased_users.record(con, settings, tenant.tenant_id, user_id)
    report: dict[str, Any] = {"tenant_id": tenant.tenant_id, "user_hash": digest}
    with tenant_lock(settings, tenant):  # no ingest writes the user back meanwhile
        files, days, event_ids, removed, stuck = _erase_landing(settings, tenant, user_id)
        filtered = {d: erasure_days.filter_day(settings, tenant, user_id, d) for d in sorted(stuck)}
        event_ids |= {i for _, ids in filtered.values() for i in ids}
        # (a removed or filtered day may have held the first copy of a later day's event: those are rebuilt too)
        rebuild = sorted(set(days) | erasure_days.later_days(settings, tenant, {*removed, *filtered}))
        report |= {"landing_files": files, "removed_days": [d.isoformat() for d in sorted(removed)]}
        report["filtered_days"] = [d.isoformat() for d, (n, _) in filtered.items() if n]
        report["lake_days"] = (
            [r.date for r in ingest_days(settings, tenant, rebuild, wait_for_files=False, files_replaced=True)]
            if rebuild
            else []
        )
    report["warehouse"] = _erase_warehouse(settings, tenant, user_id)
    report["snapshot_rows"] = _erase_snapshots(settings, tenant, user_id)
    report["published_rows"] = republish_without(settings, tenant.region, tenant.tenant_id, user_id)
    with tenant_lock(settings, tenant):  # the features build seals old log files under it
        report["prediction_log_records"] = _erase_prediction_log(settings, tenant, user_id)
    tenant_key = tenant_parquet.writer_tenant_key(settings, tenant.tenant_id)  # a silo tenant's ids are hashed
    report["ledger_rows"] = forget_events(
        settings.stores.webhook_ledger,
        tenant.tenant_id,
        sorted(event_ids),
        None if tenant_key is None else ledger_key(tenant_key),
    )
    counts = [report[k] for k in ("snapshot_rows", "published_rows", "prediction_log_records", "ledger_rows")]
    found = bool(files or report["lake_days"] or report["filtered_days"] or report["warehouse"] or any(counts))
    owners = [tenant.tenant_id] if found else []  # nothing learned from a user who was never here
    if found and tenant.feeds_global_model:  # its data trained its region's global models
        owners.append(global_owner(tenant.region))
    report["found"] = found
    with control_db.connect(settings) as con:
        for owner in owners:  # the tenant's own models: the kinds it uses; its region's global models: every kind
            kinds = [k.name for k in kinds_of(tenant)] if owner == tenant.tenant_id else kind_names()
            erasure_marks.mark(con, owner, kinds, f"user of {tenant.tenant_id} erased ({digest[:12]})")
        report["models_marked"] = owners
        summary = {k: (len(v) if isinstance(v, list) else v) for k, v in report.items() if k != "tenant_id"}
        audit.append(con, "user_erasure", tenant.tenant_id, subject=digest, detail=summary)
    return report


def _erase_landing(
    settings: Settings, tenant: Tenant, user_id: str
) -> tuple[list[str], list[date], set[str], set[date], set[date]]:
    """Replace each landing file holding the user by a history file without the user's rows (delete one that holds
    nothing else; a day left without files is removed: :mod:`ml.ops.erasure_days`).

    Every file is read first and nothing is written unless all could be: a file that cannot be read
    back, or is still being written (``TENANTFLOW_LANDING_SETTLE_SECONDS``), stops the erasure
    before any change. Returns the replaced files (``date=D/name``), the days to rebuild (theirs,
    and any lake or quarantine day that still holds the user: a rerun after a crash or a refusal
    finishes the job), the user's event ids, the days removed, and the days to filter instead of rebuilding
    (:mod:`ml.ops.erasure_days`).
    """
    store = settings.stores.landing
    spec = source_spec(settings, tenant)
    con = reader(settings)
    found: list[tuple[date, Path, tuple[bytes, str] | None]] = []
    event_ids: set[str] = set()
    try:
        with tempfile.TemporaryDirectory(prefix="tenantflow-erase-") as workdir:
            for day in store.days(tenant.region, tenant.tenant_id):
                folder = store.day_dir(tenant.region, tenant.tenant_id, day)
                complete, waiting = landing_files(folder, settings.landing.settle_seconds)
                if waiting:
                    raise TenantError(
                        f"tenant {tenant.tenant_id}: {', '.join(p.name for p in waiting)} in {folder} "
                        "is still being written; nothing was erased yet (rows of the user sent from now on "
                        "are dropped): run the erasure again once it is complete"
                    )
                landed = landed_under(settings, tenant, spec, read_manifest(settings, tenant, day))
                for path in complete:
                    rewritten = _without_user(con, path, Path(workdir), settings, tenant, (spec, landed), user_id)
                    if rewritten is not None:
                        found.append((day, path, rewritten[0]))
                        event_ids |= rewritten[1]
    finally:
        con.close()
    emptied = erasure_days.emptied_days(settings, tenant, [path for _, path, data in found if data is None])
    holding = {day for day, _, _ in found} | set(_derived_days_holding(settings, tenant, user_id))
    stuck = erasure_days.unrebuildable(settings, tenant, holding - emptied)  # (before any file changes its name)
    for day in emptied:  # before its files go: a crash in between leaves them for a rerun to find
        erasure_days.remove_partitions(settings, tenant, day)
    replaced = []
    key = sealed_files.writer_key(settings, tenant.tenant_id)  # a silo tenant's landing files are sealed
    for _, path, data in found:
        replaced.append(f"{path.parent.name}/{path.name}")
        if data is None:  # nothing but the user's rows: the file goes
            path.unlink()
            continue
        name = path.name if HISTORY_FILE.fullmatch(path.name) else history_file_name(data[1])
        atomic.write_bytes(
            path.parent / name, data[0] if key is None else sealed_files.seal_bytes(data[0], key), durable=True
        )
        if name != path.name:
            path.unlink()
    for day in emptied:
        erasure_days.remove_landing_folder(settings, tenant, day)
    return replaced, sorted(holding - emptied - stuck), event_ids, emptied, stuck


def _derived_days_holding(settings: Settings, tenant: Tenant, user_id: str) -> list[date]:
    """The lake and quarantine days whose partition still holds a row of the user."""
    days = []
    for store in (settings.stores.lake, settings.stores.quarantine):
        for path in store.files(tenant.region, tenant.tenant_id, LAKE_FILE):
            names = tenant_parquet.column_names(path, settings, tenant.tenant_id)  # a silo tenant's are encrypted
            cols = [c for c in ("user_id", "raw_line") if c in names]
            table = tenant_parquet.read_table(path, settings, tenant.tenant_id, cols)
            hit = pc.fill_null(pc.equal(table.column("user_id"), user_id), False)
            if "raw_line" in table.column_names:  # a quarantined malformed line naming the user
                named = pc.match_substring_regex(table.column("raw_line"), names_pattern(user_id))
                hit = pc.or_(hit, pc.fill_null(named, False))
            if pc.any(hit).as_py():
                days.append(store.day_of(path.parent))
    return days


def _without_user(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    workdir: Path,
    settings: Settings,
    tenant: Tenant,
    specs: tuple[SourceSpec, dict[tuple[str, str], SourceSpec]],
    user_id: str,
) -> tuple[tuple[bytes, str] | None, set[str]] | None:
    """A landing file's history-file bytes without the user's rows and lines and their mark (None: it holds nothing
    else), and the user's event ids; None when the file does not hold the user. ``specs``: the tenant's current spec,
    and the ones its day's files were read with (:func:`ml.data.ingest.spec.landed_under`): the file is read as its ingestion read it.

    Raises:
        TenantError: the file cannot be read back, or the tenant's key cannot be had (nothing of it is changed).
    """
    try:
        plain, digest = opened(path, workdir, settings, tenant.tenant_id)
        read, _ = read_landed(con, plain, 0, workdir, tenant.tenant_id, spec_for(path.name, digest, *specs))
        history = is_history_file(plain)
        if unread(read) and not history:  # (its rows unread: the user may be among them; an import's file of
            # malformed lines only is read whole)
            raise ValueError("; ".join(read.problems))
    except tenant_parquet.KeyUnavailableError as exc:  # the tenant's key, not the file: nothing to remove or fix there
        raise TenantError(
            f"tenant {tenant.tenant_id}: landing file {path} cannot be opened without the tenant's key ({exc}); the "
            "user was not erased from it: make the key provider answer (TENANTFLOW_KEYS_PROVIDER), then run the "
            "erasure again"
        ) from exc
    except Exception as exc:  # an unreadable file may still hold the user: refuse, do not skip
        raise TenantError(
            f"tenant {tenant.tenant_id}: landing file {path} cannot be read back ({type(exc).__name__}: {exc}); "
            "the user was not erased from it: remove or fix the file, then run the erasure again"
        ) from exc
    rows = with_raw_lines(read.rows, plain.parent, settings, tenant.tenant_id)  # each row keeps its line
    rows = with_malformed(rows, read.malformed, path.name)
    raw = rows["_raw"].astype("string")
    mine = (rows["user_id"].astype("string") == user_id).fillna(False).to_numpy(dtype=bool)
    named = raw.str.contains(names_pattern(user_id), regex=True).fillna(False)
    mine |= (rows[MALFORMED].astype(bool) & named).to_numpy(dtype=bool)
    if not mine.any():
        return None
    ids = set(rows.loc[mine, "event_id"].dropna().astype(str))
    if mine.all():
        return None, ids
    # a history file keeps its source file's mark (an import run again then writes the same bytes); another file is
    # marked, and named, by its own content
    mark = pq.read_schema(plain).metadata[HISTORY_MARK].decode() if history else digest
    return (history_bytes(rows[~mine].drop(columns="_file_no"), mark), mark), ids


def _erase_warehouse(settings: Settings, tenant: Tenant, user_id: str) -> dict[str, int]:
    path = settings.stores.warehouse_file(tenant.warehouse_key)
    if not path.exists():
        return {}
    with warehouse_lock(path):
        return delete_user(path, tenant.tenant_id, user_id)


def _erase_snapshots(settings: Settings, tenant: Tenant, user_id: str) -> int:
    """Filter the user's rows out of every snapshot table (and drift reference) of the tenant."""
    store = settings.stores.snapshots
    deleted = 0
    for folder in sorted(p for p in store.tenant_dir(tenant.region, tenant.tenant_id).glob("*") if p.is_dir()):
        n = sum(_filter_parquet(settings, tenant, p, user_id) for p in sorted(folder.glob("*.parquet")))
        meta_path = folder / store.meta_name
        if n and meta_path.exists():
            meta = json.loads(meta_path.read_text())
            meta["erased_users"] = int(meta.get("erased_users", 0)) + 1
            atomic.write_json(meta_path, meta)
        deleted += n
    return deleted


def _filter_parquet(settings: Settings, tenant: Tenant, path: Path, user_id: str) -> int:
    """Rewrite one of the tenant's Parquet files without the user's rows (atomically, zstd; a silo
    tenant's encrypted again); the rows removed (0, and the file untouched, when it has none)."""
    if "user_id" not in tenant_parquet.column_names(path, settings, tenant.tenant_id):
        return 0
    table, n = erased_users.without_user(tenant_parquet.read_table(path, settings, tenant.tenant_id), user_id)
    if n:
        with atomic.replacing(path, durable=True) as tmp:
            tenant_parquet.write_table(table, tmp, settings, tenant.tenant_id)
    return n


def _erase_prediction_log(settings: Settings, tenant: Tenant, user_id: str) -> int:
    """Drop every prediction-log record that names the user (as a value, or in a list of values)."""
    removed = 0
    for path in prediction_log.files(settings, tenant.region, tenant.tenant_id):
        records = prediction_log.read_records(path, settings, tenant.tenant_id)
        kept = [r for r in records if not _names(r, user_id)]
        if len(kept) < len(records):
            removed += len(records) - len(kept)
            prediction_log.rewrite_records(path, kept, settings, tenant.tenant_id)
    return removed


def _names(value: Any, user_id: str) -> bool:
    if isinstance(value, dict):
        return any(_names(v, user_id) for v in value.values())
    if isinstance(value, list):
        return any(_names(v, user_id) for v in value)
    return value == user_id
