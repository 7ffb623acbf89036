"""How much of the machine the DAGs use at once, defined once for every DAG file."""

# Mapped tasks of one DAG running at once: one per core here. Each warehouse build, ingest chunk
# or training chunk is single-threaded or gets its share of the cores (DuckDB threads), so more
# tasks than cores only slow each other down (measured: benchmarks/README.md).
PARALLEL_TASKS = 2
