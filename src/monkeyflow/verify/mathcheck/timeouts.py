"""Running an equivalence backend under a wall-clock timeout.

With SIGALRM in the main thread (no per-call cost), in a persistent per-thread worker process
elsewhere (signals only work in the main thread). A timeout gives status `timeout`; a crash of
the checker gives `error`, never `incorrect`. A worker stuck where no signal reaches it (C code)
is killed `_WORKER_GRACE_S` after its timeout and replaced.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable

from monkeyflow.verify.mathcheck.backends import resolve_backend

DEFAULT_TIMEOUT_S = 5.0
# How the timeout is enforced: `auto` = SIGALRM in the main thread, a worker process elsewhere.
DEFAULT_ISOLATION = "auto"


class _Deadline(BaseException):
    """Raised by SIGALRM; a BaseException so that `except Exception` in sympy cannot swallow it."""


def _call_with_alarm(fn: Callable[..., bool], args: tuple, timeout_s: float) -> tuple[str, object]:
    """("ok", value) | ("timeout", None) | ("error", message); main thread only."""
    armed = [True]

    def on_alarm(signum, frame):
        if armed[0]:
            raise _Deadline()

    start = time.monotonic()
    old_handler = signal.signal(signal.SIGALRM, on_alarm)
    # Re-fire every 50 ms in case a bare `except:` somewhere swallows the first alarm.
    old_delay, old_interval = signal.setitimer(signal.ITIMER_REAL, timeout_s, 0.05)
    try:
        try:
            return "ok", fn(*args)
        finally:
            try:
                armed[0] = False
            finally:
                armed[0] = False
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, old_handler)
                if old_delay > 0:  # someone else's timer was running: put it back
                    left = old_delay - (time.monotonic() - start)
                    signal.setitimer(signal.ITIMER_REAL, max(left, 1e-3), old_interval)
    except _Deadline:
        return "timeout", None
    except RecursionError:
        return "error", "RecursionError"
    except Exception as exc:  # noqa: BLE001
        return "error", f"{type(exc).__name__}: {exc}"[:500]


_WORKER_GRACE_S = 2.0  # extra wait before a worker stuck in C code is killed
_WORKER_START_S = 120.0  # importing sympy and math-verify in a fresh process


class _Worker:
    """A child Python process that runs backends (under its own SIGALRM) for one thread."""

    def __init__(self) -> None:
        src = os.path.dirname(
            os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        )
        env = dict(os.environ)
        env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from monkeyflow.verify.mathcheck.timeouts import _worker_main; _worker_main()",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        self._buf = b""
        _ALL_WORKERS.append(self)
        if self._readline(_WORKER_START_S) != b"ready":
            self.close()
            raise RuntimeError("verifier worker process did not start")

    def _readline(self, timeout_s: float) -> bytes | None:
        deadline = time.monotonic() + timeout_s
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise EOFError("verifier worker process exited")
                self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line

    def call(self, backend: str, args: tuple, timeout_s: float) -> tuple[str, object]:
        request = json.dumps({"backend": backend, "args": list(args), "timeout": timeout_s})
        self.proc.stdin.write(request.encode() + b"\n")
        self.proc.stdin.flush()
        line = self._readline(timeout_s + _WORKER_GRACE_S)
        if line is None:
            self.close()  # stuck where SIGALRM cannot reach it
            return "timeout", None
        reply = json.loads(line)
        return reply["status"], reply["value"]

    def close(self) -> None:
        if self in _ALL_WORKERS:
            _ALL_WORKERS.remove(self)
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass


_ALL_WORKERS: list[_Worker] = []
_THREAD_STATE = threading.local()


@atexit.register
def _close_workers() -> None:
    for worker in list(_ALL_WORKERS):  # close() removes the worker from the list
        try:
            worker.close()
        except Exception:  # noqa: BLE001
            pass


def _worker_main() -> None:
    """The worker loop: one JSON request per line on stdin, one JSON reply per line on stdout."""
    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # stray prints must not corrupt the protocol
    import math_verify  # noqa: F401 - import up front, not inside the first timed call

    out.write(b"ready\n")
    out.flush()
    for line in sys.stdin.buffer:
        request = json.loads(line)
        try:
            fn = resolve_backend(request["backend"])
        except (ValueError, ImportError) as exc:
            out.write(json.dumps({"status": "error", "value": str(exc)[:500]}).encode() + b"\n")
            out.flush()
            continue
        status, value = _call_with_alarm(fn, tuple(request["args"]), request["timeout"])
        if status == "ok":
            value = bool(value)
        out.write(json.dumps({"status": status, "value": value}).encode() + b"\n")
        out.flush()


def run_backend(
    backend: str,
    reference: str,
    answer: str,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    isolation: str = DEFAULT_ISOLATION,
) -> tuple[str, object]:
    """Run an equivalence backend under a timeout: ("ok", bool) | ("timeout", None) | ("error", msg).

    isolation: `signal` (SIGALRM; main thread only), `process` (a persistent worker process per
    thread, restarted after a hang), or `auto` (signal in the main thread, else process).
    """
    fn = resolve_backend(backend)  # ValueError for an unknown name
    in_main = threading.current_thread() is threading.main_thread()
    if isolation == "auto":
        isolation = "signal" if in_main and hasattr(signal, "setitimer") else "process"
    if isolation == "signal":
        if not in_main:
            raise RuntimeError("isolation='signal' works only in the main thread")
        return _call_with_alarm(fn, (reference, answer), timeout_s)
    if isolation != "process":
        raise ValueError(f"isolation must be auto, signal or process, not {isolation!r}")
    worker = getattr(_THREAD_STATE, "worker", None)
    if worker is None or worker.proc.poll() is not None:
        _THREAD_STATE.worker = worker = _Worker()
    try:
        status, value = worker.call(backend, (reference, answer), timeout_s)
    except (EOFError, OSError, ValueError) as exc:
        worker.close()
        return "error", f"verifier worker failed: {type(exc).__name__}: {exc}"
    if worker.proc.poll() is not None:
        _THREAD_STATE.worker = None
    return status, value
