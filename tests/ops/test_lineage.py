"""What a task records becomes OpenLineage datasets with the tenant on each (the Airflow test
checks the events of a real ingest → features → train run)."""

from __future__ import annotations

import json
from pathlib import Path

from ml.core import lineage


def _ingested(home: Path, tenant: str, day: str) -> None:
    lake = home / "lake" / "region=eu" / f"tenant={tenant}"
    landing = home / "landing" / "region=eu" / f"tenant={tenant}"
    lineage.record(
        inputs=[lineage.file_dataset(landing, "landing", "eu", [tenant], partitions=(f"date={day}",))],
        outputs=[lineage.file_dataset(lake, "lake", "eu", [tenant], partitions=(f"date={day}",))],
    )


def test_a_tables_partitions_and_tenants_merge_and_a_drain_empties_the_record(tmp_path):
    lineage.drain()
    _ingested(tmp_path, "acme", "2026-11-02")
    _ingested(tmp_path, "acme", "2026-11-01")
    _ingested(tmp_path, "globex", "2026-11-01")
    mart = [lineage.table_dataset(tmp_path / "pool.duckdb", "user_features", "eu", [t]) for t in ("globex", "acme")]
    lineage.record(outputs=mart)
    inputs, outputs = lineage.drain()
    assert lineage.drain() == ([], [])
    by_name = {d.name: d for d in outputs}
    acme = by_name[str((tmp_path / "lake" / "region=eu" / "tenant=acme").resolve())]
    assert acme.partitions == ("date=2026-11-01", "date=2026-11-02") and acme.tenants == ("acme",)
    (wh,) = [d for d in outputs if d.layer == "warehouse"]
    assert wh.namespace == f"duckdb://{(tmp_path / 'pool.duckdb').resolve()}" and wh.name == "main.user_features"
    assert wh.tenants == ("acme", "globex") and len(inputs) == 2


def test_the_extractor_adds_the_recorded_datasets_with_tenant_tags_subsets_and_versions(tmp_path):
    from airflow.providers.standard.operators.python import PythonOperator
    from openlineage.client.serde import Serde

    from ml.ops.lineage import TenantflowExtractor

    def snapshot() -> None:
        """A task body: its source is the job's sourceCode facet."""

    lineage.drain()
    _ingested(tmp_path, "acme", "2026-11-01")
    model = lineage.model_dataset("http://127.0.0.1:5000", "recommender.acme", "3", "eu", ["acme"])
    lineage.record(outputs=[model])
    extractor = TenantflowExtractor(PythonOperator(task_id="snapshot", python_callable=snapshot))
    found = extractor.extract_on_complete(None)
    assert found is not None and "sourceCode" in found.job_facets
    landing = json.loads(Serde.to_json(found.inputs[0]))
    assert landing["inputFacets"]["subset"]["inputCondition"]["partitions"] == [
        {"dimensions": {"date": "2026-11-01"}, "identifier": "date=2026-11-01"}
    ]
    outputs = [json.loads(Serde.to_json(d)) for d in found.outputs]
    tags = [{(t["key"], t["value"]) for t in d["facets"]["tags"]["tags"]} for d in outputs]
    assert tags == [
        {("tenant", "acme"), ("region", "eu"), ("layer", "lake")},
        {("tenant", "acme"), ("region", "eu"), ("layer", "model")},
    ]
    assert outputs[1]["namespace"] == "mlflow://127.0.0.1:5000" and outputs[1]["name"] == "recommender.acme"
    assert outputs[1]["facets"]["version"]["datasetVersion"] == "3"
    assert extractor.extract_on_complete(None).outputs == []  # drained: the next task starts empty
