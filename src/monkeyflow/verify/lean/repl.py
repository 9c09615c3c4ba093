"""A pool of long-lived Lean REPL processes (leanprover-community/repl, JSON over stdin/stdout).

Protocol (REPL/Main.lean, REPL/JSON.lean): one JSON object per request, ended by a blank line;
`{"cmd": text}` elaborates in a fresh environment (the only place `import` is allowed),
`{"cmd": text, "env": n}` in environment n. The answer is one JSON object, possibly spread over
several lines and ended by a blank line: `{"env": n, "messages": [{"severity", "pos", "endPos",
"data"}], "sorries": [...]}` (`messages`/`sorries` left out when empty), or `{"message": ...}`
when the REPL itself fails (e.g. "Unknown environment."). A request that is not valid JSON makes
the REPL exit, so every request is written by `json.dumps` on one line.

Each worker elaborates a problem's header (`import Mathlib ...`) once, keeps the environment
number, and checks every proof with that header in it (`env` reuse): the Mathlib import is paid
once per worker. The REPL has no timeout of its own: a proof over its wall-clock limit kills the
worker's whole process group (verdict `timeout`); the next proof starts a fresh worker, which
imports the header again. A crash, a broken answer or memory over `memory_gb` kills the worker
and the proof is tried once more on a fresh one; a second failure is `error`, never `incorrect`.
"""

from __future__ import annotations

import atexit
import collections
import json
import os
import queue
import select
import shlex
import shutil
import signal
import subprocess
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from monkeyflow.verify.lean.machine import WorkerSlots, anon_rss_bytes, machine_slots
from monkeyflow.verify.lean.proof import Command, ProtocolError

REPL_ENV = "MONKEYFLOW_LEAN_REPL"  # the REPL executable (or a command line that starts one)
PROJECT_ENV = "MONKEYFLOW_LEAN_PROJECT"  # a Lake project with Mathlib: run the REPL in `lake env`
HOW_TO_GET_LEAN = (
    "build the image containers/lean.def (apptainer build ...; it sets MONKEYFLOW_LEAN_REPL), or "
    "build leanprover-community/repl and a Mathlib project (lake exe cache get) and set "
    f"lean.repl / ${REPL_ENV} to the repl binary and lean.project_dir / ${PROJECT_ENV} to the "
    "project, or use a Lean server (lean.mode: server, lean.url)"
)


class InfrastructureError(RuntimeError):
    """The checker could not judge (no toolchain, a crash, memory, a broken answer)."""


class StartError(InfrastructureError):
    """The REPL cannot be started at all (every later start would fail the same way)."""


class HeaderError(InfrastructureError):
    """The header (`import Mathlib ...`) does not elaborate: Mathlib is missing or unbuilt."""


class ProofTimeout(Exception):
    """A proof ran over its wall-clock limit."""


@dataclass(frozen=True)
class Outcome:
    """What the pool got for one command: `response` (the REPL's JSON answer), or `timeout`
    or `error` with a `detail`."""

    kind: str
    response: Any = None
    detail: str = ""


def repl_command(repl: str | None, project_dir: str | None) -> tuple[list[str], str | None]:
    """(argv, cwd) that start one REPL: `repl` (else $MONKEYFLOW_LEAN_REPL, else `repl` on
    PATH), inside `lake env` in `project_dir` (else $MONKEYFLOW_LEAN_PROJECT) when one is given."""
    given = repl or os.environ.get(REPL_ENV)
    if not given:
        if shutil.which("repl") is None:
            raise StartError(
                f"no Lean REPL: lean.repl and ${REPL_ENV} are unset and there is no `repl` on PATH; {HOW_TO_GET_LEAN}"
            )
        given = "repl"
    argv = shlex.split(given)
    project = project_dir or os.environ.get(PROJECT_ENV)
    if project:
        if not os.path.isdir(project):
            raise StartError(f"lean.project_dir {project!r} is not a folder; {HOW_TO_GET_LEAN}")
        if shutil.which("lake") is None:
            raise StartError(
                f"`lake` is not on PATH (needed to run the REPL in {project!r}); {HOW_TO_GET_LEAN}"
            )
        return ["lake", "env", *argv], project
    return argv, None


class ReplWorker:
    """One REPL process, started on first use; knows the environment of each header it ran."""

    def __init__(
        self,
        argv: Sequence[str],
        cwd: str | None,
        *,
        memory_bytes: int | None,
        header_timeout_s: float,
        lean_version: str | None,
    ) -> None:
        self.argv = list(argv)
        self.cwd = cwd
        self.memory_bytes = memory_bytes
        self.header_timeout_s = header_timeout_s
        self.lean_version = lean_version
        self.proc: subprocess.Popen | None = None
        self.envs: dict[str, int] = {}
        self.proofs = 0  # proofs checked by the current process
        self.starts = 0
        self.slots: WorkerSlots | None = None
        self._slot: int | None = None
        self.index = 0
        self._buffer = b""
        self._stderr: collections.deque[str] = collections.deque(maxlen=30)

    # -- process --------------------------------------------------------------------------------
    def start(self) -> None:
        waited = 0.0
        while self.slots is not None and self._slot is None:
            self._slot = self.slots.try_acquire()
            if self._slot is None:  # other jobs' REPLs hold every slot: wait for one to end
                self.slots.waiting(waited)
                time.sleep(0.5)
                waited += 0.5
        try:
            self.proc = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # its own process group: a kill takes `lake` and the REPL
            )
        except OSError as exc:
            raise StartError(
                f"cannot start the Lean REPL {shlex.join(self.argv)!r}: {exc}; {HOW_TO_GET_LEAN}"
            ) from None
        self.starts += 1
        self.envs, self.proofs, self._buffer = {}, 0, b""
        self._stderr.clear()
        threading.Thread(target=self._drain, args=(self.proc,), daemon=True).start()

    def _drain(self, proc: subprocess.Popen) -> None:
        for line in proc.stderr:  # keeps the pipe from filling up; the tail explains a crash
            self._stderr.append(line.decode("utf-8", "replace").rstrip())

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _release_slot(self) -> None:
        if self._slot is not None:
            WorkerSlots.release(self._slot)
            self._slot = None

    def kill(self) -> None:
        proc, self.proc = self.proc, None
        self.envs = {}
        if proc is None:
            self._release_slot()
            return
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            proc.kill()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            try:
                pipe.close()
            except OSError:
                pass
        self._release_slot()

    def stderr_tail(self) -> str:
        lines = [line for line in self._stderr if line.strip()]
        return " | ".join(lines[-3:])[:400]

    # -- requests -------------------------------------------------------------------------------
    def request(self, payload: dict[str, Any], timeout_s: float) -> Any:
        """Send one request and read its answer; ProofTimeout past `timeout_s` (the worker is
        then killed), InfrastructureError on a crash, memory over the limit or a broken answer."""
        if not self.alive:
            self.start()
        proc = self.proc
        line = json.dumps(payload, ensure_ascii=False) + "\n\n"
        try:
            proc.stdin.write(line.encode("utf-8"))
            proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise self._crashed("its input closed") from None
        deadline = time.monotonic() + timeout_s
        fd = proc.stdout.fileno()
        next_memory_check = 0.0
        while b"\n\n" not in self._buffer:
            now = time.monotonic()
            if now >= deadline:
                self.kill()
                raise ProofTimeout(f"over the {timeout_s:g} s wall-clock limit")
            if self.memory_bytes and now >= next_memory_check:
                used = anon_rss_bytes(proc.pid)
                if used is not None and used > self.memory_bytes:
                    self.kill()
                    raise InfrastructureError(
                        f"the REPL used {used / 2**30:.1f} GB, over lean.memory_gb = "
                        f"{self.memory_bytes / 2**30:g}: raise lean.memory_gb (and the job's memory) or use fewer lean.workers"
                    )
                next_memory_check = now + 0.5
            ready, _, _ = select.select([fd], [], [], min(0.25, max(0.0, deadline - now)))
            if ready:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    raise self._crashed("it exited")
                self._buffer += chunk
        raw, _, self._buffer = self._buffer.partition(b"\n\n")
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            self.kill()
            raise InfrastructureError(
                f"the REPL's answer is not JSON ({exc}): {raw[:200]!r}"
            ) from None

    def _crashed(self, how: str) -> InfrastructureError:
        proc = self.proc
        code = None
        if proc is not None:
            try:
                code = proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        time.sleep(0.05)  # let the stderr reader catch the last lines
        tail = self.stderr_tail()
        self.kill()
        status = (
            f"exit code {code}"
            if code is not None and code >= 0
            else f"signal {-code}"
            if code
            else "no exit code"
        )
        return InfrastructureError(
            f"the Lean REPL crashed ({how}; {status}){': ' + tail if tail else ''}"
        )

    def env_for(self, header: str) -> int:
        """The environment in which `header` has been elaborated (run on first use)."""
        if header in self.envs:
            return self.envs[header]
        try:
            answer = self.request({"cmd": header}, self.header_timeout_s)
        except ProofTimeout:
            raise HeaderError(
                f"the header (imports) did not elaborate within lean.header_timeout_s = {self.header_timeout_s:g} s: "
                "is Mathlib's build cache fetched (lake exe cache get)? raise lean.header_timeout_s on slow disks"
            ) from None
        if not isinstance(answer, dict) or not isinstance(answer.get("env"), int):
            raise HeaderError(f"the REPL did not elaborate the header: {str(answer)[:300]}")
        errors = [m for m in answer.get("messages") or [] if m.get("severity") == "error"]
        if errors:
            self.kill()
            raise HeaderError(
                f"the header does not elaborate ({' '.join(str(errors[0].get('data')).split())[:300]}): "
                f"Mathlib is missing or not built where the REPL runs; {HOW_TO_GET_LEAN}"
            )
        env = answer["env"]
        if self.lean_version and not self.envs:
            self._check_version(env)
        self.envs[header] = env
        return env

    def _check_version(self, env: int) -> None:
        answer = self.request(
            {"cmd": "#eval Lean.versionString", "env": env}, self.header_timeout_s
        )
        found = [
            str(m.get("data", "")).strip().strip('"')
            for m in (answer.get("messages") or [] if isinstance(answer, dict) else [])
            if m.get("severity") == "info"
        ]
        if found != [self.lean_version]:
            self.kill()
            raise StartError(
                f"the REPL runs Lean {found[0] if found else '(unknown)'} but lean.lean_version is "
                f"{self.lean_version!r}: verdicts are only comparable on one toolchain. Use the image of "
                "containers/lean.def, or set lean.lean_version to the version you run (it is part of the verdict cache key)"
            )


class ReplPool:
    """`workers` REPL processes checking commands in parallel (one thread per worker)."""

    def __init__(
        self,
        argv: Sequence[str],
        cwd: str | None,
        *,
        workers: int,
        timeout_s: float,
        header_timeout_s: float,
        memory_gb: float | None,
        max_proofs_per_worker: int,
        lean_version: str | None,
        machine_workers: int | None = None,
        retries: int = 1,
    ) -> None:
        memory = int(memory_gb * 2**30) if memory_gb else None
        self.slots = WorkerSlots(machine_workers or machine_slots(memory_gb))
        self.workers = [
            ReplWorker(
                argv,
                cwd,
                memory_bytes=memory,
                header_timeout_s=header_timeout_s,
                lean_version=lean_version,
            )
            for _ in range(max(1, workers))
        ]
        for index, worker in enumerate(self.workers):
            worker.index = index
        for worker in self.workers:
            worker.slots = self.slots
        self.timeout_s = timeout_s
        self.max_proofs_per_worker = max_proofs_per_worker
        self.memory_bytes = memory
        self.retries = retries
        self._fatal: str | None = None  # a failure every later proof would hit too
        self._broken_headers: dict[str, str] = {}
        _live_pools.add(self)

    def run(self, commands: Sequence[Command]) -> list[Outcome]:
        """Outcomes for `commands`, in order."""
        results: list[Outcome | None] = [None] * len(commands)
        jobs: queue.Queue[int] = queue.Queue()
        for i in range(len(commands)):
            jobs.put(i)

        waited = [0.0] * len(self.workers)

        def serve(worker: ReplWorker) -> None:
            while True:
                if worker._slot is None:  # take a job only with a REPL slot in hand
                    worker._slot = self.slots.try_acquire()
                    if worker._slot is None:
                        if jobs.empty():
                            return
                        self.slots.waiting(waited[worker.index])
                        time.sleep(0.5)
                        waited[worker.index] += 0.5
                        continue
                try:
                    i = jobs.get_nowait()
                except queue.Empty:
                    if not worker.alive:
                        worker.kill()  # gives back a slot taken for nothing
                    return
                results[i] = self._check(worker, commands[i])

        threads = [
            threading.Thread(target=serve, args=(w,), daemon=True)
            for w in self.workers[: max(1, min(len(self.workers), len(commands)))]
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return [r if r is not None else Outcome("error", detail="not checked") for r in results]

    def _check(self, worker: ReplWorker, command: Command) -> Outcome:
        failure = ""
        for _attempt in range(self.retries + 1):
            if self._fatal:
                return Outcome("error", detail=self._fatal)
            if command.header in self._broken_headers:
                return Outcome("error", detail=self._broken_headers[command.header])
            try:
                env = worker.env_for(command.header)
                answer = worker.request({"cmd": command.text, "env": env}, self.timeout_s)
            except ProofTimeout as exc:
                return Outcome("timeout", detail=f"Lean did not finish: {exc} (lean.timeout_s)")
            except StartError as exc:
                self._fatal = str(exc)
                return Outcome("error", detail=self._fatal)
            except HeaderError as exc:
                worker.kill()
                self._broken_headers[command.header] = str(exc)
                return Outcome("error", detail=str(exc))
            except InfrastructureError as exc:
                failure = str(exc)
                worker.kill()
                continue
            if isinstance(answer, dict) and "message" in answer and "messages" not in answer:
                failure = f"the REPL failed: {str(answer['message'])[:300]}"
                worker.kill()
                continue
            worker.proofs += 1
            self._recycle_if_due(worker)
            return Outcome("response", response=answer)
        return Outcome(
            "error", detail=f"{failure} (tried {self.retries + 1} times on fresh workers)"
        )

    def _recycle_if_due(self, worker: ReplWorker) -> None:
        """Restart a worker after many proofs or when its memory nears the limit: the REPL keeps
        every environment it made, so its memory only grows."""
        if worker.proofs >= self.max_proofs_per_worker:
            worker.kill()
            return
        if self.memory_bytes and worker.proc is not None:
            used = anon_rss_bytes(worker.proc.pid)
            if used is not None and used > 0.8 * self.memory_bytes:
                worker.kill()

    def close(self) -> None:
        for worker in self.workers:
            worker.kill()
        _live_pools.discard(self)


_live_pools: weakref.WeakSet[ReplPool] = weakref.WeakSet()


@atexit.register
def _kill_pools_at_exit() -> None:
    """No REPL outlives the process that started it (each holds gigabytes)."""
    for pool in list(_live_pools):
        pool.close()


__all__ = [
    "HOW_TO_GET_LEAN",
    "HeaderError",
    "InfrastructureError",
    "Outcome",
    "ProofTimeout",
    "ProtocolError",
    "ReplPool",
    "ReplWorker",
    "StartError",
    "WorkerSlots",
    "anon_rss_bytes",
    "repl_command",
]
