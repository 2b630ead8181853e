"""Inter-annotator agreement: Krippendorff's alpha (nominal) and raw pairwise agreement.

Both work on a *count matrix* ``counts[u, c]`` = how many annotators put unit (video) ``u`` in
category ``c``. Missing ratings need no special value: a unit simply has fewer ratings, which is
how videos with a varying number of annotators are handled. Units with fewer than two ratings are
not pairable and are ignored, as in Krippendorff's definition.

Krippendorff's alpha (nominal), coincidence-matrix form. With m_u = sum_c counts[u, c]:

    o[c, k] = sum_u counts[u, c] * (counts[u, k] - [c == k]) / (m_u - 1)     (coincidences)
    n_c     = sum_k o[c, k],   n = sum_c n_c                                 (pairable values)
    alpha   = 1 - (n - 1) * sum_{c != k} o[c, k] / sum_{c != k} n_c * n_k

Alpha is undefined (NaN) when fewer than two pairable values exist or every pairable value falls
in one category (no expected disagreement).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd


def rating_counts(units: Sequence | np.ndarray, values: Sequence | np.ndarray,
                  categories: Sequence | None = None) -> tuple[np.ndarray, list]:
    """Count matrix (units x categories) from parallel lists of unit ids and values, one per rating.

    Returns ``(counts, categories)``; units keep their first-seen order, categories are sorted
    unless given.
    """
    unit_codes, _ = pd.factorize(np.asarray(units), sort=False)
    values = np.asarray(values)
    if categories is None:
        categories = sorted(pd.unique(values).tolist())
    cat_index = pd.Index(list(categories))
    value_codes = cat_index.get_indexer(values)
    if (value_codes < 0).any():
        bad = values[value_codes < 0][0]
        raise ValueError(f"value {bad!r} is not one of the categories {list(categories)}")
    n_units, n_cats = int(unit_codes.max()) + 1 if len(unit_codes) else 0, len(cat_index)
    flat = np.bincount(unit_codes * n_cats + value_codes, minlength=n_units * n_cats)
    return flat.reshape(n_units, n_cats), list(categories)


def coincidence_matrix(counts: np.ndarray) -> np.ndarray:
    """Krippendorff's coincidence matrix o[c, k] over pairable units (two or more ratings)."""
    counts = np.asarray(counts, dtype=np.float64)
    m = counts.sum(axis=1)
    pairable = m >= 2
    counts, m = counts[pairable], m[pairable]
    weighted = counts / (m - 1)[:, None]
    return weighted.T @ counts - np.diag(weighted.sum(axis=0))


def krippendorff_alpha_nominal(counts: np.ndarray) -> float:
    """Krippendorff's alpha for nominal data from a units x categories count matrix (NaN if undefined)."""
    o = coincidence_matrix(counts)
    n_c = o.sum(axis=1)
    n = n_c.sum()
    if n < 2:
        return float("nan")
    observed_disagreement = o.sum() - np.trace(o)
    expected_disagreement = n * n - np.square(n_c).sum()      # sum_{c != k} n_c n_k
    if expected_disagreement <= 0:
        return float("nan")
    return float(1.0 - (n - 1) * observed_disagreement / expected_disagreement)


def pairwise_agreement(counts: np.ndarray) -> float:
    """Raw agreement: share of agreeing pairs among all pairs of ratings of the same unit (NaN if none).

    Pairs are pooled over units, so a unit with more annotators contributes more pairs.
    """
    counts = np.asarray(counts, dtype=np.float64)
    m = counts.sum(axis=1)
    total = (m * (m - 1)).sum()
    if total <= 0:
        return float("nan")
    return float((counts * (counts - 1)).sum() / total)
