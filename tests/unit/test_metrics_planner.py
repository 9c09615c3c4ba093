"""Budget planner: picks the best model and k from power-law fits."""

import numpy as np
import polars as pl
import pytest

from monkeyflow.metrics.planner import affordable_k, plan_budget, plan_budgets
from monkeyflow.metrics.scaling import PowerLawFit


def fit(a, b, k_max=100, spread=0.02, seed=0):
    rng = np.random.default_rng(seed)
    return PowerLawFit(
        a, b, 0.0, 1, k_max, 8, a * rng.normal(1, spread, 400), b * rng.normal(1, spread, 400)
    )


def test_affordable_k():
    assert affordable_k(100, 10) == 10
    assert affordable_k(0.3, 0.1) == 3  # exact multiple survives rounding
    assert affordable_k(100, 10, fixed_cost=15) == 8
    assert affordable_k(5, 10) == 0
    assert affordable_k(100, 1, k_cap=20) == 20
    with pytest.raises(ValueError):
        affordable_k(1, 0)


def test_obviously_best_model_wins():
    fits = {
        "worse": fit(-2.0, -0.2),
        "best": fit(-0.5, -0.4, seed=1),
        "unaffordable": fit(-0.1, -0.5, seed=2),
    }
    plan = plan_budget(fits, {"worse": 2.0, "best": 1.0, "unaffordable": 1000.0}, budget=64)
    assert plan["model"].to_list() == ["best", "worse", "unaffordable"]
    assert plan["rank"].to_list() == [1, 2, 3]
    best = plan.row(0, named=True)
    assert best["k"] == 64 and best["cost"] == 64.0
    assert best["coverage"] == pytest.approx(np.exp(-0.5 * 64**-0.4))
    assert best["lo"] <= best["coverage"] <= best["hi"]
    assert best["p_best"] > 0.99
    assert plan.filter(pl.col("model") == "unaffordable")["k"][0] == 0
    assert plan["p_best"].sum() == pytest.approx(1.0)


def test_cheap_model_overtakes_with_budget():
    # One strong sample (cost 10) beats ten cheap ones at budget 10; at 100 the cheap model's
    # hundred samples win: the paper's point about repeated sampling with smaller models.
    fits = {"strong": fit(-0.5, -0.3, k_max=10), "cheap": fit(-2.0, -0.5, k_max=10, seed=3)}
    plans = plan_budgets(fits, {"strong": 10.0, "cheap": 1.0}, [10, 100])
    winners = plans.filter(pl.col("rank") == 1)
    assert winners["model"].to_list() == ["strong", "cheap"]
    assert winners["extrapolated"].to_list() == [False, True]
