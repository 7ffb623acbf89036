"""How much of the machine the DAGs use at once, defined once for every DAG file."""

import os

# Mapped tasks of one DAG running at once: one per core here. Each warehouse build, ingest chunk
# or training chunk is single-threaded or gets its share of the cores (DuckDB threads), so more
# tasks than cores only slow each other down (measured: benchmarks/README.md).
PARALLEL_TASKS = 2


def cores_per_task() -> int:
    """The cores each of ``PARALLEL_TASKS`` tasks may keep busy (at least one): the threads of a
    multi-threaded step such as a global model's LightGBM fit."""
    return max(1, (os.cpu_count() or 1) // PARALLEL_TASKS)
