"""The lake days an end user's erasure removes or filters instead of rebuilding (:mod:`ml.ops.user_erasure`).

An erasure rebuilds a day from what its landing files hold once the user's rows are out of them. Two kinds of day
cannot be rebuilt so:

- a day whose every landing file held the user's rows only (:func:`emptied_days`): nothing is left to land, and a
  rebuild would make it an empty batch (``empty_batch`` in ``status``). Its lake and quarantine partitions are
  removed *before* its files are deleted (a crash in between leaves the files, which a rerun finds again), then its
  landing folder's markers and the folder (:func:`remove_landing_folder`): the day is gone with the user (a crash
  after the files went and before the folder did leaves the folder: ``status`` names it as a landing day not in the
  lake, and a rerun does not remove it; delete the empty folder);
- a lake day a file of which was deleted by hand after ingestion (:func:`~ml.data.ingest.landing.landed_files_gone`,
  or no landing file at all): a rebuild would drop that file's rows, every user's. The user's rows are filtered out
  of its lake and quarantine files and its manifest's counts recomputed from what is left (:func:`filter_day`:
  ``dropped["erased_user"]`` takes up the difference, so they reconcile).

Either kind may have held the earlier copy of a later day's event (:class:`ml.data.ingest.partitions.LandedIds`): the
later days within ``DEDUP_WINDOW`` that dropped duplicates are rebuilt too (:func:`later_days`); a crash after the
removal and before that rebuild is not finished by a rerun (the later day keeps its duplicate dropped until it is
ingested again).
"""

from __future__ import annotations

import json
import shutil
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from ml.core import atomic, tenant_parquet
from ml.core.erased_users import names_pattern
from ml.core.layout import LAKE_FILE, MANIFEST_FILE
from ml.core.settings import Settings
from ml.core.tenants import Tenant
from ml.data.ingest.landing import landed_files_gone, landing_files
from ml.data.ingest.partitions import DEDUP_WINDOW, MALFORMED_LINE, lake_dir, quarantine_dir, read_manifest


def _has_landing_files(settings: Settings, tenant: Tenant, day: date) -> bool:
    """Whether the day's landing folder holds a file to land, complete or still being written (a marker such as
    ``_SUCCESS``, or a writer's stale leftover, is none)."""
    folder = settings.stores.landing.day_dir(tenant.region, tenant.tenant_id, day)
    complete, waiting = landing_files(folder, settings.landing.settle_seconds)
    return bool(complete or waiting)


def emptied_days(settings: Settings, tenant: Tenant, deleted: Iterable[Path]) -> set[date]:
    """The days each of whose landing files is among ``deleted`` (the files that held the user's rows only) and none
    of whose landed files was deleted by hand (that day keeps their rows: :func:`filter_day`). Called before any
    file is deleted."""
    by_day: dict[Path, set[Path]] = defaultdict(set)
    for path in deleted:
        by_day[path.parent].add(path)
    store, out = settings.stores.landing, set()
    for folder, paths in by_day.items():
        complete, waiting = landing_files(folder, settings.landing.settle_seconds)
        day = store.day_of(folder)
        if (
            not waiting
            and set(complete) <= paths
            and not landed_files_gone(settings, tenant, day, read_manifest(settings, tenant, day))
        ):
            out.add(day)
    return out


def unrebuildable(settings: Settings, tenant: Tenant, days: Iterable[date]) -> set[date]:
    """Of ``days``, the lake days a rebuild from landing would lose rows of: a landed file gone (deleted by hand), or
    no landing file left. Called before the erasure changes any file (it replaces files under other names)."""
    return {d for d in days if _unrebuildable(settings, tenant, d, read_manifest(settings, tenant, d))}


def _unrebuildable(settings: Settings, tenant: Tenant, day: date, manifest: dict | None) -> bool:
    return bool(landed_files_gone(settings, tenant, day, manifest)) or not _has_landing_files(settings, tenant, day)


def remove_partitions(settings: Settings, tenant: Tenant, day: date) -> None:
    """Remove the day's lake and quarantine partitions (before its landing files go)."""
    for part in (lake_dir(settings, tenant, day), quarantine_dir(settings, tenant, day)):
        shutil.rmtree(part, ignore_errors=True)


def remove_landing_folder(settings: Settings, tenant: Tenant, day: date) -> None:
    """Remove an emptied day's landing folder with its markers (``_SUCCESS``) and writers' stale leftovers; a file
    that arrived meanwhile (the webhook's) is never deleted: it keeps the folder, and a later ingest lands it."""
    folder = settings.stores.landing.day_dir(tenant.region, tenant.tenant_id, day)
    if not folder.is_dir() or _has_landing_files(settings, tenant, day):
        return
    for p in folder.iterdir():
        if p.name.startswith(("_", ".")) or p.suffix == ".tmp":  # (landing_files: never a file to land once stale)
            p.unlink(missing_ok=True)
    try:
        folder.rmdir()
    except OSError:  # a file arrived since
        pass


def filter_day(settings: Settings, tenant: Tenant, user_id: str, day: date) -> tuple[int, set[str]]:
    """Filter the user out of a lake day a rebuild would lose rows of (module docstring); the rows and lines removed
    and the user's event ids among them. The manifest is written first, its counts recomputed from the filtered
    files, then the files: a rerun after a crash finds the user in a file and writes the same again."""
    lake, quarantine = lake_dir(settings, tenant, day) / LAKE_FILE, quarantine_dir(settings, tenant, day) / LAKE_FILE
    tables = {p: tenant_parquet.read_table(p, settings, tenant.tenant_id) for p in (lake, quarantine) if p.exists()}
    ids: set[str] = set()
    kept: dict[Path, pa.Table] = {}
    removed = 0
    for path, table in tables.items():
        mine = pc.fill_null(pc.equal(table.column("user_id"), user_id), False)
        if path == quarantine:  # a malformed line has no user_id: its text names the user as a whole token
            named = pc.and_(
                pc.equal(table.column("reason"), MALFORMED_LINE),
                pc.match_substring_regex(table.column("raw_line"), names_pattern(user_id)),
            )
            mine = pc.or_(mine, pc.fill_null(named, False))
        ids |= {i for i in table.filter(mine).column("event_id").to_pylist() if i is not None}
        kept[path] = table.filter(pc.invert(mine))
        removed += table.num_rows - kept[path].num_rows
    if not removed:
        return 0, ids
    manifest_path = lake_dir(settings, tenant, day) / MANIFEST_FILE
    if manifest_path.exists():
        m = json.loads(manifest_path.read_text())
        m["landed"] = kept[lake].num_rows if lake in kept else 0
        m["quarantined"] = (
            dict(sorted(Counter(kept[quarantine].column("reason").to_pylist()).items())) if (quarantine in kept) else {}
        )
        dropped = {k: n for k, n in m.get("dropped", {}).items() if k != "erased_user"}
        rest = m["rows_in"] - m["landed"] - sum(m["quarantined"].values()) - sum(dropped.values())
        m["dropped"] = dropped | (
            {"erased_user": rest - m["duplicates_dropped"]} if rest > m["duplicates_dropped"] else {}
        )
        atomic.write_json(manifest_path, m, sort_keys=True)
    for path, table in kept.items():
        if path == quarantine and not table.num_rows:
            path.unlink()
            continue
        if table.num_rows != tables[path].num_rows:
            with atomic.replacing(path, durable=True) as tmp:
                tenant_parquet.write_table(table, tmp, settings, tenant.tenant_id)
    return removed, ids


def later_days(settings: Settings, tenant: Tenant, days: Iterable[date]) -> set[date]:
    """The lake days within ``DEDUP_WINDOW`` after ``days`` that dropped duplicates (a removed or filtered day may
    have held the earlier copy of one) and that a rebuild loses nothing of (:func:`unrebuildable`)."""
    days = set(days)
    lake = set(settings.stores.lake.days(tenant.region, tenant.tenant_id))
    near = {d + timedelta(days=k) for d in days for k in range(1, DEDUP_WINDOW.days + 1)} & lake
    manifests = {d: read_manifest(settings, tenant, d) for d in near - days}  # (each read once)
    return {
        d for d, m in manifests.items() if m and m["duplicates_dropped"] and not _unrebuildable(settings, tenant, d, m)
    }
