"""Equivalence checkers that misbehave, for the MATH verifier's timeout and isolation tests
(passed to `run_backend` as "tests.unit.math_doubles:<name>"; never part of the package)."""

from __future__ import annotations

import signal
import time


def slow(reference: str, answer: str) -> bool:
    """Sleeps `answer` seconds (to test timeouts in a worker process)."""
    time.sleep(float(answer))
    return False


def crash(reference: str, answer: str) -> bool:
    raise RuntimeError("checker crashed (test)")


def hang(reference: str, answer: str) -> bool:
    """Blocks SIGALRM and sleeps: stands for a hang in C code that no signal can interrupt."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    time.sleep(float(answer))
    return False
