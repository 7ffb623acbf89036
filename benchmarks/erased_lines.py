"""What matching re-sent malformed lines against erased users' tombstones costs (``ml.core.erased_users.erased_lines``).

Ingestion and a history import hash each whole token of a malformed line that has an erased id's length (the
tombstone keeps the length, never the id) and compare it with the tenant's tombstones. This times 100,000 malformed
CSV-like lines of about 80 characters and one line of 50,000 fields, for 1 and 30 tombstones (30 of 3 lengths).
A tenant without tombstones hashes nothing.

    .venv/bin/python benchmarks/erased_lines.py
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import report


def main() -> None:
    os.environ["TENANTFLOW_HOME"] = tempfile.mkdtemp(prefix="tenantflow-erased-lines-")
    from ml.core import control_db, erased_users
    from ml.core.settings import get_settings

    settings = get_settings()
    lines = pd.Series(
        [f"e{i},user-{i:05d},item-{i},click,2026-11-20T09:00:00Z,s1,12.5,news,web,x" for i in range(100_000)]
    )
    wide = pd.Series([",".join(["x"] * 50_000)])
    rows, recorded = [], 0
    for tombstones in (1, 30):
        with control_db.connect(settings) as con:
            for i in range(recorded, tombstones):
                erased_users.record(con, settings, "acme", f"user-{i:0{4 + i % 3}d}")  # ids of 9 to 11 characters
        recorded = tombstones
        started = time.perf_counter()
        named = erased_users.erased_lines(settings, "acme", lines)
        lines_s = time.perf_counter() - started
        started = time.perf_counter()
        erased_users.erased_lines(settings, "acme", wide)
        rows.append(
            {
                "tombstones": tombstones,
                "lines": len(lines),
                "seconds": round(lines_s, 2),
                "us_per_line": round(1e6 * lines_s / len(lines), 1),
                "named": int(named.sum()),
                "wide_line_seconds": round(time.perf_counter() - started, 2),
            }
        )
        print(rows[-1], flush=True)
    report("erased_lines", rows=rows)


if __name__ == "__main__":
    main()
