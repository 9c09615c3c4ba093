"""Verifiers: each turns (problem, completion) into a Check; see `monkeyflow.verify.base`."""

from monkeyflow.verify.base import (
    VERIFIERS,
    Check,
    InfrastructureFailure,
    Verifier,
    check_safely,
    get_verifier,
    verifier_class,
)

__all__ = [
    "VERIFIERS",
    "Check",
    "InfrastructureFailure",
    "Verifier",
    "check_safely",
    "get_verifier",
    "verifier_class",
]
