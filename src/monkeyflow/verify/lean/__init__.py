"""The `lean` verifier: Lean 4 + Mathlib proofs (MiniF2F), checked whole by Lean.

A proof is correct only when header + statement + proof elaborate as one command with no error,
no `sorry`, the given statement (never one the completion restated) and `#print axioms` showing
nothing beyond propext, Classical.choice and Quot.sound (`monkeyflow.verify.lean.proof`).

Two ways to reach Lean behind one interface (`lean.mode`):
- `repl` (default): a pool of long-lived leanprover-community/repl processes
  (`monkeyflow.verify.lean.repl`), each elaborating the header once;
- `server`: the HTTP API of a running Kimina Lean Server (`monkeyflow.verify.lean.server`).

Infrastructure failures (no toolchain, a crash, memory, an unreachable server) are `error` with
what is missing and how to get it; a proof over `timeout_s` is `timeout`. See docs/lean.md.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

from monkeyflow.records import Check, Problem
from monkeyflow.verify.base import Verifier
from monkeyflow.verify.lean.proof import (
    Command,
    ProtocolError,
    build_command,
    extract_proof,
    judge_response,
    screen_proof,
)
from monkeyflow.verify.lean.repl import Outcome, ReplPool, StartError, repl_command
from monkeyflow.verify.lean.server import KiminaClient, api_key_from

# The toolchain containers/lean.def pins (Lean, Mathlib tag, REPL tag); verdicts are for it.
LEAN_VERSION = "4.15.0"
MATHLIB_REV = "v4.15.0-patch1"
DEFAULT_TIMEOUT_S = 60.0


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def available_memory_gb() -> float | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def default_workers(memory_gb: float) -> int:
    """REPL workers for this machine: one per usable core, as many as its free memory holds."""
    cores = usable_cores()
    free = available_memory_gb()
    if free is not None and memory_gb > 0:
        cores = min(cores, int(free // memory_gb))
    return max(1, cores)


class LeanVerifier(Verifier):
    """Lean 4 proofs of a problem's `formal_statement` under its `header` (MiniF2F)."""

    version = "lean-1"
    container = "lean"
    options_schema = {
        "mode": {
            "type": "string",
            "enum": ["repl", "server"],
            "default": "repl",
            "x-runtime": True,
            "description": "how to reach Lean: a pool of local REPL processes, or a Kimina Lean Server over HTTP",
        },
        "timeout_s": {
            "type": "number",
            "exclusiveMinimum": 0,
            "default": DEFAULT_TIMEOUT_S,
            "description": "wall-clock seconds for one proof (over it: status timeout; the REPL worker is restarted)",
        },
        "lean_version": {
            "type": ["string", "null"],
            "default": LEAN_VERSION,
            "description": "the Lean version verdicts are for (checked against Lean.versionString at start; null: not checked). Part of the verdict cache key",
        },
        "workers": {
            "type": ["integer", "null"],
            "minimum": 1,
            "default": None,
            "x-runtime": True,
            "description": "REPL processes (null = usable cores, at most free memory / memory_gb); each holds several GB",
        },
        "machine_workers": {
            "type": ["integer", "null"],
            "minimum": 1,
            "default": None,
            "x-runtime": True,
            "description": "REPL workers alive at once on one machine across all jobs of this user (null = cores, at most physical memory / memory_gb): parallel verify_shard jobs wait for a free slot",
        },
        "memory_gb": {
            "type": "number",
            "exclusiveMinimum": 0,
            "default": 8,
            "x-runtime": True,
            "description": "memory of one REPL worker (anonymous RSS, GB): over it the worker is killed (status error) and SLURM jobs ask for workers x memory_gb",
        },
        "header_timeout_s": {
            "type": "number",
            "exclusiveMinimum": 0,
            "default": 600,
            "x-runtime": True,
            "description": "wall-clock seconds for a worker to import the header (import Mathlib); over it: status error",
        },
        "max_proofs_per_worker": {
            "type": "integer",
            "minimum": 1,
            "default": 200,
            "x-runtime": True,
            "description": "restart a REPL worker after this many proofs (the REPL keeps every environment, so its memory grows)",
        },
        "repl": {
            "type": ["string", "null"],
            "default": None,
            "x-runtime": True,
            "description": "the REPL executable or command line (null = $MONKEYFLOW_LEAN_REPL, else `repl` on PATH)",
        },
        "project_dir": {
            "type": ["string", "null"],
            "default": None,
            "x-runtime": True,
            "description": "a Lake project with Mathlib in which to run the REPL as `lake env <repl>` (null = $MONKEYFLOW_LEAN_PROJECT, else run it directly)",
        },
        "url": {
            "type": "string",
            "default": "http://localhost:8000",
            "x-runtime": True,
            "description": "mode server: base URL of the Kimina Lean Server",
        },
        "api_key_env": {
            "type": "string",
            "default": "LEAN_SERVER_API_KEY",
            "x-runtime": True,
            "description": "mode server: environment variable holding the server's API key (the key itself is never written anywhere)",
        },
        "batch_size": {
            "type": "integer",
            "minimum": 1,
            "default": 8,
            "x-runtime": True,
            "description": "mode server: proofs per request",
        },
        "concurrency": {
            "type": "integer",
            "minimum": 1,
            "default": 4,
            "x-runtime": True,
            "description": "mode server: requests in flight at once",
        },
        "retries": {
            "type": "integer",
            "minimum": 0,
            "default": 3,
            "x-runtime": True,
            "description": "mode server: tries after a failed request or a missing answer, with exponential backoff",
        },
        "retry_backoff_s": {
            "type": "number",
            "minimum": 0,
            "default": 2,
            "x-runtime": True,
            "description": "mode server: wait before the first retry (doubled for each further one, at most 30 s)",
        },
        "http_timeout_s": {
            "type": ["number", "null"],
            "exclusiveMinimum": 0,
            "default": None,
            "x-runtime": True,
            "description": "mode server: seconds to wait for one request (null = 2 x timeout_s + 600: a fresh server REPL imports Mathlib first)",
        },
    }

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._pool: ReplPool | None = None
        self._client: KiminaClient | None = None

    @classmethod
    def resources(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        """A REPL pool needs workers x memory_gb (plus 1 GB for the job itself); a server client
        needs nothing beyond the default."""
        if options.get("mode", "repl") != "repl":
            return {}
        workers = options.get("workers") or 1
        memory_gb = float(options.get("memory_gb") or 8)
        return {"mem_mb": int(math.ceil(workers * memory_gb * 1024)) + 1024}

    # -- checking ---------------------------------------------------------------------------------
    def check(self, problem: Problem, completion: str) -> Check:
        return self.check_many([(problem, completion)])[0]

    def check_many(self, pairs: Sequence[tuple[Problem, str]]) -> list[Check]:
        checks: list[Check | None] = [None] * len(pairs)
        commands: dict[tuple[str, str], Command] = {}
        slots: dict[int, tuple[tuple[str, str], str, str | None, str]] = {}
        for i, (problem, completion) in enumerate(pairs):
            try:
                prepared = self._prepare(problem, completion)
            except (KeyError, TypeError, ValueError) as exc:
                checks[i] = Check(
                    "error", detail=f"problem {problem.problem_id} is not a Lean problem: {exc}"
                )
                continue
            if isinstance(prepared, Check):
                checks[i] = prepared
                continue
            command, proof, method, note = prepared
            key = (command.header, command.text)
            commands.setdefault(key, command)
            slots[i] = (key, proof, method, note)
        order = list(commands)
        outcomes = dict(zip(order, self._run([commands[k] for k in order]), strict=True))
        for i, (key, proof, method, note) in slots.items():
            check = _verdict(outcomes[key], commands[key])
            detail = f"{check.detail}; {note}" if note else check.detail
            checks[i] = Check(check.status, proof.strip(), method, detail)
        return [c if c is not None else Check("error", detail="not checked") for c in checks]

    def _prepare(self, problem: Problem, completion: str):
        """A Check decided without Lean, or (command, proof, method, note) for Lean."""
        meta = problem.metadata
        name, statement, header = meta["name"], meta["formal_statement"], meta["header"]
        try:
            completion.encode("utf-8")
        except UnicodeEncodeError:
            return Check(
                "incorrect", detail="the completion is not valid Unicode (lone surrogates)"
            )
        stop = tuple(meta.get("stop") or ())
        found = extract_proof(completion, statement, name, stop)
        if found.proof is None:
            return Check("incorrect", None, found.method, found.note or "no proof found")
        refused = screen_proof(found.proof)
        if refused:
            return Check(
                "incorrect", found.proof.strip(), found.method, f"refused before Lean: {refused}"
            )
        return (
            build_command(header, statement, found.proof, name),
            found.proof,
            found.method,
            found.note,
        )

    def _run(self, commands: list[Command]) -> list[Outcome]:
        if not commands:
            return []
        o = self.options
        if o["mode"] == "server":
            if self._client is None:
                self._client = KiminaClient(
                    o["url"],
                    api_key=api_key_from(o["api_key_env"]),
                    api_key_env=o["api_key_env"],
                    timeout_s=o["timeout_s"],
                    batch_size=o["batch_size"],
                    concurrency=o["concurrency"],
                    retries=o["retries"],
                    backoff_s=o["retry_backoff_s"],
                    http_timeout_s=o["http_timeout_s"],
                    lean_version=o["lean_version"],
                )
            probe = commands[0].header + "#eval Lean.versionString\n"
            return self._client.run([c.full_text for c in commands], version_probe=probe)
        if self._pool is None:
            try:
                argv, cwd = repl_command(o["repl"], o["project_dir"])
            except StartError as exc:
                return [Outcome("error", detail=str(exc)) for _ in commands]
            self._pool = ReplPool(
                argv,
                cwd,
                workers=o["workers"] or default_workers(o["memory_gb"]),
                timeout_s=o["timeout_s"],
                header_timeout_s=o["header_timeout_s"],
                memory_gb=o["memory_gb"],
                max_proofs_per_worker=o["max_proofs_per_worker"],
                lean_version=o["lean_version"],
                machine_workers=o["machine_workers"],
            )
        return self._pool.run(commands)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        self._client = None


def _verdict(outcome: Outcome, command: Command) -> Check:
    if outcome.kind == "timeout":
        return Check("timeout", detail=outcome.detail)
    if outcome.kind == "error":
        return Check("error", detail=outcome.detail)
    try:
        return judge_response(outcome.response, command)
    except ProtocolError as exc:
        return Check("error", detail=str(exc))


__all__ = ["LEAN_VERSION", "MATHLIB_REV", "LeanVerifier", "default_workers"]
