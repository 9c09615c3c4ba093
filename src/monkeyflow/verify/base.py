"""The verifier interface and the registry of verifiers.

A verifier is one class: it declares its `name` (set by the registry), a `version` (bump it when
the same completion may get a different verdict: every verdict cache key and every
`verify_shard` job carries it, so a bump re-verifies without re-sampling) and an
`options_schema` (option -> JSON schema with `default` and `description`; see
`monkeyflow.options`). It is built from its options and judges (problem, completion) pairs.

Register a built-in one in `VERIFIERS` below (lazily, `"module:Class"`), or from another package
through the entry-point group `monkeyflow.verifiers`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from monkeyflow.options import resolve_options, result_options
from monkeyflow.records import Check, Problem
from monkeyflow.registry import PluginError, Registry

__all__ = [
    "VERIFIERS",
    "Check",
    "InfrastructureFailure",
    "Verifier",
    "check_safely",
    "get_verifier",
    "verifier_class",
]


# Options every verifier has; the shared `verify:` section may set them for all (see config).
COMMON_OPTIONS: dict[str, Any] = {
    "max_completion_bytes": {
        "type": "integer",
        "minimum": 1,
        "default": 1_000_000,
        "description": "a completion longer than this (UTF-8 bytes) is `incorrect` without being judged, which bounds the verifier's work per sample",
    },
}


class InfrastructureFailure(RuntimeError):
    """The verifier's own infrastructure failed and stays failed (e.g. a fresh sandbox fails a
    known-good probe program): no verdict can be trusted, so the job must fail loudly instead of
    writing a shard of `error` verdicts. `check_safely` and `verify_samples` let it through."""


class Verifier:
    """Judges completions of one kind of problem.

    Subclasses implement `check` (one completion) and may override `check_many` (many at once:
    a worker pool, a sandbox per core, a batch to a server) and `close`. Neither may raise for a
    bad completion: anything a sample can cause is a verdict. `error` is only for the
    verifier's own infrastructure (a missing toolchain, a crashed server).
    """

    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    options_schema: ClassVar[dict[str, Any]] = {}
    # The container image (a key of containers/images.lock.yaml) verify_shard runs in.
    container: ClassVar[str] = "sandbox"

    def __init__(self, **options: Any) -> None:
        self.options = resolve_options(
            self.schema(), options, where=self.name or type(self).__name__
        )

    @classmethod
    def schema(cls) -> dict[str, Any]:
        """Every option of this verifier: the ones all verifiers share, then its own."""
        return {**COMMON_OPTIONS, **cls.options_schema}

    # -- what made a verdict -----------------------------------------------------------------
    @classmethod
    def resolve(cls, *layers: Mapping[str, Any] | None, where: str | None = None) -> dict[str, Any]:
        """This verifier's options: schema defaults overridden by each layer (validated)."""
        return resolve_options(cls.schema(), *layers, where=where or cls.name)

    @classmethod
    def identity_of(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        """Name, version and the options that change verdicts: what every cache key and
        `verify_shard` job carries."""
        return {
            "name": cls.name,
            "version": cls.version,
            "options": result_options(cls.schema(), options),
        }

    def identity(self) -> dict[str, Any]:
        return self.identity_of(self.options)

    @classmethod
    def resources(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        """Resources a verify_shard job of this verifier asks a cluster for (e.g. mem_mb)."""
        return {}

    def cache_text(self, problem: Problem, completion: str) -> str:
        """The part of a completion its verdict depends on (the verdict cache key hashes this):
        the whole completion, unless a verifier knows better (e.g. a normalised patch)."""
        return completion

    # -- judging -----------------------------------------------------------------------------
    def check(self, problem: Problem, completion: str) -> Check:
        raise NotImplementedError

    def check_many(self, pairs: Sequence[tuple[Problem, str]]) -> list[Check]:
        """Checks for many (problem, completion) pairs, in order."""
        return [check_safely(self, problem, completion) for problem, completion in pairs]

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release workers, sandboxes, connections."""

    def __enter__(self) -> Verifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_safely(verifier: Verifier, problem: Problem, completion: str) -> Check:
    """Run `verifier.check`; a crash of the verifier's code becomes an `error` verdict (it is the
    verifier's bug, not the sample's answer) instead of stopping the shard."""
    try:
        return verifier.check(problem, completion)
    except InfrastructureFailure:
        raise
    except Exception as exc:  # noqa: BLE001 - any verifier bug must be recorded, not fatal
        return Check(status="error", detail=f"verifier crashed: {type(exc).__name__}: {exc}"[:500])


def _checked(name: str, obj: Any) -> type[Verifier]:
    if not (isinstance(obj, type) and issubclass(obj, Verifier)):
        raise PluginError(
            f"verifier {name!r} must be a subclass of monkeyflow.verify.Verifier, got {obj!r}"
        )
    if obj.name and obj.name != name:
        raise PluginError(
            f"verifier class {obj.__name__} is named {obj.name!r} but registered as {name!r}"
        )
    obj.name = name
    return obj


VERIFIERS: Registry[type[Verifier]] = Registry(
    "verifier", group="monkeyflow.verifiers", check=_checked
)
VERIFIERS.add("gsm8k", "monkeyflow.verify.gsm8k:GSM8KVerifier")
VERIFIERS.add("math", "monkeyflow.verify.math:MathVerifier")
VERIFIERS.add("code", "monkeyflow.verify.code:CodeVerifier")
VERIFIERS.add("lean", "monkeyflow.verify.lean:LeanVerifier")
VERIFIERS.add("swebench", "monkeyflow.verify.swebench:SWEBenchVerifier")


def verifier_class(name: str) -> type[Verifier]:
    return VERIFIERS.get(name)


def get_verifier(name: str, options: Mapping[str, Any] | None = None) -> Verifier:
    """A verifier instance built from its options (defaults filled in)."""
    return VERIFIERS.get(name)(**dict(options or {}))
