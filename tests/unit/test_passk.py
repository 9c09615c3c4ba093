"""pass@k against brute-force enumeration of k-subsets, and its edge cases."""

from fractions import Fraction
from itertools import combinations
from math import comb

import numpy as np
import pytest

from monkeyflow.metrics.passk import default_ks, pass_at_k


def brute_force(n: int, c: int, k: int) -> Fraction:
    """Share of the k-subsets of n samples (the first c correct) holding a correct one."""
    hits = sum(1 for subset in combinations(range(n), k) if min(subset) < c)
    return Fraction(hits, comb(n, k))


def test_matches_enumeration_over_all_subsets():
    cases = [(n, c) for n in range(1, 9) for c in range(n + 1)]
    n = np.array([n for n, _ in cases])
    c = np.array([c for _, c in cases])
    ks = list(range(1, 9))
    got = pass_at_k(n, c, ks)
    for row, (ni, ci) in enumerate(cases):
        for col, k in enumerate(ks):
            if k > ni:
                assert np.isnan(got[row, col])
            else:
                assert abs(got[row, col] - float(brute_force(ni, ci, k))) <= 1e-12, (ni, ci, k)


def test_edge_cases():
    got = pass_at_k([5, 5, 5], [0, 5, 2], [1, 5, 6])
    assert np.all(got[0, :2] == 0.0)  # c = 0: never solved
    assert np.all(got[1, :2] == 1.0)  # c = n: always solved
    assert got[2, 0] == pytest.approx(0.4, abs=1e-15)
    assert got[2, 1] == 1.0
    assert np.isnan(got[:, 2]).all()  # k > n
    assert pass_at_k([], [], [1]).shape == (0, 1)


@pytest.mark.parametrize(
    ("n", "c", "ks"),
    [
        ([3], [4], [1]),
        ([3], [-1], [1]),
        ([-1], [0], [1]),
        ([3], [1], [0]),
        ([3, 4], [1], [1]),
        ([[3]], [[1]], [1]),
    ],
)
def test_rejects_invalid_input(n, c, ks):
    with pytest.raises(ValueError):
        pass_at_k(n, c, ks)


def test_default_ks():
    assert default_ks(10) == [1, 2, 4, 8, 10]
    assert default_ks(8) == [1, 2, 4, 8]
    assert default_ks(0) == []
