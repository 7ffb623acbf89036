"""Classic recommenders over a tenant's whole interaction history: the baselines every re-ranker
must beat, and the candidate sources and scores it builds on.

Each family is fitted on :class:`Interactions` (a user x item matrix built from interaction
events) and scores every item for a block of users; :func:`recommend` turns scores into each
user's top k under the tenant's seen-items policy. The families, with their sources:

- :class:`Popularity`: distinct users per item, over all history or the last ``window_days``.
- :class:`ItemKNN`: cosine similarity between item columns of the binary matrix, each item
  keeping its ``neighbours`` nearest (Sarwar et al., "Item-based collaborative filtering
  recommendation algorithms", WWW 2001; the recommenders benchmark's kNN row).
- :class:`SAR`: Microsoft's Smart Adaptive Recommendations (``recommenders.models.sar``):
  item-item co-occurrence over all history, normalised to Jaccard (or lift) similarity, times the
  user's affinity to the items they interacted with, each interaction weighted
  ``2 ** (-age / half_life)``.
- :class:`EASE`: Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019: the
  closed form ``B = I - P / diag(P)``, ``P = (X^T X + l2 I)^-1``, diag(B) = 0. Its cost is an
  ``items x items`` inverse (a Cholesky one in place: :mod:`ml.models.recsys.linalg`): O(items^3) time,
  12-20 * items^2 bytes; refused above ``max_items``.
- :class:`ALS`: implicit-feedback matrix factorisation (Hu, Koren, Volinsky, ICDM 2008), the
  ``implicit`` package's CPU solver, confidence ``alpha * count``.

Scores are ``(users, items)`` float32 arrays, higher is better, one column per item of
``Interactions.items`` (sorted ids, so ties break by item id everywhere).
"""

from ml.models.recsys.families import (
    ALS,
    EASE,
    FAMILIES,
    FILES,
    SAR,
    CatalogueTooLarge,
    ItemKNN,
    Popularity,
    Recommender,
    fitted,
    load,
    popularity,
    save,
    unfitted,
)
from ml.models.recsys.interactions import Interactions, recommend

__all__ = [
    "ALS",
    "EASE",
    "FAMILIES",
    "FILES",
    "SAR",
    "CatalogueTooLarge",
    "Interactions",
    "ItemKNN",
    "Popularity",
    "Recommender",
    "fitted",
    "load",
    "popularity",
    "recommend",
    "save",
    "unfitted",
]
