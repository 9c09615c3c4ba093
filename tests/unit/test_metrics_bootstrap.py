"""Bootstrap intervals of coverage: nominal coverage on synthetic problems, table shape, warnings."""

import numpy as np
import pytest
from scipy.special import betaln

from monkeyflow.metrics.bootstrap import bootstrap_mean_ci, coverage_table


def test_interval_covers_true_coverage_at_nominal_rate():
    # Problems' solve rates p ~ Beta(a, b); the population's coverage at k is
    # E[1 - (1 - p)^k] = 1 - B(a, b + k) / B(a, b).
    a, b, problems, n, ks = 0.3, 2.0, 100, 20, [1, 4, 16]
    truth = 1.0 - np.exp(betaln(a, b + np.array(ks)) - betaln(a, b))
    rng = np.random.default_rng(1234)
    trials = 200
    hits = np.zeros(len(ks))
    for trial in range(trials):
        p = rng.beta(a, b, size=problems)
        c = rng.binomial(n, p)
        table = coverage_table(np.full(problems, n), c, ks, level=0.95, resamples=1000, seed=trial)
        hits += (table["lo"].to_numpy() <= truth) & (truth <= table["hi"].to_numpy())
    rate = hits / trials
    print("bootstrap CI coverage at nominal 95%:", dict(zip(ks, rate, strict=True)))
    assert np.all(rate >= 0.90), rate


def test_table_columns_and_mean():
    table = coverage_table([4, 4, 4], [0, 2, 4], [1, 2], resamples=200, seed=0)
    assert table.columns == ["k", "coverage", "lo", "hi", "problems", "level"]
    assert table["k"].to_list() == [1, 2]
    assert table["coverage"].to_list() == pytest.approx([(0 + 0.5 + 1) / 3, (0 + 5 / 6 + 1) / 3])
    assert np.all(table["lo"].to_numpy() <= table["coverage"].to_numpy())
    assert np.all(table["coverage"].to_numpy() <= table["hi"].to_numpy())


def test_seeded_and_level_widens():
    values = np.random.default_rng(0).random((50, 2))
    first = bootstrap_mean_ci(values, level=0.9, resamples=500, seed=7)
    again = bootstrap_mean_ci(values, level=0.9, resamples=500, seed=7)
    wider = bootstrap_mean_ci(values, level=0.99, resamples=500, seed=7)
    assert all(np.array_equal(x, y) for x, y in zip(first, again, strict=True))
    assert np.all(wider[1] <= first[1]) and np.all(wider[2] >= first[2])


def test_large_k_dropped_with_warning_naming_problems():
    with pytest.warns(UserWarning, match=r"short \(n=2\)"):
        table = coverage_table(
            [8, 2, 8], [1, 1, 0], [1, 2, 4, 8], resamples=50, problem_ids=["a", "short", "c"]
        )
    assert table["k"].to_list() == [1, 2]


def test_rejects_bad_input():
    with pytest.raises(ValueError, match="level"):
        bootstrap_mean_ci(np.ones(3), level=1.5)
    with pytest.raises(ValueError, match="NaN"):
        bootstrap_mean_ci(np.array([1.0, np.nan]))
