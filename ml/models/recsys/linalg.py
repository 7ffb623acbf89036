"""EASE's closed form with a Cholesky inverse computed in place, on one BLAS thread by default: faster than
``np.linalg.inv`` and in less memory.

EASE (Steck 2019, eq. 8) needs ``P = (X^T X + l2 I)^-1`` and ``B = I - P / diag(P)`` with ``diag(B) = 0``. The
Gram matrix plus a positive ridge is symmetric positive definite, so LAPACK's Cholesky factorisation (``dpotrf``,
n^3/3 flops) and the inverse from it (``dpotri``, 2n^3/3) replace ``np.linalg.inv``'s LU solve against an identity
(about 8n^3/3 flops, and an identity and a result beside the input): both overwrite the one ``n x n`` float64 array,
the column scaling of ``B`` too: that array and ``B``'s float32 copy, 12 bytes an item pair. Building the Gram matrix
(:func:`_gram`) peaks higher where it is dense (scipy's sparse product): tracemalloc's peak over the whole fit at
2,000 items was 12.3 bytes an item pair with 2% of the pairs co-occurring, 16.7 with 79%, 20.0 with all, against
32 for ``inv``.

One BLAS thread by default (the training's ``TENANTFLOW_TRAIN_THREADS``, as LightGBM's): OpenBLAS's Cholesky
routines stall when another process holds the cores (two warehouses' feature builds, two training tasks): at 2,000
items two threads took 4.1-10.4 s beside a features build against 0.15 s idle, and at 4,000 items, two fits at once,
3.4-4.3 s on two threads each against 1.8 s on one (``inv``: 4.7-6.1 s). Idle, one thread is half as fast as two
(61.5 s against 30.8 s at 14,000 items; ``inv`` 85.7 s). Measured with ``benchmarks/ease_fit.py``
(benchmarks/README.md, *EASE's fit without np.linalg.inv*).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.linalg import lapack
from threadpoolctl import threadpool_limits

BLOCK = 1024  # rows mirrored at a time (the upper triangle into the lower): no n x n temporary


def ease_weights(seen: sp.spmatrix, l2: float, threads: int = 1) -> np.ndarray:
    """EASE's item-item weights ``B`` (float32, ``(items, items)``, zero diagonal) for the ``(users, items)`` matrix
    ``seen`` and L2 weight ``l2`` > 0 (module docstring), LAPACK on ``threads`` BLAS threads.

    Raises:
        ValueError: ``l2`` is not a positive finite number.
        np.linalg.LinAlgError: ``X^T X + l2 I`` is not numerically positive definite.
    """
    if not (np.isfinite(l2) and l2 > 0):
        raise ValueError(f"EASE's L2 weight must be a positive number, got {l2!r}")
    n = seen.shape[1]
    if n == 0:  # (LAPACK refuses an empty matrix)
        return np.zeros((0, 0), dtype=np.float32)
    with threadpool_limits(max(1, int(threads)), "blas"):
        return _weights(_gram(seen), l2)


def _gram(seen: sp.spmatrix) -> np.ndarray:
    """``X^T X`` as a column-major float64 array, built through float32 (exact for a 0/1 ``X`` below 2^24 users;
    the sparse product, its dense copy, then the float64 one: no two float64 copies at once)."""
    x = seen.astype(np.float32)
    product = x.T @ x
    del x
    dense = product.toarray(order="C")
    del product
    # symmetric: the row-major float64 array, transposed, is the column-major one LAPACK overwrites
    return dense.astype(np.float64).T


def _weights(gram: np.ndarray, l2: float) -> np.ndarray:
    """EASE's ``B`` from the column-major Gram matrix, overwritten in place."""
    gram[np.diag_indices_from(gram)] += l2
    factor, info = lapack.dpotrf(gram, lower=False, clean=False, overwrite_a=True)
    if info != 0:
        raise np.linalg.LinAlgError(f"EASE: X^T X + {l2} I is not positive definite (LAPACK dpotrf info={info})")
    p, info = lapack.dpotri(factor, lower=False, overwrite_c=True)
    if info != 0:
        raise np.linalg.LinAlgError(f"EASE: X^T X + {l2} I is singular (LAPACK dpotri info={info})")
    _mirror_upper(p)
    p = p.T  # P is symmetric: the row-major view of the same array (B row-major, copied to float32 in order)
    diag = p.diagonal().copy()
    p /= -diag  # column j divided by -P_jj
    np.fill_diagonal(p, 0.0)
    return p.astype(np.float32)  # (row-major: a sparse history times B would copy a column-major B each call)


def _mirror_upper(a: np.ndarray) -> None:
    """Copy the upper triangle of the square ``a`` into its lower one, in place, ``BLOCK`` rows at a time."""
    n = a.shape[0]
    for start in range(0, n, BLOCK):
        stop = min(start + BLOCK, n)
        a[start:stop, :start] = a[:start, start:stop].T
        block = a[start:stop, start:stop]
        lower = np.tril_indices(stop - start, -1)
        block[lower] = block.T[lower]
