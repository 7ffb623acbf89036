"""What a task read and wrote, per tenant: the datasets its OpenLineage events name.

The platform's code records each dataset where it reads or writes it (a tenant's lake table and
the partitions written, a warehouse's marts, a snapshot, a registered model version);
:class:`ml.ops.lineage.TenantflowExtractor` drains the record when an Airflow task ends and the
OpenLineage provider emits it with the task's COMPLETE (or FAIL) event. Every dataset names the
tenant(s) whose data it holds, and its region.

Recording is process-local and costs a dictionary update; outside Airflow nothing drains it, and
it holds one entry per distinct dataset (a table's partitions are merged into one entry).

Dataset naming follows the OpenLineage naming conventions
(https://openlineage.io/docs/spec/naming): a local file or folder is namespace ``file``, name
its absolute path; a DuckDB table is namespace ``duckdb://<file's absolute path>``, name
``<schema>.<table>``; a registered model is namespace ``mlflow://<tracking server>``, name the
registered model's name, its version in the dataset's version.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

Layer = Literal[
    "landing", "lake", "quarantine", "warehouse", "published", "snapshot", "model", "predictions", "reports"
]


@dataclass(frozen=True)
class LineageDataset:
    """One dataset a task read or wrote.

    ``tenants``: whose data it holds (a pool warehouse's mart: every tenant of the build; a
    global model: the tenants it learned from); ``partitions``: the Hive partitions read or
    written (``date=2026-11-01``), empty for the whole dataset; ``version``: a content id
    (a lake partition's digest, a snapshot id, a model version).
    """

    namespace: str
    name: str
    layer: Layer
    region: str
    tenants: tuple[str, ...]
    version: str | None = None
    partitions: tuple[str, ...] = field(default=())

    @property
    def key(self) -> tuple[str, str]:
        return self.namespace, self.name

    def merged(self, other: LineageDataset) -> LineageDataset:
        """This dataset recorded again: tenants and partitions united, the newest version kept."""
        return replace(
            self,
            tenants=tuple(sorted({*self.tenants, *other.tenants})),
            partitions=tuple(sorted({*self.partitions, *other.partitions})),
            version=other.version or self.version,
        )


def file_dataset(
    path: Path,
    layer: Layer,
    region: str,
    tenants: list[str] | tuple[str, ...],
    version: str | None = None,
    partitions: tuple[str, ...] = (),
) -> LineageDataset:
    """A file or folder under the home (a lake table is its tenant folder; partitions are days)."""
    return LineageDataset("file", str(path.resolve()), layer, region, tuple(sorted(tenants)), version, partitions)


def table_dataset(
    warehouse: Path, table: str, region: str, tenants: list[str] | tuple[str, ...], layer: Layer = "warehouse"
) -> LineageDataset:
    """A table of a DuckDB warehouse file (``main`` schema)."""
    name = table if "." in table else f"main.{table}"
    return LineageDataset(f"duckdb://{warehouse.resolve()}", name, layer, region, tuple(sorted(tenants)))


def model_dataset(
    tracking_uri: str, model_name: str, version: str, region: str, tenants: list[str] | tuple[str, ...]
) -> LineageDataset:
    """A registered model's version in MLflow (``recommender.acme`` version ``3``)."""
    parts = urlsplit(tracking_uri)
    where = parts.netloc or parts.path or tracking_uri
    return LineageDataset(f"mlflow://{where}", model_name, "model", region, tuple(sorted(tenants)), version=version)


class _Record:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inputs: dict[tuple[str, str], LineageDataset] = {}
        self._outputs: dict[tuple[str, str], LineageDataset] = {}

    def add(self, inputs: list[LineageDataset], outputs: list[LineageDataset]) -> None:
        with self._lock:
            for into, items in ((self._inputs, inputs), (self._outputs, outputs)):
                for d in items:
                    into[d.key] = into[d.key].merged(d) if d.key in into else d

    def drain(self) -> tuple[list[LineageDataset], list[LineageDataset]]:
        with self._lock:
            out = list(self._inputs.values()), list(self._outputs.values())
            self._inputs.clear()
            self._outputs.clear()
        return out


_RECORD = _Record()


def record(
    inputs: list[LineageDataset] | tuple[LineageDataset, ...] = (),
    outputs: list[LineageDataset] | tuple[LineageDataset, ...] = (),
) -> None:
    """Note datasets this process read (``inputs``) and wrote (``outputs``)."""
    _RECORD.add(list(inputs), list(outputs))


def drain() -> tuple[list[LineageDataset], list[LineageDataset]]:
    """Everything recorded since the last drain, as (inputs, outputs); the record is emptied."""
    return _RECORD.drain()
