"""Assets, defined once: imported where they are produced and where they are consumed."""

from airflow.sdk import Asset

# Emitted by `ingest` after a run landed new lake partitions; `features` is scheduled on it.
LAKE_EVENTS = Asset(name="lake_events", uri="file:///tenantflow/lake/events", group="tenantflow")
# Emitted by `features` after the marts of at least one warehouse were rebuilt and checked.
FEATURE_MARTS = Asset(name="feature_marts", uri="file:///tenantflow/warehouse/marts", group="tenantflow")
# Emitted by `train` after a run trained and gated models; `score` follows it.
TRAINED_MODELS = Asset(name="trained_models", uri="file:///tenantflow/mlflow/registry", group="tenantflow")
# Emitted by `score` after champions scored their tenants' users into the warehouses.
PREDICTIONS = Asset(name="predictions", uri="file:///tenantflow/warehouse/predictions", group="tenantflow")
