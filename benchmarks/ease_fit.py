"""EASE's fit: ``np.linalg.inv`` (the code before 2026-12-05's change) against the Cholesky inverse in place
(``ml.models.recsys.linalg.ease_weights``), by catalogue size.

Each (code, catalogue) pair runs in a fresh process, so its peak resident memory is its own (``--parallel 2``: two
such processes at once, as two warehouses' feature builds or two training tasks share the machine's cores): a synthetic binary
user x item matrix (2 users per item, ~40 items a user, Zipf popularity, seed 0), the Gram matrix, EASE's ``B``
with L2 weight 500. Reported: fit seconds (best of ``--repeats``), the process's peak RSS above what it held
before the fit, and, for catalogues up to 4,000 items, the largest difference between the two codes' ``B``.
"cholesky in place" runs LAPACK on every core (``ease_weights``' ``threads``), "cholesky in place, 1 BLAS thread" on
one (the training's default).

    .venv/bin/python benchmarks/ease_fit.py [--items 2000 4000 8000 14000] [--repeats 2] [--parallel 2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import report

L2 = 500.0


def matrix(items: int, seed: int = 0) -> sp.csr_matrix:
    """A binary ``(2 * items, items)`` matrix: each user ~40 distinct items drawn by Zipf popularity."""
    rng = np.random.default_rng(seed)
    users = 2 * items
    pop = 1.0 / (np.arange(items) + 1.0) ** 0.8
    counts = np.clip(rng.poisson(40, users), 1, items)
    rows = np.repeat(np.arange(users), counts)
    cols = rng.choice(items, counts.sum(), p=pop / pop.sum())
    x = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(users, items))
    x.data[:] = 1.0  # (repeated draws of one item: one interaction)
    return x


def with_inv(seen: sp.csr_matrix, l2: float) -> np.ndarray:
    """EASE.fit before the change: an LU inverse beside the Gram matrix."""
    n = seen.shape[1]
    gram = (seen.T @ seen).toarray().astype(np.float64)
    gram[np.diag_indices(n)] += l2
    p = np.linalg.inv(gram)
    b = -p / np.diag(p)
    b[np.diag_indices(n)] = 0.0
    return b.astype(np.float32)


def one(code: str, items: int, repeats: int) -> dict:
    from ml.models.recsys.linalg import ease_weights

    threads = 1 if code.endswith("1 BLAS thread") else os.cpu_count() or 1
    if code.endswith("1 BLAS thread"):
        from threadpoolctl import threadpool_limits

        threadpool_limits(1, "blas")
    if code.startswith("np.linalg.inv"):
        fit = with_inv
    else:  # (ease_weights runs LAPACK on the threads it is given: one unless told)

        def fit(seen: sp.csr_matrix, l2: float) -> np.ndarray:
            return ease_weights(seen, l2, threads)

    x = matrix(items)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        b = fit(x, L2)
        seconds.append(round(time.perf_counter() - started, 2))
        del b
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = {"code": code, "items": items, "seconds": seconds, "best": min(seconds)}
    out["peak_rss_gib_above_start"] = round((peak - before) / 2**20, 2)
    if items <= 4000:
        out["max_abs_diff_b"] = float(np.abs(with_inv(x, L2) - ease_weights(x, L2)).max())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, nargs="+", default=[2000, 4000, 8000, 14000])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--parallel", type=int, default=1, help="processes fitting at once (each reported)")
    parser.add_argument("--codes", nargs="+", default=["np.linalg.inv", "cholesky in place"])
    parser.add_argument("--one", nargs=2, metavar=("CODE", "ITEMS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one[0], int(args.one[1]), args.repeats)))
        return
    rows = []
    for items in args.items:
        for code in args.codes:
            command = [sys.executable, __file__, "--one", code, str(items), "--repeats", str(args.repeats)]
            procs = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(args.parallel)]
            for proc in procs:
                out, _ = proc.communicate()
                if proc.returncode:
                    raise SystemExit(f"{code} at {items} items failed ({proc.returncode})")
                rows.append(json.loads(out) | {"parallel": args.parallel})
                print(rows[-1], flush=True)
    report("ease_fit", l2=L2, rows=rows)


if __name__ == "__main__":
    main()
