"""Benchmark: SWE-bench patches judged per hour on one real instance, monkeyflow's local runtime
against a baseline measured in the same run that does what the official harness does for each
prediction.

Instance: pytest-dev__pytest-11143 (the shipped snapshot). N distinct patches (no two alike, so
the verdict cache and de-duplication do not help): a quarter resolve the issue (the gold fix plus
a distinct comment), the rest apply but do not (a distinct comment): repeated sampling's usual
mix (the paper's DeepSeek-Coder-V2 resolves 15.9% with one attempt).

Each patch is judged by both, one after the other, so that both see the same machine load.

- monkeyflow: `SWEBenchVerifier.check_many` with the environment already built (built once per
  (repo, version, environment commit) and reused: its one-time cost is printed apart), each patch
  in a reflink copy of the installed tree, FAIL_TO_PASS first, no reinstall for an editable
  install the patch leaves alone;
- baseline, per prediction, as the harness's container run: a fresh tree from the snapshot and a
  fresh copy of the built venv (the cached environment image), apply with the harness's chain,
  the eval script's reinstall (`pip install -e .`), reset + apply the test patch, the full test
  command; graded with the same parser. Both run in the same sandbox launcher.

Run: python bench/swebench.py [--patches 8] [--cache DIR]. Goal: >= 5x patches per hour;
exits 1 if missed (or if any verdict differs between the two).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# this file is named like the `swebench` package: keep its folder off the import path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))

from monkeyflow.verify import get_verifier  # noqa: E402
from monkeyflow.verify.swebench import jail, local, spec  # noqa: E402
from tests import swebench_support as sb  # noqa: E402

GOAL = 5.0


def patches(n: int) -> list[tuple[str, bool]]:
    """(patch, expected to resolve): distinct texts, a quarter of them resolving."""
    before = sb.file_text(sb.PYTEST_11143, sb.REWRITE)
    out = []
    for i in range(n):
        resolves = i % 4 == 0
        after = (sb.gold_text() if resolves else before).replace(
            '"""Rewrite assertion AST', f'# attempt {i}\n"""Rewrite assertion AST', 1
        )
        out.append((sb.make_diff(sb.REWRITE, before, after), resolves))
    return out


def baseline_one(rt: local.LocalRuntime, instance, patch: str, env: Path, manifest, harness_spec):
    """One prediction the official harness's way (see the module docstring)."""
    work = Path(tempfile.mkdtemp(prefix="baseline-", dir=rt.cache / "work"))
    try:
        tree, venv_copy = work / "tree", work / "venv"
        tree.mkdir()
        with tarfile.open(rt.snapshot(instance["instance_id"]), "r:gz") as tar:
            tar.extractall(tree, filter="tar")
        for step in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "base"]):
            subprocess.run([*local.GIT, *step], cwd=tree, check=True, capture_output=True)
        subprocess.run(
            ["cp", "-a", "--reflink=auto", str(env / "venv"), str(venv_copy)], check=True
        )
        (work / "in").mkdir()
        (work / "in" / "model.diff").write_text(patch)
        (work / "in" / "test.diff").write_text(instance["test_patch"] + "\n")
        jail.give_to_sandbox_user(tree)
        jail.give_to_sandbox_user(venv_copy)
        venv = env / "venv"
        base = manifest.get("base_prefix") or ""
        box = jail.Jail(
            writable=((str(tree), "/testbed"), (str(venv_copy), str(venv))),
            readonly=((str(work / "in"), "/monkeyflow-in"),)
            + (((base, base),) if base and not base.startswith(jail.SYSTEM_DIRS) else ()),
            cwd="/testbed",
            env=rt.base_env(instance, venv),
            network=True,  # the harness's containers have network; the reinstall may use it
        )
        specs = spec.repo_specs(instance["repo"], instance["version"])
        start, end = spec.markers()
        script = "\n".join(
            [
                "(",
                local.apply_script(spec.apply_commands()),
                ") || exit 3",
                specs["install"],
                local.test_patch_script(spec.test_files(instance["test_patch"])),
                f"echo '{start}'",
                spec.test_command(instance),
                f"echo '{end}'",
            ]
        )
        done = jail.run(box, script, work / "eval.log", 1800)
        if done.returncode == 3 or start not in done.log:
            return False
        body = done.log.split(start, 1)[1].split(end, 1)[0]
        statuses = spec.parse_log(instance["repo"], body, harness_spec)
        return spec.grade(statuses, instance["FAIL_TO_PASS"], instance["PASS_TO_PASS"]).resolved
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patches", type=int, default=8)
    parser.add_argument("--cache", type=Path, default=None, help="swebench cache_dir")
    args = parser.parse_args()
    missing = jail.missing_tools()
    if missing:
        print(f"error: needs {', '.join(missing)}", file=sys.stderr)
        return 2
    problem = sb.instances()[sb.PYTEST_11143]
    options = {"cache_dir": str(args.cache)} if args.cache else {}
    verifier = get_verifier("swebench", options)
    rt = verifier.runtime()
    instance = spec.instance_row(problem.metadata)
    work = rt.cache / "work"
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with rt.prepared(instance) as (env, manifest, _tree):
        pass
    setup_s = time.monotonic() - started
    harness_spec = spec.make_spec(instance, verifier.folders()[1])
    todo = patches(args.patches)
    print(
        f"instance {sb.PYTEST_11143}: {len(todo)} distinct patches, {sum(r for _, r in todo)} resolving"
    )
    print(
        f"monkeyflow environment + installed tree: {setup_s:.1f} s (once per env / instance; 0 if cached)"
    )

    # interleaved (ours, then the baseline, patch by patch): both see the same machine load
    ours_s = base_s = 0.0
    checks, theirs = [], []
    for text, _ in todo:
        started = time.monotonic()
        checks += verifier.check_many([(problem, text)])
        ours_s += time.monotonic() - started
        started = time.monotonic()
        theirs.append(baseline_one(rt, instance, text, env, manifest, harness_spec))
        base_s += time.monotonic() - started
    ours = [c.status == "correct" for c in checks]

    expected = [r for _, r in todo]
    rate_ours, rate_base = 3600 * len(todo) / ours_s, 3600 * len(todo) / base_s
    ratio = rate_ours / rate_base
    print(
        f"monkeyflow local runtime: {ours_s:7.1f} s  {rate_ours:8.1f} patches/hour  ({ours_s / len(todo):.1f} s each)"
    )
    print(
        f"baseline (harness-like):  {base_s:7.1f} s  {rate_base:8.1f} patches/hour  ({base_s / len(todo):.1f} s each)"
    )
    print(f"ratio: {ratio:.2f}x (goal >= {GOAL}x)")
    ok = True
    if ours != expected or theirs != expected:
        print(
            f"verdicts differ: expected {expected}, monkeyflow {ours}, baseline {theirs}",
            file=sys.stderr,
        )
        for c in checks:
            print(f"  {c.status}: {c.detail}", file=sys.stderr)
        ok = False
    if ratio < GOAL:
        print(f"goal missed: {ratio:.2f}x < {GOAL}x", file=sys.stderr)
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
