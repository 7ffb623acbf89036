"""The data plane: synthetic tenants (``generate``), landing to lake (``ingest``), Great Expectations
(``quality``, ``landing_checks``, ``feature_checks``), the dbt feature store (``dbt``, ``features``),
training snapshots (``snapshots``) and published online features (``publish``)."""
