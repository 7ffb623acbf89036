"""Every check for one tenant: data drift, and per model kind feature drift, prediction drift and decay.

* ``data_drift``: the tenant's raw behaviour (the mix of event types, the topic of the items, dwell time, device);
* ``feature_drift`` per kind: the model's declared input columns;
* ``prediction_drift`` per kind: the champion's score distribution on both windows;
* ``performance`` per kind: the kind's live metric against the champion's holdout
  (:attr:`ml.models.kinds.base.LiveMonitoring.decay`).

A check that cannot run says why (``insufficient_data``, ``no_reference``, ``error``) and the others
still run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import duckdb
import pandas as pd

from ml.core.settings import Settings
from ml.data.snapshots import Snapshot
from ml.models.champion import Champion
from ml.models.kinds import get_kind
from ml.models.kinds.base import ModelKind
from ml.monitoring.drift import chance_thresholds, column_rows, drift_report, sample
from ml.monitoring.policy import MonitorPolicy
from ml.monitoring.results import CheckResult
from ml.monitoring.windows import EVENT_COLUMNS, TenantWindows


@dataclass(frozen=True)
class MonitoredChampion:
    """A tenant's champion of one kind, with what the checks compare it against."""

    champion: Champion
    snapshot: Snapshot | None  # its training snapshot (or the tenant's latest, for a global-served tenant)
    holdout_metrics: dict[str, float]  # its run's metrics


def check_tenant(
    w: TenantWindows,
    champions: dict[str, MonitoredChampion],
    policy: MonitorPolicy,
    settings: Settings,
    today: date,
    kinds: tuple[str, ...] = (),
) -> list[CheckResult]:
    """Every check for one tenant (``kinds``: the kinds it uses; those without a champion say so)."""
    tid = w.tenant_id
    if w.serving_cutoff is None:
        return [
            CheckResult(
                tid,
                "data_drift",
                "events",
                "rows",
                0,
                policy.min_rows,
                None,
                "insufficient_data",
                "no features built for this tenant yet",
            )
        ]
    cur_start = w.serving_cutoff - timedelta(days=policy.current_days)
    ref_start = w.reference_end - timedelta(days=policy.reference_days) if w.reference_end else None
    windows: dict[str, Any] = {
        "reference_start": ref_start,
        "reference_end": w.reference_end,
        "current_start": cur_start,
        "current_end": w.serving_cutoff,
    }
    report_dir = settings.stores.monitoring_reports.day_dir(w.region, tid, today)
    out = _data_drift(w, policy, windows, report_dir / "events.html")
    for kind_name in sorted(set(kinds) - set(champions)):
        out.append(
            CheckResult(
                tid,
                "feature_drift",
                kind_name,
                "share_drifted_columns",
                None,
                None,
                None,
                "no_reference",
                f"no {kind_name} champion yet: nothing to monitor",
                **windows,
            )
        )
    for kind_name, champ in champions.items():
        kind = get_kind(kind_name)
        kbase = {"tenant_id": tid, "kind": kind_name, "model_version": champ.champion.number, **windows}
        out += _model_drift(kind, champ, w, policy, kbase, report_dir / f"{kind_name}.html")
        out.append(_performance(kind, champ, w, policy, kbase))
    return out


def _data_drift(w: TenantWindows, policy: MonitorPolicy, windows: dict[str, Any], path: Any) -> list[CheckResult]:
    base = {"tenant_id": w.tenant_id, "check": "data_drift", "kind": "events", **windows}
    assert w.serving_cutoff is not None
    if w.reference_end is None:
        return [
            CheckResult(
                **base,
                metric="share_drifted_columns",
                value=None,
                threshold=None,
                drifted=None,
                status="no_reference",
                detail="no champion snapshot to compare with",
            )
        ]
    if w.reference_end >= w.serving_cutoff:
        return [
            CheckResult(
                **base,
                metric="share_drifted_columns",
                value=None,
                threshold=None,
                drifted=False,
                status="insufficient_data",
                detail="no new data since the champion was trained",
            )
        ]
    rows_ref, rows_cur = len(w.events_reference), len(w.events_current)
    if min(rows_ref, rows_cur) < policy.min_rows:
        return [
            CheckResult(
                **base,
                metric="rows",
                value=float(min(rows_ref, rows_cur)),
                threshold=policy.min_rows,
                drifted=None,
                status="insufficient_data",
                detail=f"{rows_ref} reference and {rows_cur} current users' events (< {policy.min_rows})",
            )
        ]
    dist, problems = drift_report(
        w.events_reference,
        w.events_current,
        EVENT_COLUMNS["numerical"],
        EVENT_COLUMNS["categorical"],
        policy.data_threshold,
        path,
    )
    seen = {c: set(w.events_reference[c].dropna().astype(str)) for c in EVENT_COLUMNS["categorical"]}
    new = {c: sorted(set(w.events_current[c].dropna().astype(str)) - seen[c]) for c in EVENT_COLUMNS["categorical"]}
    judged_columns = (
        [c for c in EVENT_COLUMNS["numerical"] if c in dist],
        [c for c in EVENT_COLUMNS["categorical"] if c in dist],
    )
    chance = chance_thresholds(
        w.events_reference,
        w.events_current,
        *judged_columns,
        policy.data_threshold,
        policy.drift_alpha,
        policy.drift_permutations,
    )
    rows = column_rows({**base, "report_path": str(path)}, dist, problems, policy.data_threshold, new, chance)
    judged = [r for r in rows if r.status == "ok"]
    drifted = [r.metric.removeprefix("column:") for r in judged if r.drifted]
    rows.append(
        CheckResult(
            **base,
            metric="drifted_columns",
            value=float(len(drifted)),
            threshold=1.0,
            drifted=bool(drifted) if judged else None,
            status="ok" if judged else "error",
            detail=", ".join(drifted) or ("" if judged else "no column could be compared"),
            report_path=str(path),
        )
    )
    return rows


def _model_drift(
    kind: ModelKind, champ: MonitoredChampion, w: TenantWindows, policy: MonitorPolicy, kbase: dict[str, Any], path: Any
) -> list[CheckResult]:
    """Feature and prediction drift of one kind, or why they cannot be judged."""
    snap = champ.snapshot
    ref_path = snap.reference(kind.serving_mart) if snap is not None else None
    current = w.features_current.get(kind.serving_mart, pd.DataFrame())
    if snap is None or ref_path is None or not ref_path.exists():
        return [
            CheckResult(
                **kbase,
                check="feature_drift",
                metric="share_drifted_columns",
                value=None,
                threshold=policy.drift_share,
                drifted=None,
                status="no_reference",
                detail="the champion's snapshot has no reference rows (trained before monitoring existed);"
                " the next training adds them",
            )
        ]
    # the policy's warm-up, or the tenant's long feature window where it is longer (int_tenant_windows)
    warmup = max(policy.warmup_days, int(snap.windows.get("feature_window_days") or 0))
    if snap.history_days < warmup:
        why = (
            f"the reference was taken after {snap.history_days} days of history, before the {warmup}-day "
            f"feature windows filled: their growth is not drift; judged once a champion is trained on "
            f"{warmup}+ days"
        )
        return [
            CheckResult(
                **kbase,
                check=check,
                metric="reference_history_days",
                value=float(snap.history_days),
                threshold=float(warmup),
                drifted=None,
                status="insufficient_data",
                detail=why,
            )
            for check in ("feature_drift", "prediction_drift")
        ]
    reference = sample(_population(kind, snap.read(ref_path)), policy.sample_rows)
    for label, frame in (("current", current), ("reference", reference)):
        if len(frame) < policy.min_rows:
            return [
                CheckResult(
                    **kbase,
                    check="feature_drift",
                    metric="rows",
                    value=float(len(frame)),
                    threshold=policy.min_rows,
                    drifted=None,
                    status="insufficient_data",
                    detail=f"{len(frame)} {label} rows (< {policy.min_rows})",
                )
            ]
    # a classic family champion reads no features: the kind's declared features still describe the data
    declared = snap.features.get(kind.mart, [])
    features = champ.champion.features or [f["name"] for f in declared]
    growing = {f["name"] for f in declared if f.get("drift") is False}  # grow with the history: not drift
    return _compare_features(kind, champ.champion, features, reference, current, policy, kbase, path, growing)


def entity_columns(columns: list[str], present: set[str]) -> dict[str | None, list[str]]:
    """Columns by the entity whose value they hold: ``item_*`` by ``item_id``, ``user_*`` (but
    ``user_item_*``) by ``user_id``, the rest by row (``None``). A (user, item) mart repeats an
    item's value on every user's row: 300 rows of 50 items are 50 draws, not 300, and a drift test
    (and its permutation null) that counts rows finds drift in noise. Judged over distinct entities,
    its sample is what it is. A key absent from the frame judges the column by row."""
    out: dict[str | None, list[str]] = {}
    for c in columns:
        key = "item_id" if c.startswith("item_") else "user_id" if c.startswith("user_") else None
        key = None if c.startswith("user_item_") or key not in present else key
        out.setdefault(key, []).append(c)
    return out


def _population(kind: ModelKind, frame: pd.DataFrame) -> pd.DataFrame:
    """The reference rows of the kind's drift population (``ModelKind.drift_population``)."""
    if not kind.drift_population or frame.empty:
        return frame
    return duckdb.sql(f"select * from frame where {kind.drift_population}").df()


def _compare_features(
    kind: ModelKind,
    champ: Champion,
    features: list[str],
    reference: pd.DataFrame,
    current: pd.DataFrame,
    policy: MonitorPolicy,
    kbase: dict[str, Any],
    path: Any,
    growing: set[str] | None = None,
) -> list[CheckResult]:
    """Drift of the model's ``features`` (but the ``growing`` ones) and of its scores; each column
    over the entities its value belongs to (:func:`entity_columns`)."""
    compared = [f for f in features if f not in (growing or set())]
    scored = champ.booster is not None  # a classic family scores histories, not these rows
    fbase = {**kbase, "check": "feature_drift", "report_path": str(path)}
    rows: list[CheckResult] = []
    pred, pred_problem = None, None
    groups = entity_columns(compared, set(reference.columns) & set(current.columns))
    if scored:
        groups.setdefault(None, [])  # the scores are judged by row
    for key, columns in groups.items():
        ref = (reference.drop_duplicates(key) if key else reference)[columns].copy()
        cur = (current.drop_duplicates(key) if key else current)[columns].copy()
        few = min(len(ref), len(cur))
        if key and few < policy.min_rows:
            why = f"{few} distinct {key[:-3]}s in a window (< {policy.min_rows}): each repeats its value on its rows"
            rows += [CheckResult(**fbase, metric=f"column:{c}", value=float(few), threshold=policy.min_rows,
                                 drifted=None, status="insufficient_data", detail=why) for c in columns]  # fmt: skip
            continue
        if scored and key is None:
            ref["prediction"] = champ.booster.predict(kind.matrix(reference, features), num_threads=1)
            cur["prediction"] = champ.booster.predict(kind.matrix(current, features), num_threads=1)
        report = path if key is None or path is None else path.with_name(f"{path.stem}.{key[:-3]}s{path.suffix}")
        dist, problems = drift_report(ref, cur, list(ref.columns), [], policy.column_threshold, report)
        if key is None:
            pred, pred_problem = dist.pop("prediction", None), problems.pop("prediction", None)
        chance = chance_thresholds(
            ref, cur, list(dist), [], policy.column_threshold, policy.drift_alpha, policy.drift_permutations
        )
        base = fbase if key is None else {**fbase, "report_path": str(report)}
        rows += column_rows(base, dist, problems, policy.column_threshold, thresholds=chance)
    judged = [r for r in rows if r.status == "ok"]
    share = sum(bool(r.drifted) for r in judged) / len(judged) if judged else None
    rows.append(
        CheckResult(
            **fbase,
            metric="share_drifted_columns",
            value=share,
            threshold=policy.drift_share,
            drifted=(share >= policy.drift_share) if share is not None else None,
            status="ok" if share is not None else "error",
            detail=", ".join(r.metric.removeprefix("column:") for r in judged if r.drifted),
        )
    )
    pbase = {**kbase, "check": "prediction_drift", "report_path": str(path), "metric": "score"}
    pbase["threshold"] = policy.prediction_threshold
    if not scored:
        why = f"a {champ.family} champion scores users' histories, not these rows: no score distribution to compare"
        rows.append(CheckResult(**pbase, value=None, drifted=None, status="no_reference", detail=why))
    elif pred is None or math.isnan(pred):
        why = pred_problem or "Evidently returned NaN for the score distance"
        rows.append(CheckResult(**pbase, value=None, drifted=None, status="error", detail=why))
    else:
        rows.append(CheckResult(**pbase, value=pred, drifted=pred > policy.prediction_threshold, status="ok"))
    return rows


def _performance(
    kind: ModelKind, champ: MonitoredChampion, w: TenantWindows, policy: MonitorPolicy, kbase: dict[str, Any]
) -> CheckResult:
    """The kind's decay check on the champion's own batches, judged over the label window its
    holdout was (its ``label_days`` tag, else its snapshot's window for the kind): like is
    compared with like."""
    version = champ.champion.number
    window = champ.champion.label_days or kind.label_days(champ.snapshot.windows if champ.snapshot else {})
    batches = [
        m for m in w.live if m["kind"] == kind.name and m["model_version"] == version and m["horizon_days"] == window
    ]
    v = kind.live.decay(batches, champ.holdout_metrics, policy, version)
    return CheckResult(
        **kbase,
        check="performance",
        metric=v.metric,
        value=v.value,
        threshold=v.threshold,
        drifted=v.drifted,
        status=v.status,
        detail=v.detail,
    )
