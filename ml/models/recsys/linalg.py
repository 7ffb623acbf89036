"""EASE's closed form with a Cholesky inverse computed in place: a third of the time and of the memory of
``np.linalg.inv``.

EASE (Steck 2019, eq. 8) needs ``P = (X^T X + l2 I)^-1`` and ``B = I - P / diag(P)`` with ``diag(B) = 0``. The
Gram matrix plus a positive ridge is symmetric positive definite, so LAPACK's Cholesky factorisation (``dpotrf``,
n^3/3 flops) and the inverse from it (``dpotri``, 2n^3/3) replace ``np.linalg.inv``'s LU solve against an identity
(about 8n^3/3 flops, and an identity and a result beside the input): both overwrite the one ``n x n`` float64 array,
the column scaling of ``B`` too, so the peak is that array and ``B``'s float32 copy. Measured with
``benchmarks/ease_fit.py`` (benchmarks/README.md, *EASE's fit without np.linalg.inv*).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.linalg import lapack

BLOCK = 1024  # rows mirrored at a time (the upper triangle into the lower): no n x n temporary


def ease_weights(seen: sp.spmatrix, l2: float) -> np.ndarray:
    """EASE's item-item weights ``B`` (float32, ``(items, items)``, zero diagonal) for the ``(users, items)`` matrix
    ``seen`` and L2 weight ``l2`` > 0 (module docstring).

    Raises:
        np.linalg.LinAlgError: ``X^T X + l2 I`` is not positive definite (``l2`` <= 0, or not finite).
    """
    # the Gram matrix is symmetric: its row-major array, transposed, is the column-major one LAPACK overwrites
    gram = (seen.T @ seen).astype(np.float64).toarray(order="C").T
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
