"""`make bench`: every benchmark with the arguments quoted in benchmarks/README.md.

Each appends one JSON line to benchmarks/results.jsonl. Slow (about 45 minutes here).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
RUNS = [
    ["generation.py", "--tenants", "10", "--users", "17000", "--days", "14"],
    ["landing_to_features.py", "--tenants", "10", "--users", "17000", "--days", "14"],
    ["landing_to_features.py", "--tenants", "100", "--users", "1400", "--days", "14"],
    ["history_candidates.py", "--users", "17000", "--items", "1500", "--days", "14"],
    ["thread_share.py"],
    ["user_features_engines.py", "--tenants", "10", "--users", "8000", "--days", "30"],
    ["cosmos_overhead.py", "--tenants", "3", "--users", "2000", "--days", "21"],
    ["monitoring.py", "--rows", "10000", "100000", "1000000", "--features", "10", "30", "100", "--no-sample"],
    ["serving.py", "--users", "3000", "--items", "800", "--days", "35"],
    ["user_kinds.py", "--fleet", "demo"],
    ["training.py", "--tenants", "100", "--users", "320", "--items", "150", "--days", "35", "--airflow"],
]

if __name__ == "__main__":
    failed = 0
    for run in RUNS:
        print("$ python benchmarks/" + " ".join(run), flush=True)
        failed += subprocess.run([sys.executable, str(HERE / run[0]), *run[1:]]).returncode != 0
    sys.exit(1 if failed else 0)
