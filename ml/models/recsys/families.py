"""The recommender families (see :mod:`ml.models.recsys`) and their file format."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp

from ml.core import atomic, sealed_files
from ml.models.recsys.interactions import Interactions
from ml.models.recsys.linalg import ease_weights

FILES = ("family.json", "arrays.npz")  # a saved model: its description and its arrays (:func:`save`)


class CatalogueTooLarge(ValueError):
    """A family that cannot fit this many items (EASE's ``items x items`` inverse above its ``max_items``)."""


class Recommender(Protocol):
    """A fitted family: scores every item of its catalogue from a user's history.

    ``history(data)`` is the ``(users, items)`` matrix of ``data`` this family reads (counts,
    decayed counts, or seen flags); ``score(history rows)`` gives ``(rows, items)`` scores.
    Scoring depends on the history only, so a model fitted before a test window scores users
    with the history they had then, and the served model scores them with today's.
    """

    name: str
    items: np.ndarray

    def fit(self, data: Interactions) -> Recommender: ...
    def history(self, data: Interactions) -> sp.csr_matrix: ...
    def score(self, history: sp.csr_matrix) -> np.ndarray: ...
    def params(self) -> dict[str, Any]: ...
    def arrays(self) -> dict[str, Any]: ...


class Popularity:
    """Distinct users per item: over all history, or the last ``window_days`` before ``as_of``."""

    def __init__(self, window_days: int | None = None) -> None:
        self.window_days = window_days
        self.name = "popularity" if window_days is None else f"popularity_{window_days}d"
        self.items = np.zeros(0, dtype=str)
        self.item_scores = np.zeros(0, dtype=np.float32)

    def fit(self, data: Interactions) -> Popularity:
        users = data.seen if self.window_days is None else data.users_within(self.window_days)
        self.items = data.items
        self.item_scores = np.asarray(users.sum(axis=0), dtype=np.float32).ravel()
        return self

    def history(self, data: Interactions) -> sp.csr_matrix:
        return data.seen

    def score(self, history: sp.csr_matrix) -> np.ndarray:
        return np.broadcast_to(self.item_scores, (history.shape[0], len(self.item_scores))).copy()

    def params(self) -> dict[str, Any]:
        return {"window_days": self.window_days}

    def arrays(self) -> dict[str, Any]:
        return {"item_scores": self.item_scores}


def _keep_top(similarity: sp.spmatrix, neighbours: int | None) -> sp.csr_matrix:
    """Each row's ``neighbours`` largest entries (all when None; ties to the lower column); no diagonal."""
    s = sp.csr_matrix(similarity, dtype=np.float32)
    s.setdiag(0)
    s.eliminate_zeros()
    if neighbours is None:
        return s
    indptr, data, indices = [0], [np.zeros(0, np.float32)], [np.zeros(0, np.int32)]
    for r in range(s.shape[0]):
        lo, hi = s.indptr[r], s.indptr[r + 1]
        row, cols = s.data[lo:hi], s.indices[lo:hi]
        if len(row) > neighbours:
            top = np.lexsort((cols, -row))[:neighbours]
            row, cols = row[top], cols[top]
        data.append(row)
        indices.append(cols)
        indptr.append(indptr[-1] + len(row))
    return sp.csr_matrix((np.concatenate(data), np.concatenate(indices), indptr), shape=s.shape)


class _ItemItem:
    """Scores = history (users x items) @ item-item similarity (row: the history's item)."""

    name = ""
    items = np.zeros(0, dtype=str)
    similarity = sp.csr_matrix((0, 0), dtype=np.float32)

    def history(self, data: Interactions) -> sp.csr_matrix:
        return data.seen

    def score(self, history: sp.csr_matrix) -> np.ndarray:
        return np.asarray((history @ self.similarity).todense(), dtype=np.float32)

    def arrays(self) -> dict[str, Any]:
        s = self.similarity.tocsr()
        return {"data": s.data, "indices": s.indices, "indptr": s.indptr}

    def _load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        n = len(self.items)
        self.similarity = sp.csr_matrix((arrays["data"], arrays["indices"], arrays["indptr"]), shape=(n, n))


class ItemKNN(_ItemItem):
    """Item-based kNN: cosine between binary item columns, ``neighbours`` kept per item."""

    def __init__(self, neighbours: int = 100) -> None:
        self.neighbours, self.name = neighbours, "item_knn"

    def fit(self, data: Interactions) -> ItemKNN:
        x = data.seen
        norms = np.sqrt(np.asarray(x.sum(axis=0)).ravel())
        inv = sp.diags(np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0))
        self.items, self.similarity = data.items, _keep_top(inv @ (x.T @ x) @ inv, self.neighbours)
        return self

    def params(self) -> dict[str, Any]:
        return {"neighbours": self.neighbours}


class SAR(_ItemItem):
    """SAR: co-occurrence over all history -> Jaccard (or lift) similarity; time-decayed affinity."""

    def __init__(
        self, similarity: str = "jaccard", half_life_days: float | None = 30.0, neighbours: int | None = 200
    ) -> None:
        if similarity not in {"jaccard", "lift", "cooccurrence"}:
            raise ValueError(f"SAR similarity must be jaccard, lift or cooccurrence, not {similarity!r}")
        self.kind, self.half_life_days, self.neighbours, self.name = similarity, half_life_days, neighbours, "sar"

    def fit(self, data: Interactions) -> SAR:
        c = (data.seen.T @ data.seen).tocoo()
        diag = (data.seen.T @ data.seen).diagonal()
        if self.kind == "jaccard":
            values = c.data / (diag[c.row] + diag[c.col] - c.data)
        elif self.kind == "lift":
            values = c.data / (diag[c.row] * diag[c.col])
        else:
            values = c.data
        self.items = data.items
        self.similarity = _keep_top(sp.coo_matrix((values, (c.row, c.col)), shape=c.shape), self.neighbours)
        return self

    def history(self, data: Interactions) -> sp.csr_matrix:
        return data.counts if self.half_life_days is None else data.decayed(self.half_life_days)

    def params(self) -> dict[str, Any]:
        return {"similarity": self.kind, "half_life_days": self.half_life_days, "neighbours": self.neighbours}


class EASE:
    """EASE (Steck 2019) with L2 weight ``l2``; refuses catalogues above ``max_items``; its fit's LAPACK calls on
    ``threads`` BLAS threads (not a setting of the model: :func:`unfitted` carries it over).

    ``columns``: on a larger catalogue, fit on the ``columns`` items with the most users only (ties: the lower
    index; the fit's cost grows with the cube of its items: on one thread 61 s at 14,000 items, 6.0 s at 6,000,
    ``benchmarks/ease_fit.py``); the other items, and every item for a user without history among the fitted ones,
    score ``-inf`` (no opinion). For the history candidates' features (:mod:`ml.models.recsys.candidates`): such a
    model is never saved, explained or served (those refuse it). None: every item.
    """

    def __init__(
        self, l2: float = 500.0, max_items: int = 15_000, threads: int = 1, columns: int | None = None
    ) -> None:
        self.l2, self.max_items, self.name, self.threads, self.columns = l2, max_items, "ease", threads, columns
        self.items, self.b = np.zeros(0, dtype=str), np.zeros((0, 0), dtype=np.float32)
        self.kept: np.ndarray | None = None  # the fitted columns where ``columns`` cut the catalogue, ascending
        self.tuning: Any = None  # how ``l2`` was chosen (ml.models.recsys.tuning.Tuning), where it was

    def check(self, n: int) -> None:
        """Raise :class:`CatalogueTooLarge` for a catalogue of ``n`` items above ``max_items``."""
        if n > self.max_items:
            gib = f"{12 * n * n / 2**30:.1f}-{20 * n * n / 2**30:.1f} GiB"
            raise CatalogueTooLarge(
                f"EASE needs an {n} x {n} inverse ({gib}); above max_items={self.max_items} use ALS"
            )

    def fit(self, data: Interactions) -> EASE:
        seen, self.kept = data.seen, None
        if self.columns is not None and seen.shape[1] > self.columns:  # most users first; ties to the lower index
            users = np.asarray(seen.getnnz(axis=0))
            self.kept = np.sort(np.argsort(-users, kind="stable")[: self.columns])
            seen = seen[:, self.kept]
        self.check(seen.shape[1])
        self.items, self.b = data.items, ease_weights(seen, self.l2, self.threads)
        return self

    def history(self, data: Interactions) -> sp.csr_matrix:
        return data.seen

    def score(self, history: sp.csr_matrix) -> np.ndarray:
        if self.kept is None:
            return np.asarray(history @ self.b, dtype=np.float32)
        out = np.full((history.shape[0], len(self.items)), -np.inf, dtype=np.float32)
        out[:, self.kept] = self.score_fitted(history)
        return out

    def score_fitted(self, history: sp.csr_matrix) -> np.ndarray:
        """``(rows, len(kept))`` float32: the fitted columns' scores (a model fitted with ``columns`` cutting it)."""
        kept = history.tocsr()[:, self.kept]
        out = np.asarray(kept @ self.b, dtype=np.float32)
        out[np.diff(kept.indptr) == 0] = -np.inf  # no history among the fitted items: no opinion (0 would rank by id)
        return out

    def params(self) -> dict[str, Any]:
        return {"l2": self.l2} | ({"columns": self.columns} if self.columns is not None else {})

    def arrays(self) -> dict[str, Any]:
        if self.kept is not None:
            raise ValueError(f"EASE fitted on {len(self.kept)} of {len(self.items)} items is not saved (see EASE)")
        return {"b": self.b}

    def _load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.b = arrays["b"]


class ALS:
    """Implicit ALS (``implicit`` CPU solver), confidence ``alpha * count``.

    Only the item factors are kept: a user's vector is solved from their history whenever they
    are scored (Hu, Koren, Volinsky, eq. 4: ``x_u = (Y^T C_u Y + l2 I)^-1 Y^T C_u p_u``, the
    ``implicit`` package's ``recalculate_user``), so a model scores users by the history they
    have at scoring time, including users it never saw.
    """

    def __init__(
        self, factors: int = 128, l2: float = 100.0, alpha: float = 10.0, iterations: int = 15, threads: int = 1
    ) -> None:
        self.factors, self.l2, self.alpha, self.iterations, self.threads = factors, l2, alpha, iterations, threads
        self.name = "als"
        self.items, self.item_factors = np.zeros(0, dtype=str), np.zeros((0, factors), dtype=np.float32)
        self._solved: tuple[Any, ...] | None = None  # (float64 factors, gram(), the factors and l2 they are of)

    def fit(self, data: Interactions) -> ALS:
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1, "blas"):  # implicit's advice: its own threads, not BLAS's
            model = AlternatingLeastSquares(
                factors=self.factors,
                regularization=self.l2,
                alpha=self.alpha,
                iterations=self.iterations,
                random_state=42,
                num_threads=self.threads,
            )
            model.fit(data.counts, show_progress=False)
        self.items, self.item_factors, self._solved = data.items, np.asarray(model.item_factors, dtype=np.float32), None
        return self

    def history(self, data: Interactions) -> sp.csr_matrix:
        return data.counts

    def gram(self) -> np.ndarray:
        """``Y^T Y + l2 I`` (float64) once per model, not per user (~20 ms a user at 40,000 items: benchmarks/README.md,
        *A 40,000-item catalogue*); again once ``item_factors`` or ``l2`` is set anew (an in-place change: not)."""
        return self._solver()[1]

    def _solver(self) -> tuple[np.ndarray, np.ndarray]:
        if self._solved is None or self._solved[2] is not self.item_factors or self._solved[3] != self.l2:
            y = self.item_factors.astype(np.float64)
            self._solved = (y, y.T @ y + self.l2 * np.eye(y.shape[1]), self.item_factors, self.l2)
        return self._solved[0], self._solved[1]

    def user_vectors(self, history: sp.csr_matrix) -> np.ndarray:
        """Each history row's least-squares user vector (see the class docstring): ``(rows, factors)`` float64."""
        y, base = self._solver()
        out, h = np.zeros((history.shape[0], base.shape[0])), history.tocsr()
        for r in range(h.shape[0]):
            cols = h.indices[h.indptr[r] : h.indptr[r + 1]]
            if not len(cols):
                continue
            conf = self.alpha * h.data[h.indptr[r] : h.indptr[r + 1]]
            yi = y[cols]
            a = base + (yi.T * (conf - 1)) @ yi
            out[r] = np.linalg.solve(a, yi.T @ conf)
        return out

    def score(self, history: sp.csr_matrix) -> np.ndarray:
        """``(rows, items)`` float32: the user vectors times the item factors, in float64 (a user's scores are the
        same whether scored alone, as the API does, or in a batch)."""
        return np.asarray(self.user_vectors(history) @ self._solver()[0].T, dtype=np.float32)

    def params(self) -> dict[str, Any]:
        return {"factors": self.factors, "l2": self.l2, "alpha": self.alpha, "iterations": self.iterations}

    def arrays(self) -> dict[str, Any]:
        return {"item_factors": self.item_factors}

    def _load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.item_factors, self._solved = arrays["item_factors"], None


FAMILIES: dict[str, type] = {"popularity": Popularity, "item_knn": ItemKNN, "sar": SAR, "ease": EASE, "als": ALS}


def unfitted(model: Recommender, threads: int | None = None) -> Recommender:
    """A new, unfitted model of the same family and settings, on ``threads`` (default: the model's own) where the
    family has threads (ALS, EASE)."""
    fresh: Recommender = type(model)(**model.params())
    if hasattr(model, "threads"):
        fresh.threads = threads if threads is not None else model.threads  # type: ignore[attr-defined]
    return fresh


# ------------------------------------------------------------------ files


def popularity(model: Recommender) -> np.ndarray:
    """``(items,)`` distinct users per item in the data the model was fitted on: the fallback for a
    user without known history, the same in batch and online (set by :func:`fitted`)."""
    scores = getattr(model, "popularity", None)
    if scores is None:  # fitted without :func:`fitted`: a popularity family's own scores, else no preference
        scores = getattr(model, "item_scores", np.zeros(len(model.items)))
    return np.asarray(scores, dtype=np.float32)


def fitted(model: Recommender, data: Interactions) -> Recommender:
    """Fit ``model`` on ``data`` and remember the catalogue's popularity with it."""
    model.fit(data)
    model.popularity = np.asarray(data.seen.sum(axis=0), dtype=np.float32).ravel()  # type: ignore[attr-defined]
    return model


def save(model: Recommender, folder: Path, key: bytes | None = None) -> None:
    """Write a fitted model as ``family.json`` + ``arrays.npz`` (plain arrays; nothing executable).

    ``key``: a silo tenant's sealing key (:func:`ml.core.sealed_files.writer_key`): both files are
    then sealed (the catalogue's item ids are in ``arrays.npz``); :func:`load` reads them given the
    tenant's reader.
    """
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"family": type(model).__name__, "name": model.name, "params": model.params(), "items": len(model.items)}
    arrays: dict[str, Any] = {"items": np.asarray(model.items, dtype=str), **model.arrays()}
    if hasattr(model, "popularity"):
        arrays["popularity"] = popularity(model)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    content = {"family.json": json.dumps(meta, indent=1).encode(), "arrays.npz": buffer.getvalue()}
    for file, data in content.items():  # sealed in memory: no plain copy ever reaches the disk
        atomic.write_bytes(folder / file, data if key is None else sealed_files.seal_bytes(data, key))


_SHAPES = {"popularity": lambda n: (n,), "item_scores": lambda n: (n,), "b": lambda n: (n, n)}  # array -> its shape


def load(folder: Path, read: Callable[[Path], bytes] = Path.read_bytes) -> Recommender:
    """Read a model :func:`save` wrote. Arrays are read with ``allow_pickle=False``: a file that
    needs unpickling is refused, never run. ``read`` gives a file's content: a silo tenant's
    sealed files need its reader (``functools.partial(sealed_files.read_bytes, settings=...,
    tenant_id=...)``, which reads plain files as they are).

    Raises:
        ValueError: an unknown family, sealed files without their tenant's reader, or arrays that do
            not match the catalogue's size.
        FileNotFoundError: a file is missing.
        TenantKeyError: (from ``read``) no key for the tenant, or not the one the files were sealed with.
    """
    raw = {file: read(folder / file) for file in FILES}
    if any(content.startswith(sealed_files.MAGIC) for content in raw.values()):
        raise ValueError(f"{folder}: the model's files are sealed; read them with their tenant's key")
    meta = json.loads(raw["family.json"])
    classes = {cls.__name__: cls for cls in FAMILIES.values()}
    cls = classes.get(meta.get("family"))
    if cls is None:
        raise ValueError(f"{folder}: unknown recommender family {meta.get('family')!r} (known: {sorted(classes)})")
    with np.load(io.BytesIO(raw["arrays.npz"]), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    try:
        model = cls(**meta["params"])
        model.items = arrays.pop("items").astype(str)
        n = len(model.items)
        if n != meta["items"] or (n > 1 and not np.all(model.items[1:] > model.items[:-1])):
            raise ValueError(f"{n} items (family.json says {meta['items']}), which must be sorted and distinct")
        for name, shape in _SHAPES.items():
            if name in arrays and arrays[name].shape != shape(n):
                raise ValueError(f"{name} has shape {arrays[name].shape}, the catalogue needs {shape(n)}")
        if "popularity" in arrays:
            model.popularity = arrays.pop("popularity").astype(np.float32)
        if isinstance(model, Popularity):
            model.item_scores = arrays["item_scores"]
        else:
            model._load_arrays(arrays)
        if isinstance(model, _ItemItem):
            model.similarity.check_format(full_check=True)  # indices in range: scipy would read past the arrays
        if isinstance(model, ALS) and model.item_factors.shape != (n, model.factors):
            raise ValueError(f"item_factors has shape {model.item_factors.shape}, needs {(n, model.factors)}")
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{folder}: not a valid {meta['family']} model: {type(exc).__name__}: {exc}") from None
    return model
