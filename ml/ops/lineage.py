"""OpenLineage out of the DAGs: the Airflow provider's events, with the datasets each task touched.

The ``apache-airflow-providers-openlineage`` listener emits a START and a COMPLETE (or FAIL)
event for every task and DAG run. Our tasks are Python (TaskFlow) tasks, which the provider
cannot see into, so :class:`TenantflowExtractor` (registered for them through
``[openlineage] extractors``) adds the datasets the platform's code recorded while the task ran
(:mod:`ml.core.lineage`): each with a ``tags`` facet naming its tenant(s), region and layer, a
``version`` facet where it has a content id, and an input/output ``subset`` facet for the
partitions (days) read or written.

By default (:func:`ml.ops.airflow.airflow_env`) events go to a JSON-lines file under the home,
:attr:`ml.core.layout.Layout.lineage_events`; any OpenLineage backend (Marquez, DataHub, …) is
a matter of setting ``AIRFLOW__OPENLINEAGE__TRANSPORT`` (it wins over the default), e.g.
``{"type": "http", "url": "http://marquez:5000"}``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from airflow.providers.openlineage.extractors.base import OperatorLineage
from airflow.providers.openlineage.extractors.python import PythonExtractor
from openlineage.client.event_v2 import InputDataset, OutputDataset
from openlineage.client.facet_v2 import (
    InputDatasetFacet,
    OutputDatasetFacet,
    base_subset_dataset,
    dataset_version_dataset,
    tags_dataset,
)

from ml.core import lineage

_SOURCE = "TENANTFLOW"


def _facets(d: lineage.LineageDataset) -> dict[str, Any]:
    tags = [tags_dataset.TagsDatasetFacetFields("tenant", t, _SOURCE) for t in d.tenants]
    tags += [
        tags_dataset.TagsDatasetFacetFields("region", d.region, _SOURCE),
        tags_dataset.TagsDatasetFacetFields("layer", d.layer, _SOURCE),
    ]
    facets: dict[str, Any] = {"tags": tags_dataset.TagsDatasetFacet(tags=tags)}
    if d.version:
        facets["version"] = dataset_version_dataset.DatasetVersionDatasetFacet(datasetVersion=d.version)
    return facets


def _partitions(d: lineage.LineageDataset) -> base_subset_dataset.PartitionSubsetCondition:
    return base_subset_dataset.PartitionSubsetCondition(
        partitions=[
            base_subset_dataset.Partition(dimensions=dict([p.split("=", 1)]), identifier=p) for p in d.partitions
        ]
    )


def to_input(d: lineage.LineageDataset) -> InputDataset:
    """An OpenLineage input dataset of a recorded one."""
    input_facets: dict[str, InputDatasetFacet] = {}
    if d.partitions:
        input_facets["subset"] = base_subset_dataset.InputSubsetInputDatasetFacet(_partitions(d))
    return InputDataset(d.namespace, d.name, facets=_facets(d), inputFacets=input_facets)


def to_output(d: lineage.LineageDataset) -> OutputDataset:
    """An OpenLineage output dataset of a recorded one."""
    output_facets: dict[str, OutputDatasetFacet] = {}
    if d.partitions:
        output_facets["subset"] = base_subset_dataset.OutputSubsetOutputDatasetFacet(_partitions(d))
    return OutputDataset(d.namespace, d.name, facets=_facets(d), outputFacets=output_facets)


class TenantflowExtractor(PythonExtractor):
    """The provider's Python extractor (the task's source code) plus the datasets the task recorded.

    Runs in the task's process (or the provider's fork of it) when the task ends, so it sees the
    task's record (:func:`ml.core.lineage.drain`).
    """

    @classmethod
    def get_operator_classnames(cls) -> list[str]:
        return ["PythonOperator", "_PythonDecoratedOperator"]

    def extract_on_complete(self, task_instance: Any) -> OperatorLineage | None:
        found = super().extract_on_complete(task_instance) or OperatorLineage()
        inputs, outputs = lineage.drain()
        return OperatorLineage(
            inputs=[to_input(d) for d in inputs],
            outputs=[to_output(d) for d in outputs],
            run_facets=found.run_facets,
            job_facets=found.job_facets,
        )


def events(path: Path) -> Iterator[dict[str, Any]]:
    """The run events of a file transport's JSON-lines file, oldest first (none if it does not exist)."""
    if not path.exists():
        return
    with path.open() as f:
        for line in f:
            if line.strip():
                yield json.loads(line)
