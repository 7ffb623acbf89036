"""Assets, defined once: imported where they are produced and where they are consumed."""

from airflow.sdk import Asset

# These assets are signals between DAGs (their events' extra names the tenants), not data: their
# URIs use a scheme of our own, so the OpenLineage provider leaves them out of its events, whose
# datasets are the stores each task read and wrote, each tagged with its tenants (ml/ops/lineage.py).

# Emitted by `ingest` after a run landed new lake partitions; `features` is scheduled on it.
LAKE_EVENTS = Asset(name="lake_events", uri="tenantflow://lake/events", group="tenantflow")
# Emitted by `features` after the marts of at least one warehouse were rebuilt and checked.
FEATURE_MARTS = Asset(name="feature_marts", uri="tenantflow://warehouse/marts", group="tenantflow")
# Emitted by `train` after a run trained and gated models; `score` follows it.
TRAINED_MODELS = Asset(name="trained_models", uri="tenantflow://mlflow/registry", group="tenantflow")
# Emitted by `score` after champions scored their tenants' users into the warehouses.
PREDICTIONS = Asset(name="predictions", uri="tenantflow://warehouse/predictions", group="tenantflow")
