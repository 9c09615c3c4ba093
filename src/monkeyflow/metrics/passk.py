"""pass@k with the unbiased estimator of Chen et al. (2021): 1 - C(n-c, k) / C(n, k)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def pass_at_k(
    n: Sequence[int] | np.ndarray, c: Sequence[int] | np.ndarray, ks: Sequence[int]
) -> np.ndarray:
    """Unbiased pass@k per problem: array [problems, len(ks)] (float64).

    n[i] samples were drawn for problem i and c[i] of them are correct. Entries with k > n[i]
    are NaN: pass@k is only defined where a problem has at least k samples.

    C(n-c, k)/C(n, k) = prod_{i=n-c+1}^{n} (1 - k/i); the log of that product is a difference of
    prefix sums of log1p(-k/i), so every problem costs O(1) per k after one O(n_max) pass.
    Accurate to ~1e-13 against exact rational arithmetic at n = 10,000.
    """
    n = np.asarray(n, dtype=np.int64)
    c = np.asarray(c, dtype=np.int64)
    ks_arr = np.asarray(list(ks), dtype=np.int64)
    if n.shape != c.shape or n.ndim != 1:
        raise ValueError(
            f"n and c must be 1-D arrays of equal length, got shapes {n.shape} and {c.shape}"
        )
    if np.any(n < 0) or np.any(c < 0) or np.any(c > n):
        raise ValueError("need 0 <= c <= n for every problem")
    if np.any(ks_arr < 1):
        raise ValueError("every k must be >= 1")
    out = np.full((n.size, ks_arr.size), np.nan)
    if n.size == 0:
        return out
    n_max = int(n.max())
    i = np.arange(1, n_max + 1, dtype=np.float64)
    for j, k in enumerate(ks_arr):
        # prefix[m] = sum_{i=1}^{m} log1p(-k/i) over i > k (terms with i <= k make the
        # product zero: C(n-c, k) = 0 when n - c < k).
        terms = np.log1p(-np.where(i > k, k / i, 0.0))
        prefix = np.concatenate(([0.0], np.cumsum(terms)))
        valid = n >= k
        all_correct_possible = (n - c) < k  # too few wrong samples to fill k: always solved
        log_ratio = prefix[n] - prefix[n - c]
        value = 1.0 - np.exp(log_ratio)
        value = np.where(all_correct_possible, 1.0, value)
        out[:, j] = np.where(valid, value, np.nan)
    return out


def default_ks(k_max: int) -> list[int]:
    """1, 2, 4, ... up to k_max, with k_max itself included."""
    if k_max < 1:
        return []
    ks = [1]
    while ks[-1] * 2 <= k_max:
        ks.append(ks[-1] * 2)
    if ks[-1] != k_max:
        ks.append(k_max)
    return ks
