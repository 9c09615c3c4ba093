"""Metrics over verdict counts: pass@k, scaling fits, precision of selection rules, cost."""

from monkeyflow.metrics.passk import default_ks, pass_at_k

__all__ = ["default_ks", "pass_at_k"]
