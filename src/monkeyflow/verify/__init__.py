"""Verifiers: each turns (problem, completion) into a Check; see `monkeyflow.verify.base`."""

from monkeyflow.verify.base import BATCH_VERIFIERS, VERIFIERS, Check, Verifier

__all__ = ["BATCH_VERIFIERS", "VERIFIERS", "Check", "Verifier", "get_batch_verifier", "get_verifier"]


def get_verifier(name: str) -> Verifier:
    """The verifier registered under `name` (importing the built-in verifier modules first)."""
    from monkeyflow.verify import load_builtin

    load_builtin()
    return VERIFIERS.get(name)


def get_batch_verifier(name: str):
    """The batch verifier registered under `name`, or None if it has only a per-sample one."""
    load_builtin()
    return BATCH_VERIFIERS.get(name) if name in BATCH_VERIFIERS else None


def load_builtin() -> None:
    """Import every built-in verifier module so its registration runs."""
    import importlib

    for module in _BUILTIN:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:  # a module not written yet must not break the others
            if exc.name != module:
                raise


_BUILTIN = ("monkeyflow.verify.math", "monkeyflow.verify.code")
