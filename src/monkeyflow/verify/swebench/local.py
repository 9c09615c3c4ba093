"""The `local` runtime: an instance's environment as a venv on this machine, its repository from
a source snapshot, each patch judged in a fresh copy of the installed tree.

Layout under the cache folder (`swebench.cache_dir`):
- `envs/<repo>__<version>__<env commit>__py<X.Y>/venv`: built once from the spec (Python
  packages, requirements, pip_packages; trusted work with network) and reused by every instance
  and patch of that environment; `manifest.json` says how it was made;
- `trees/<instance>/tree`: the snapshot at the base commit as a git repository, after the spec's
  install command (run once, into `trees/<instance>/venv`, the instance's copy of the env's venv
  bound over the env's path; an editable install records the tree's path, so every tree is
  installed and later evaluated at the one fixed path `/testbed`, bound there by bubblewrap);
- `work/<id>/`: one patch's copy-on-write copy of the tree (`cp --reflink=auto`), deleted after.

Per patch (`evaluate`): apply the patch in the sandbox (git apply --verbose, then --reject,
then patch --batch --fuzz=5, resetting between tries), reinstall if the spec's install is not an
editable one or the patch touches a build file, reset the test files and apply the test patch,
run FAIL_TO_PASS first (pytest-style test ids), then the instance's full test command, and grade
the log with the harness's parser.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monkeyflow.verify.swebench import jail, spec
from monkeyflow.verify.swebench.jail import Jail, Limits

BUILD_FILES = re.compile(
    r"^(setup\.py|setup\.cfg|pyproject\.toml|MANIFEST\.in|requirements[^/]*\.txt|tox\.ini)$"
)
GIT = ["git", "-c", "user.name=monkeyflow", "-c", "user.email=monkeyflow@localhost"]
GIT += ["-c", "init.defaultBranch=main", "-c", "core.fileMode=false"]


class EnvError(RuntimeError):
    """An environment or tree that cannot be built: the verdict is `error`."""


@dataclass(frozen=True)
class Outcome:
    status: str  # correct | incorrect | timeout | error
    detail: str
    seconds: float = 0.0


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _run(argv: list[str], cwd: Path | None = None, env: dict | None = None, timeout=600) -> str:
    done = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        tail = (done.stdout + done.stderr)[-3000:]
        raise EnvError(f"`{' '.join(argv[:6])}` failed ({done.returncode}): {tail}")
    return done.stdout


def find_python(version: str, override: str | None) -> str:
    """The interpreter for an environment: the given one, else python<version> on PATH, else
    the python3 on PATH (e.g. 3.11 for a 3.9 spec: the shipped instances were checked on it)."""
    candidates = [override] if override else [f"python{version}", "python3"]
    for candidate in candidates:
        found = shutil.which(candidate)
        if found and _runs(found):
            return found
    raise EnvError(f"no working Python interpreter found (tried {', '.join(candidates)})")


@functools.cache
def _python_version(python: str) -> str:
    return _run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"]).strip()


@functools.cache
def _runs(python: str) -> bool:
    """Whether an interpreter starts (a pyenv shim of an inactive version does not)."""
    try:
        done = subprocess.run([python, "-c", "pass"], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def pretend_version(instance: dict[str, Any]) -> str:
    """A setuptools_scm version for a tree without tags (pytest refuses 0.1.devN)."""
    return f"{instance['version']}.0.dev0+g{instance['base_commit'][:9]}"


class LocalRuntime:
    def __init__(self, options: dict[str, Any], repos: list[Path], env_files: Path, cache: Path):
        self.o = options
        self.repos = repos
        self.env_files = env_files
        self.cache = cache
        # Where every tree is installed and evaluated, inside the sandbox: an editable install
        # records it, so it is one fixed path (the official images use /testbed too).
        self.testbed = Path("/testbed")
        self.limits = Limits(memory_mb=int(options["memory_mb"]))

    # -- environment ------------------------------------------------------------------------
    def env_dir(self, instance: dict[str, Any], python: str) -> Path:
        pyver = _python_version(python)
        name = f"{instance['repo'].replace('/', '__')}__{instance['version']}__"
        name += f"{instance['environment_setup_commit'][:12]}__py{pyver}"
        return self.cache / "envs" / name

    def ensure_env(self, instance: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
        specs = spec.repo_specs(instance["repo"], instance["version"])
        python = find_python(str(specs.get("python", "3")), self.o["python"])
        env = self.env_dir(instance, python)
        manifest_path = env / "manifest.json"
        if manifest_path.exists():
            return env, json.loads(manifest_path.read_text())
        if env.exists():
            shutil.rmtree(env)  # a build that died half-way
        tmp = env.with_name(env.name + ".building")
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        log: list[str] = []
        started = time.monotonic()
        venv = env / "venv"  # the final path: scripts record it
        try:
            venv.parent.mkdir(parents=True, exist_ok=True)
            _run([python, "-m", "venv", str(venv)])
            pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
            packages = specs.get("packages", "")
            if packages == "requirements.txt":
                reqs = spec.requirements_text(instance, self.env_files)
                (tmp / "requirements.txt").write_text(reqs)
                _run([*pip, "-r", str(tmp / "requirements.txt")], timeout=self.o["build_timeout_s"])
                log.append("requirements.txt from env_files")
            elif packages == "environment.yml":
                raise EnvError(
                    f"{instance['repo']} {instance['version']}: the spec builds a conda "
                    "environment.yml, which the local runtime cannot; use runtime apptainer"
                )
            elif packages:
                _run([*pip, *packages.split()], timeout=self.o["build_timeout_s"])
                log.append(f"packages with pip: {packages}")
            if specs.get("pip_packages"):
                _run([*pip, *specs["pip_packages"]], timeout=self.o["build_timeout_s"])
            base = _run([str(venv / "bin" / "python"), "-c", "import sys; print(sys.base_prefix)"])
        except (EnvError, spec.SpecError, subprocess.TimeoutExpired) as exc:
            shutil.rmtree(env, ignore_errors=True)
            shutil.rmtree(tmp, ignore_errors=True)
            raise EnvError(f"cannot build the environment {env.name}: {exc}") from None
        shutil.rmtree(tmp, ignore_errors=True)
        manifest = {
            "repo": instance["repo"],
            "version": instance["version"],
            "environment_setup_commit": instance["environment_setup_commit"],
            "python": python,
            "base_prefix": base.strip(),
            "spec": {k: v for k, v in specs.items() if isinstance(v, str | list | int)},
            "notes": log,
            "seconds": round(time.monotonic() - started, 1),
        }
        _write_json(manifest_path, manifest)
        return env, manifest

    # -- trees ------------------------------------------------------------------------------
    def snapshot(self, instance_id: str) -> Path:
        for folder in self.repos:
            path = folder / f"{instance_id}.tar.gz"
            if path.is_file():
                return path
        where = ", ".join(map(str, self.repos)) or "nowhere"
        raise EnvError(
            f"no source snapshot {instance_id}.tar.gz (looked in {where}); make one with "
            "`git archive <base_commit> | gzip > <instance_id>.tar.gz` and pass its folder as "
            "swebench.repos (or --repos)"
        )

    def ensure_tree(self, instance: dict[str, Any], env: Path, manifest: dict) -> Path:
        """The installed tree of an instance (extracted and installed once)."""
        root = self.cache / "trees" / instance["instance_id"]
        tree = root / "tree"
        if (root / "ready.json").exists():
            return tree
        if root.exists():
            shutil.rmtree(root)
        root.mkdir(parents=True)
        snapshot = self.snapshot(instance["instance_id"])
        try:
            with tarfile.open(snapshot, "r:gz") as tar:
                commit = (tar.pax_headers or {}).get("comment")
                if commit and commit != instance["base_commit"]:
                    raise EnvError(
                        f"{snapshot} is commit {commit}, not the instance's base commit "
                        f"{instance['base_commit']}"
                    )
                tree.mkdir()
                tar.extractall(tree, filter="tar")
            _run([*GIT, "init", "-q"], cwd=tree)
            _run([*GIT, "add", "-A"], cwd=tree)
            _run([*GIT, "commit", "-qm", f"base {instance['base_commit']}"], cwd=tree)
            _run([*GIT, "gc", "-q", "--prune=now"], cwd=tree)  # one pack: faster copies
        except (OSError, tarfile.TarError, EnvError) as exc:
            shutil.rmtree(root, ignore_errors=True)
            raise EnvError(f"cannot prepare the tree of {instance['instance_id']}: {exc}") from None
        _write_json(root / "ready.json", {"snapshot": str(snapshot)})
        return tree

    def install(self, instance: dict[str, Any], env: Path, manifest: dict, tree: Path) -> None:
        """Run the spec's (pre_)install in the tree (trusted, network) at the fixed testbed path,
        into the instance's own copy of the env's venv (`trees/<id>/venv`, a reflink copy where
        the file system has them), bound over the env's venv path: instances of one env never
        undo each other's install."""
        if (tree.parent / "installed").exists():
            return
        own_venv = tree.parent / "venv"
        if own_venv.exists():
            shutil.rmtree(own_venv)
        subprocess.run(["cp", "-a", "--reflink=auto", str(env / "venv"), str(own_venv)], check=True)
        specs = spec.repo_specs(instance["repo"], instance["version"])
        steps = [s for s in specs.get("pre_install", []) if not _system_step(s)]
        if "install" in specs:
            steps.append(specs["install"])
        # byte-compile the tree once: every copy then starts without recompiling it
        steps.append("python -m compileall -q -j 0 . >/dev/null 2>&1 || true")
        venv = env / "venv"
        pip_cache = self.cache / "pip-cache"
        pip_cache.mkdir(exist_ok=True)
        base = manifest.get("base_prefix") or ""
        box = Jail(
            writable=((str(tree), str(self.testbed)), (str(own_venv), str(venv)),
                      (str(pip_cache), str(pip_cache))),
            readonly=((base, base),) if base and not base.startswith(jail.SYSTEM_DIRS) else (),
            cwd=str(self.testbed),
            env={**self.base_env(instance, venv), "PIP_CACHE_DIR": str(pip_cache),
                 **{k: v for k, v in os.environ.items() if k.startswith(("PIP_", "SSL_"))}},
            network=True,
            drop_uid=False,
            limits=Limits(memory_mb=max(self.limits.memory_mb, 16384)),
        )  # fmt: skip
        log_path = tree.parent / "install.log"
        done = jail.run(box, "set -ex\n" + "\n".join(steps), log_path, self.o["build_timeout_s"])
        if done.returncode != 0:
            raise EnvError(
                f"the spec's install of {instance['instance_id']} failed "
                f"({'timeout' if done.timed_out else done.returncode}): {done.log[-2000:]}"
            )
        _run([*GIT, "commit", "--allow-empty", "-qam", "installed"], cwd=tree)
        _run([*GIT, "gc", "-q", "--prune=now"], cwd=tree)
        (tree.parent / "installed").touch()

    def base_env(self, instance: dict[str, Any], venv: Path) -> dict[str, str]:
        return {
            "PATH": f"{venv}/bin:/usr/local/bin:/usr/bin:/bin",
            "VIRTUAL_ENV": str(venv),
            "HOME": "/tmp",
            "TMPDIR": "/tmp",
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "SETUPTOOLS_SCM_PRETEND_VERSION": pretend_version(instance),
        }

    @contextlib.contextmanager
    def prepared(self, instance: dict[str, Any]) -> Iterator[tuple[Path, dict, Path]]:
        """Hold the instance's environment (locked for this process) with its tree installed."""
        self.snapshot(instance["instance_id"])  # before any build: a missing one is cheap to tell
        specs = spec.repo_specs(instance["repo"], instance["version"])
        python = find_python(str(specs.get("python", "3")), self.o["python"])
        with locked(
            self.env_dir(instance, python).with_name(self.env_dir(instance, python).name + ".lock")
        ):
            env, manifest = self.ensure_env(instance)
        with locked(self.cache / "trees" / f"{instance['instance_id']}.lock"):
            tree = self.ensure_tree(instance, env, manifest)
            self.install(instance, env, manifest, tree)
        yield env, manifest, tree

    # -- one patch --------------------------------------------------------------------------
    def evaluate(
        self, instance: dict[str, Any], patch: str, env: Path, manifest: dict, tree: Path,
        harness_spec: Any,
    ) -> Outcome:  # fmt: skip
        started = time.monotonic()
        work = self.cache / "work" / f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        work.mkdir(parents=True)
        try:
            outcome = self._evaluate(instance, patch, env, manifest, tree, harness_spec, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return Outcome(outcome.status, outcome.detail, time.monotonic() - started)

    def _jail(self, instance, env: Path, manifest: dict, work: Path, venv_copy: Path | None):
        venv = env / "venv"  # the path its scripts name; the instance's own copy is bound there
        own_venv = self.cache / "trees" / instance["instance_id"] / "venv"
        readonly = [(str(work / "in"), "/monkeyflow-in")]
        base = manifest.get("base_prefix") or ""
        if base and not base.startswith(jail.SYSTEM_DIRS):
            readonly.append((base, base))
        writable = [(str(work / "tree"), str(self.testbed))]
        if venv_copy is None:
            readonly.append((str(own_venv), str(venv)))
        else:
            writable.append((str(venv_copy), str(venv)))
        env_vars = self.base_env(instance, venv)
        if venv_copy is not None:
            env_vars.update(PIP_NO_INDEX="1", PIP_NO_BUILD_ISOLATION="1", PIP_NO_CACHE_DIR="1")
        return Jail(
            writable=tuple(writable),
            readonly=tuple(readonly),
            cwd=str(self.testbed),
            env=env_vars,
            limits=self.limits,
        )

    def _evaluate(self, instance, patch, env, manifest, tree, harness_spec, work) -> Outcome:
        (work / "in").mkdir()
        (work / "in" / "model.diff").write_text(patch, encoding="utf-8", errors="surrogateescape")
        test_patch = instance["test_patch"]  # the harness feeds it through a heredoc: + "\n"
        (work / "in" / "test.diff").write_text(test_patch + "\n", encoding="utf-8")
        subprocess.run(["cp", "-a", "--reflink=auto", str(tree), str(work / "tree")], check=True)
        jail.give_to_sandbox_user(work / "tree")
        specs = spec.repo_specs(instance["repo"], instance["version"])
        notes: list[str] = []
        box = self._jail(instance, env, manifest, work, None)
        # 1. the patch, by the harness's chain
        done = jail.run(box, apply_script(spec.apply_commands()), work / "apply.log", 120)
        if done.timed_out:
            return Outcome("timeout", "applying the patch took over 120 s")
        method = _applied_with(done.log)
        if done.returncode != 0 or method is None:
            return Outcome("incorrect", "patch does not apply: " + _apply_reason(done.log))
        notes.append(f"applied with `{method}`")
        # 2. reinstall where an editable install does not already see the patched code
        install = specs.get("install", "")
        touched = patched_files(patch)
        if install and ("-e" not in install.split() or any(BUILD_FILES.match(p) for p in touched)):
            venv_copy = work / "venv"
            subprocess.run(
                ["cp", "-a", "--reflink=auto", str(tree.parent / "venv"), str(venv_copy)],
                check=True,
            )
            jail.give_to_sandbox_user(venv_copy)
            box = self._jail(instance, env, manifest, work, venv_copy)
            done = jail.run(
                box, f"set -e\n{install}", work / "reinstall.log", self.o["build_timeout_s"]
            )
            if done.timed_out:
                return Outcome("timeout", "; ".join([*notes, "the reinstall timed out"]))
            if done.returncode != 0:
                return Outcome(
                    "incorrect",
                    "; ".join(
                        [*notes, f"the spec's install fails on the patched tree: {done.log[-300:]}"]
                    ),
                )
            notes.append("reinstalled (no network)")
        else:
            notes.append("editable install sees the patch (no reinstall)")
        # 3. the test patch, after resetting the files it touches
        files = spec.test_files(instance["test_patch"])
        done = jail.run(box, test_patch_script(files), work / "testpatch.log", 120)
        if done.returncode != 0:
            return Outcome(
                "incorrect",
                "; ".join(
                    [
                        *notes,
                        f"the test patch does not apply on top of the patch: {done.log[-300:]}",
                    ]
                ),
            )
        # 4. tests: FAIL_TO_PASS first, then the instance's full test command
        f2p, p2p = list(instance["FAIL_TO_PASS"]), list(instance["PASS_TO_PASS"])
        eval_lines = [c for c in specs.get("eval_commands", []) if not _system_step(c)]
        phases: list[tuple[str, str]] = []
        if self.o["fail_to_pass_first"] and selectable(instance, f2p):
            ids = " ".join(shlex.quote(t) for t in f2p)
            phases.append(("FAIL_TO_PASS", f"{spec.base_test_cmd(instance)} {ids}"))
        phases.append(("all listed", spec.test_command(instance)))
        for name, command in phases:
            wanted = f2p if name == "FAIL_TO_PASS" else f2p + p2p
            statuses, outcome = self._run_tests(
                instance, box, work, eval_lines, command, harness_spec, wanted
            )
            if outcome is not None:
                return Outcome(
                    outcome.status, "; ".join([*notes, f"{name} tests: {outcome.detail}"])
                )
            if name == "FAIL_TO_PASS":
                failed = [t for t in f2p if not spec.test_passed(t, statuses)]
                if failed:
                    return Outcome(
                        "incorrect",
                        "; ".join([*notes, f"FAIL_TO_PASS {failed[0]} does not pass "
                                   f"({statuses.get(failed[0], 'not run')}); PASS_TO_PASS not run"]),
                    )  # fmt: skip
                notes.append(f"{len(f2p)} FAIL_TO_PASS pass")
                continue
            graded = spec.grade(statuses, f2p, p2p)
            if graded.resolved:
                return Outcome(
                    "correct",
                    "; ".join(
                        [
                            *notes,
                            f"resolved: {len(f2p)} FAIL_TO_PASS and {len(p2p)} PASS_TO_PASS pass",
                        ]
                    ),
                )
            parts = []
            if graded.f2p_failed or graded.f2p_missing:
                bad = graded.f2p_failed + graded.f2p_missing
                parts.append(f"{len(bad)} FAIL_TO_PASS do not pass (e.g. {bad[0]})")
            if graded.p2p_failed:
                parts.append(
                    f"{len(graded.p2p_failed)} PASS_TO_PASS fail (e.g. {graded.p2p_failed[0]})"
                )
            return Outcome("incorrect", "; ".join([*notes, "not resolved: " + ", ".join(parts)]))
        return Outcome("error", "no test phase ran")

    def _run_tests(self, instance, box, work, eval_lines, command, harness_spec, wanted):
        """Status map of one test command, re-run up to `reruns` times while not all listed
        tests pass, each test's status then the majority over the runs."""
        runs: list[dict[str, str]] = []
        for _attempt in range(1 + int(self.o["reruns"])):
            start, end = spec.markers()
            script = "\n".join(
                [*eval_lines, f"echo '{start}'", command, "rc=$?", f"echo '{end}'", "exit $rc"]
            )
            log_path = work / f"tests-{len(list(work.glob('tests-*')))}.log"
            done = jail.run(box, script, log_path, self.o["timeout_s"])
            if done.timed_out:
                return {}, Outcome("timeout", f"the test command ran over {self.o['timeout_s']} s")
            log = done.log
            if start not in log or end not in log:
                return {}, Outcome("error", f"the test run printed no markers: {log[-300:]}")
            body = log.split(start, 1)[1].split(end, 1)[0]
            statuses = spec.parse_log(instance["repo"], body, harness_spec) or spec.parse_log(
                instance["repo"], log, harness_spec
            )
            runs.append(statuses)
            if all(spec.test_passed(t, statuses) for t in wanted):
                break
        if len(runs) == 1:
            return runs[0], None
        return majority(runs, wanted), None


def majority(runs: list[dict[str, str]], wanted: list[str]) -> dict[str, str]:
    """Per test: PASSED where it passed in more than half of the runs, else its last failing
    status (the paper's handling of flaky tests)."""
    out: dict[str, str] = {}
    for test in wanted:
        passes = sum(spec.test_passed(test, r) for r in runs)
        if passes * 2 > len(runs):
            out[test] = "PASSED"
        else:
            failing = [r[test] for r in runs if test in r and not spec.test_passed(test, r)]
            if failing:
                out[test] = failing[-1]
    return out


def selectable(instance: dict[str, Any], tests: list[str]) -> bool:
    """Whether the test runner can be given these test ids (pytest node ids of listed files)."""
    if not spec.base_test_cmd(instance).lstrip().startswith("pytest"):
        return False
    return all("::" in t and "\n" not in t for t in tests)


def patched_files(patch: str) -> list[str]:
    found = re.findall(r"^(?:---|\+\+\+) [ab]/(\S+)", patch, flags=re.MULTILINE)
    return sorted(set(found))


def _system_step(command: str) -> bool:
    """Steps that install system packages or use conda: the image's business, not the venv's."""
    return bool(re.search(r"\b(apt-get|apt|conda|yum|dnf|apk)\b", command))


def apply_script(commands: list[str]) -> str:
    lines = ["for cmd in \\"]
    lines += [f"  {shlex.quote(c)} \\" for c in commands]
    lines += [
        "  ; do",
        '  echo ">>> try: $cmd"',
        '  if $cmd /monkeyflow-in/model.diff; then echo ">>> applied: $cmd"; exit 0; fi',
        "  git checkout -q -- . ; git clean -fdq",
        "done",
        "exit 1",
    ]
    return "\n".join(lines)


def _applied_with(log: str) -> str | None:
    found = re.findall(r"^>>> applied: (.+)$", log, flags=re.MULTILINE)
    return found[-1].strip() if found else None


def _apply_reason(log: str) -> str:
    lines = [ln for ln in log.splitlines() if ln.strip() and not ln.startswith(">>> try")]
    interesting = [
        ln
        for ln in lines
        if re.search(r"error|fail|reject|corrupt|malformed|can't|No such|does not", ln, re.I)
    ]
    return " | ".join((interesting or lines)[:4])[:500] or "every apply method failed"


def test_patch_script(files: list[str]) -> str:
    quoted = " ".join(shlex.quote(f) for f in files)
    return "\n".join([
        "set -e",
        f"for f in {quoted}; do",
        "  if git cat-file -e HEAD:\"$f\" 2>/dev/null; then git checkout -q HEAD -- \"$f\"; else rm -f -- \"$f\"; fi",
        "done",
        "git apply -v /monkeyflow-in/test.diff",
    ])  # fmt: skip


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=True))
    os.replace(tmp, path)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


__all__ = ["EnvError", "LocalRuntime", "Outcome", "majority", "sys"]
