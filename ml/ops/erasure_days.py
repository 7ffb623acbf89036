"""The lake days an end user's erasure removes or filters instead of rebuilding (:mod:`ml.ops.user_erasure`).

An erasure rebuilds a day from what its landing files hold once the user's rows are out of them. Two kinds of day
cannot be rebuilt so:

- a day whose every landing file held the user's rows only (:func:`emptied_days`): nothing is left to land, and a
  rebuild would make it an empty batch (``empty_batch`` in ``status``). Its lake and quarantine partitions are
  removed *before* its files are deleted (a crash in between leaves the files, which a rerun finds again), then its
  landing folder (:func:`remove_landing_folder`): the day is gone with the user (a crash after the files went and
  before the folder did leaves the folder, empty: ``status`` names it as a landing day not in the lake);
- a lake day without landing files (deleted by hand after ingestion, :func:`filter_unlanded`): a rebuild from none
  would drop every user's rows. The user's rows are filtered out of its lake and quarantine files and its manifest's
  counts recomputed from what is left (``dropped["erased_user"]`` takes up the difference, so they reconcile).

Either kind may have decided which later copies of an event were duplicates (:class:`ml.data.ingest.partitions.
LandedIds`), so the later days within ``DEDUP_WINDOW`` that have landing files are rebuilt too (:func:`later_days`).
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
from ml.data.ingest.landing import landing_files
from ml.data.ingest.partitions import DEDUP_WINDOW, lake_dir, quarantine_dir

MALFORMED_REASON = "malformed_line"  # a quarantined line that could not be parsed: the user is found in its text


def _has_landing_files(settings: Settings, tenant: Tenant, day: date) -> bool:
    """Whether the day's landing folder holds a file to land, complete or still being written (a marker such as
    ``_SUCCESS``, or a writer's stale leftover, is none)."""
    folder = settings.stores.landing.day_dir(tenant.region, tenant.tenant_id, day)
    complete, waiting = landing_files(folder, settings.landing.settle_seconds)
    return bool(complete or waiting)


def emptied_days(settings: Settings, tenant: Tenant, deleted: Iterable[Path]) -> set[date]:
    """The days each of whose landing files is among ``deleted`` (the files that held the user's rows only)."""
    by_day: dict[Path, set[Path]] = defaultdict(set)
    for path in deleted:
        by_day[path.parent].add(path)
    store, out = settings.stores.landing, set()
    for folder, paths in by_day.items():
        complete, waiting = landing_files(folder, settings.landing.settle_seconds)
        if not waiting and set(complete) <= paths:
            out.add(store.day_of(folder))
    return out


def remove_partitions(settings: Settings, tenant: Tenant, day: date) -> None:
    """Remove the day's lake and quarantine partitions (before its landing files go)."""
    for part in (lake_dir(settings, tenant, day), quarantine_dir(settings, tenant, day)):
        shutil.rmtree(part, ignore_errors=True)


def remove_landing_folder(settings: Settings, tenant: Tenant, day: date) -> None:
    """Remove an emptied day's landing folder with what is left in it (markers, stale leftovers); a file that arrived
    meanwhile (the webhook's) keeps the folder, and a later ingest lands it."""
    folder = settings.stores.landing.day_dir(tenant.region, tenant.tenant_id, day)
    if not folder.is_dir() or _has_landing_files(settings, tenant, day):
        return
    for p in folder.iterdir():
        if p.is_file() or p.is_symlink():
            p.unlink(missing_ok=True)
    try:
        folder.rmdir()
    except OSError:  # a file arrived since
        pass


def filter_unlanded(settings: Settings, tenant: Tenant, user_id: str, day: date) -> set[str] | None:
    """Filter the user out of a lake day without landing files (module docstring); the user's event ids removed, or
    None (nothing done) for a day with landing files. The manifest is written first, its counts recomputed from the
    filtered files, then the files: a rerun after a crash finds the user in a file and writes the same again."""
    if _has_landing_files(settings, tenant, day):
        return None
    lake, quarantine = lake_dir(settings, tenant, day) / LAKE_FILE, quarantine_dir(settings, tenant, day) / LAKE_FILE
    tables = {p: tenant_parquet.read_table(p, settings, tenant.tenant_id) for p in (lake, quarantine) if p.exists()}
    ids: set[str] = set()
    kept: dict[Path, pa.Table] = {}
    for path, table in tables.items():
        mine = pc.fill_null(pc.equal(table.column("user_id"), user_id), False)
        if path == quarantine:  # a malformed line has no user_id: its text names the user as a whole token
            named = pc.and_(
                pc.equal(table.column("reason"), MALFORMED_REASON),
                pc.match_substring_regex(table.column("raw_line"), names_pattern(user_id)),
            )
            mine = pc.or_(mine, pc.fill_null(named, False))
        ids |= {i for i in table.filter(mine).column("event_id").to_pylist() if i is not None}
        kept[path] = table.filter(pc.invert(mine))
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
    return ids


def later_days(settings: Settings, tenant: Tenant, days: Iterable[date]) -> set[date]:
    """The lake days within ``DEDUP_WINDOW`` after ``days`` that have landing files (a rebuild reads them): a removed
    or filtered day may have held the earlier copy of one of their events."""
    days = set(days)
    lake = set(settings.stores.lake.days(tenant.region, tenant.tenant_id))
    near = {d + timedelta(days=k) for d in days for k in range(1, DEDUP_WINDOW.days + 1)}
    return {d for d in (near & lake) - days if _has_landing_files(settings, tenant, d)}
