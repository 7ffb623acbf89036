"""The landing store as ingestion sees it: which files are complete, and which days need ingesting."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import stat
import time
from datetime import date
from pathlib import Path

from ml.core import sealed_files
from ml.core.settings import Settings
from ml.core.tenants import Tenant
from ml.data.ingest.partitions import LOOKBACK, read_manifest

log = logging.getLogger(__name__)

# A history import's landing files (ml.data.ingest.history): written by rename, so complete when they appear.
HISTORY_FILE = re.compile(r"history-[0-9a-f]{16}\.parquet")


def history_file_name(source_sha256: str) -> str:
    """The landing name of the history files made from a source file with this SHA-256."""
    return f"history-{source_sha256[:16]}.parquet"


def landing_dir(settings: Settings, tenant: Tenant, day: date) -> Path:
    return settings.stores.landing.day_dir(tenant.region, tenant.tenant_id, day)


def landing_files(folder: Path, settle_seconds: float, now: float | None = None) -> tuple[list[Path], list[Path]]:
    """The files of a landing folder: (complete, still being written). Marker files (``_SUCCESS``) are
    neither; temporary and hidden ones (``*.tmp``, rsync's ``.x.Ab12``) are still being written while they change
    (within ``settle_seconds``), then neither (a writer's leftover).

    Writers that can rename (our generator, the webhook) write ``*.tmp`` and rename; for other
    uploaders a file counts as complete once unchanged for ``settle_seconds``
    (``TENANTFLOW_LANDING_SETTLE_SECONDS``); a history import's files are complete when they
    appear. Every complete file counts, whatever its format (and folders and links, which are
    never read): one Tenantflow cannot read is named in the day's problems by ingestion
    (:func:`ml.data.ingest.readers.read_file`), never passed over.
    """
    if not folder.is_dir():
        return [], []
    now = time.time() if now is None else now
    complete, waiting = [], []
    # First arrived first (a resent copy is the duplicate, not the original); name breaks ties.
    for p, st in sorted(_entries(folder), key=lambda e: (e[1].st_mtime_ns, e[0].name)):
        regular = stat.S_ISREG(st.st_mode)  # (lstat: a link is no regular file)
        if p.name.startswith((".", "_")) or p.suffix == ".tmp":
            if not p.name.startswith("_") and regular and now - st.st_mtime < settle_seconds:
                waiting.append(p)  # a writer's file before its rename: the day's file is on its way
            continue
        if not regular:  # a link or a folder: named by the reader, never read through or into
            complete.append(p)
            continue
        if now - st.st_mtime < settle_seconds and not HISTORY_FILE.fullmatch(p.name):
            log.info("skipping %s: modified %.1fs ago, may still be written", p, now - st.st_mtime)
            waiting.append(p)
        else:
            complete.append(p)
    return complete, waiting


def _entries(folder: Path) -> list[tuple[Path, os.stat_result]]:
    """Each entry of ``folder`` with its ``lstat``, once; an entry gone between the listing and its ``lstat`` (a
    writer's ``*.tmp`` renamed meanwhile: its new name is listed, or is in the next look) is left out."""
    out = []
    for p in folder.iterdir():
        try:
            out.append((p, p.lstat()))
        except FileNotFoundError:
            continue
    return out


def complete_landing_files(folder: Path, settle_seconds: float, now: float | None = None) -> list[Path]:
    """The complete regular files of a landing folder (:func:`landing_files`; no folders or links)."""
    return [p for p in landing_files(folder, settle_seconds, now)[0] if p.is_file() and not p.is_symlink()]


def sha256_file(path: Path) -> str:
    """SHA-256 (hex) of a file's bytes (a source file outside landing; a landing file's content,
    sealed or not, is :func:`ml.core.sealed_files.content_sha256`)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def seal_landing(settings: Settings, tenant: Tenant, days: list[date], now: float | None = None) -> int:
    """Seal a silo tenant's landing files of ``days`` in place (:mod:`ml.core.sealed_files`): each
    one that was ingested as it is (its content's SHA-256 in the day's manifest) and has not
    changed for ``landing.seal_after_seconds`` (``TENANTFLOW_LANDING_SEAL_AFTER_SECONDS``); the
    others wait for a later ingest or features build. Returns the files sealed; nothing for a pool
    tenant. Call it under the tenant's lake lock (ingestion and the features build do)."""
    if tenant.isolation != "silo":
        return 0
    key = sealed_files.writer_key(settings, tenant.tenant_id)
    assert key is not None  # a silo tenant's
    before = (time.time() if now is None else now) - settings.landing.seal_after_seconds
    sealed = 0
    for d in days:
        due = [
            (path, stat)  # the stat taken before the digest: a change after it leaves the file plain
            for path in complete_landing_files(landing_dir(settings, tenant, d), settings.landing.settle_seconds)
            if (stat := path.stat()).st_mtime <= before and not sealed_files.is_sealed(path)
        ]
        manifest = read_manifest(settings, tenant, d) if due else None  # most days: every file sealed
        ingested = {f["sha256"] for f in manifest["files"]} if manifest else set()
        for path, stat in due:
            if sha256_file(path) in ingested:
                sealed += sealed_files.seal_file(path, key, stat)
    if sealed:
        log.info("tenant %s: %d landing files sealed", tenant.tenant_id, sealed)
    return sealed


def landing_dates(settings: Settings, tenant: Tenant) -> list[date]:
    return settings.stores.landing.days(tenant.region, tenant.tenant_id)


def dates_to_ingest(settings: Settings, tenant: Tenant, start: date, end: date) -> list[date]:
    """Landing dates of ``[start, end)``, plus earlier dates (within the lookback) whose
    complete files changed since they were ingested (a file that finished uploading late), or whose
    last ingestion left files waiting (it may have settled unchanged: the run clears the note)."""
    dates = [d for d in landing_dates(settings, tenant) if start <= d < end]
    for d in landing_dates(settings, tenant):
        if start - LOOKBACK <= d < start:
            manifest = read_manifest(settings, tenant, d)
            if manifest and manifest.get("waiting_files"):
                dates.append(d)
                continue
            done = {f["sha256"] for f in manifest["files"]} if manifest else set()
            now = {
                sealed_files.content_sha256(p, settings, tenant.tenant_id)
                for p in complete_landing_files(landing_dir(settings, tenant, d), settings.landing.settle_seconds)
            }
            if now - done:
                dates.append(d)
    return sorted(set(dates))


def landing_bytes(settings: Settings, tenant: Tenant, start: date, end: date) -> int:
    """Size of a tenant's complete landing files of ``[start, end)``: how heavy its ingestion is."""
    settle = settings.landing.settle_seconds
    return sum(
        p.stat().st_size
        for d in landing_dates(settings, tenant)
        if start <= d < end
        for p in complete_landing_files(landing_dir(settings, tenant, d), settle)
    )


def landed_files_gone(settings: Settings, tenant: Tenant, day: date, manifest: dict | None) -> list[str]:
    """The files the day's lake ``manifest`` (:func:`~ml.data.ingest.partitions.read_manifest`, read by the caller)
    says it landed (read, not a duplicate copy) that are no longer in its landing folder (deleted by hand after
    ingestion): a rebuild of the day from landing would lose their rows, so a rebuild that only follows another day's
    change (a later day's deduplication, an erasure) leaves such a day as it is."""
    if manifest is None:
        return []
    folder = landing_dir(settings, tenant, day)
    present = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
    landed = [f["name"] for f in manifest["files"] if f.get("sha256") and f.get("status") == "ingested"]
    return [name for name in landed if name not in present]
