"""Power-law fit of log coverage, its bootstrap band, and family alignment."""

import numpy as np
import pytest

from monkeyflow.metrics.scaling import (
    crossing_k,
    extrapolate,
    family_alignment,
    fit_power_law,
    fit_scaling,
    power_law_coverage,
)

KS = np.array([1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 10000])


@pytest.mark.parametrize(("a", "b"), [(-2.0, -0.4), (-0.7, -0.25), (-4.5, -0.6), (-1.2, -0.1)])
def test_fit_recovers_known_exponents(a, b):
    exact = fit_power_law(KS, power_law_coverage(a, b, KS))
    assert exact.a == pytest.approx(a, rel=1e-8) and exact.b == pytest.approx(b, rel=1e-8)
    assert exact.mae < 1e-10
    # 0.5% multiplicative noise on log coverage: still within 1%.
    noise = np.random.default_rng(0).normal(1.0, 0.005, KS.size)
    noisy = fit_power_law(KS, np.exp(a * KS**b * noise))
    print(
        f"a={a}, b={b}: noisy-fit relative error a {abs(noisy.a / a - 1):.2e}, b {abs(noisy.b / b - 1):.2e}"
    )
    assert abs(noisy.a / a - 1) < 0.01 and abs(noisy.b / b - 1) < 0.01


def test_fit_range_and_zero_coverage_points():
    coverage = power_law_coverage(-2.0, -0.4, KS)
    coverage[0] = 0.0  # no logarithm: left out
    fit = fit_power_law(KS, coverage, k_min=1, k_max=1024)
    assert (fit.k_min, fit.k_max, fit.points) == (2, 1024, 10)
    assert fit.a == pytest.approx(-2.0, rel=1e-8)
    with pytest.raises(ValueError, match="at least 2 points"):
        fit_power_law([1, 2], [0.0, 0.0])


def test_fit_scaling_band_brackets_prediction():
    rng = np.random.default_rng(5)
    p = rng.beta(0.3, 2.0, size=150)
    n = np.full(p.size, 1000)
    c = rng.binomial(n, p)
    fit = fit_scaling(
        n, c, [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000], k_max=256, resamples=200, seed=1
    )
    assert fit.k_max == 256 and fit.a_boot.shape == (200,)
    assert fit.a < 0 and fit.b < 0 and fit.mae < 0.02
    table = extrapolate(fit, [16, 256, 1000, 10000])
    assert table["extrapolated"].to_list() == [False, False, True, True]
    assert np.all(table["lo"].to_numpy() <= table["coverage"].to_numpy() + 1e-12)
    assert np.all(table["coverage"].to_numpy() <= table["hi"].to_numpy() + 1e-12)
    assert np.all(np.diff(table["coverage"].to_numpy()) > 0)


def test_crossing_k_interpolates_in_log_k():
    assert crossing_k([1, 4], [0.2, 0.6], 0.4) == pytest.approx(2.0)
    assert crossing_k([1, 4], [0.2, 0.6], 0.2) == 1.0
    assert np.isnan(crossing_k([1, 4], [0.2, 0.6], 0.7))


def test_family_alignment_recovers_shift():
    ks = np.array([1, 2, 4, 8, 16, 32, 64, 128])
    base = power_law_coverage(-1.0, -0.3, ks)
    # The weaker model needs 4x the samples of the strong one for every coverage.
    weak = power_law_coverage(-1.0, -0.3, ks / 4.0)
    result = family_alignment({"strong": (ks, base), "weak": (ks, weak)})
    rows = {r["model"]: r for r in result.iter_rows(named=True)}
    assert rows["strong"]["anchor"] == pytest.approx(base[0])
    assert rows["strong"]["k_anchor"] == pytest.approx(1.0)
    assert rows["weak"]["k_anchor"] == pytest.approx(4.0, rel=0.02)
    assert rows["weak"]["log_k_shift"] == pytest.approx(-np.log(4.0), abs=0.02)
    with pytest.warns(UserWarning, match="cannot be aligned"):
        family_alignment({"strong": (ks, base), "flat": (ks, np.full(ks.size, 0.01))}, anchor=0.5)
