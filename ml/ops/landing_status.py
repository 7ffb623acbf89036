"""What ``status`` says of a tenant's landing folders that the lake lacks: files still being written, landing days
due that no ingest landed (:func:`landing_warnings`)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from ml.core.settings import Settings
from ml.core.tenants import Tenant
from ml.data.ingest.landing import landing_files
from ml.data.ingest.partitions import ingest_command, waiting_note

# the ingest DAG's daily run lands a landing day just after it ends (UTC midnight): a day is behind an hour later
DAILY_RUN_GRACE = timedelta(hours=1)


def first_day_not_due(now: datetime) -> date:
    """The first landing day the ingest DAG's daily run need not have landed by ``now`` (aware, UTC): today, or
    yesterday within ``DAILY_RUN_GRACE`` of midnight (its run is starting); an earlier day without a lake
    partition is behind."""
    return (now - DAILY_RUN_GRACE).date()


def landing_warnings(settings: Settings, tenant: Tenant, days: list[date], waiting: dict[str, list[str]]) -> list[str]:
    """What the lake lacks of landing now: the files a day's last ingestion left waiting (still being written, or
    complete since, for a run to land), the files being written now on a landing day not in the lake (today's
    too), and the landing days due without a lake partition (:func:`first_day_not_due`: today's folder, where the
    webhook writes, lands with the next day's run)."""
    out, tid, store, settle = [], tenant.tenant_id, settings.stores.landing, settings.landing.settle_seconds
    for day, names in waiting.items():
        folder = store.day_dir(tenant.region, tid, date.fromisoformat(day))
        now = {p.name for p in landing_files(folder, settle)[1]}
        if still := [n for n in names if n in now]:
            out.append(f"{day}: {waiting_note(still)}")
        if done := [n for n in names if n not in now]:
            first = date.fromisoformat(day)
            out.append(
                f"{day}: {len(done)} file{'s' if len(done) > 1 else ''} no longer being written since the day's last "
                f"ingest ({', '.join(done)}): run the ingest DAG (or "
                f"{ingest_command(tid, first, first + timedelta(days=1))})"
            )
    try:
        landing = store.days(tenant.region, tid)
    except ValueError as exc:  # a folder an uploader named: ingestion of this tenant fails on it too
        return [*out, f"a landing folder is named for no day ({exc}): rename or move it"]
    for unlanded in sorted(set(landing) - set(days)):  # (today's folder too: a file the webhook or an uploader writes)
        try:
            still = [p.name for p in landing_files(store.day_dir(tenant.region, tid, unlanded), settle)[1]]
        except OSError as exc:  # (ingestion of the day fails on it too)
            out.append(f"{unlanded}: its landing folder cannot be read ({type(exc).__name__}: {exc})")
            continue
        if still:
            out.append(f"{unlanded}: {waiting_note(still)}")
    if behind := sorted({d for d in landing if d < first_day_not_due(datetime.now(UTC))} - set(days)):
        n = len(behind)
        out.append(
            f"{n} landing day{'s' if n > 1 else ''} not in the lake yet (first {behind[0]}): no ingest ran over "
            f"{'them' if n > 1 else 'it'}, or every file is still being written; run the ingest DAG (or "
            f"{ingest_command(tid, behind[0], behind[-1] + timedelta(days=1))})"
        )
    return out
