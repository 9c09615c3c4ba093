"""The sandbox launcher of the swebench verifier: one bubblewrap command line per step.

Every step that runs after a patch is applied (applying it, a reinstall the spec asks for, the
test run) runs as `bwrap ... setpriv ... prlimit ... bash -c SCRIPT` with:
- no network (`--unshare-net`: only a loopback device), its own PID/IPC/UTS namespaces, a new
  session, killed with its parent;
- a read-only view of /usr, /etc and the few system folders programs need, the instance's venv
  and the Python it was made from (read-only), a private /tmp (tmpfs), and exactly one writable
  place: the work tree, bound at the fixed path the environment was installed for;
- an unprivileged uid (65534 when started as root: `setpriv` drops every capability, sets
  no_new_privs), so RLIMIT_NPROC binds; as a non-root user it runs as yourself inside a user
  namespace;
- rlimits (`prlimit`): address space, file size, processes, open files, no core files; the host
  enforces the wall clock and kills the whole process group at the limit.

Trusted work (building an environment from its spec, the first install of a tree) runs with
`network=True` and more writable places; `build_argv` is the one builder for both.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

SYSTEM_DIRS = ("/usr", "/etc", "/opt")
# Merged-/usr systems have these as links into /usr; elsewhere they are folders.
SYSTEM_LINKS = ("/bin", "/lib", "/lib32", "/lib64", "/sbin", "/libx32")
UNPRIVILEGED_UID = 65534


@dataclass(frozen=True)
class Limits:
    memory_mb: int = 8192  # RLIMIT_AS
    file_mb: int = 2048  # RLIMIT_FSIZE (also caps the captured log)
    processes: int = 1024  # RLIMIT_NPROC (of the sandbox uid)
    open_files: int = 4096  # RLIMIT_NOFILE


@dataclass(frozen=True)
class Jail:
    """What one sandboxed step sees. Paths are host paths; `binds` map host -> inside."""

    writable: tuple[tuple[str, str], ...] = ()
    readonly: tuple[tuple[str, str], ...] = ()
    cwd: str = "/"
    env: dict[str, str] = field(default_factory=dict)
    network: bool = False
    whole_host: bool = False  # trusted steps: the host's / read-only underneath the binds
    limits: Limits = Limits()
    drop_uid: bool = True


def build_argv(jail: Jail, command: list[str], *, as_root: bool | None = None) -> list[str]:
    """The bwrap command line that runs `command` in `jail`."""
    root = os.geteuid() == 0 if as_root is None else as_root
    argv = ["bwrap", "--die-with-parent", "--new-session", "--unshare-pid", "--unshare-ipc"]
    argv += ["--unshare-uts", "--unshare-cgroup-try"]
    if not root:
        argv += ["--unshare-user"]
    if not jail.network:
        argv += ["--unshare-net"]
    if jail.whole_host:
        argv += ["--ro-bind", "/", "/"]
    else:
        for d in SYSTEM_DIRS:
            argv += ["--ro-bind-try", d, d]
        for d in SYSTEM_LINKS:
            if os.path.islink(d):
                argv += ["--symlink", os.readlink(d), d]
            elif os.path.isdir(d):
                argv += ["--ro-bind", d, d]
    argv += ["--dev", "/dev", "--proc", "/proc", "--perms", "1777", "--tmpfs", "/tmp"]
    if not jail.whole_host:
        # bwrap makes missing parents of a mount point 0700: traversable by root only
        parents = {
            str(parent)
            for _, inside in (*jail.readonly, *jail.writable)
            for parent in Path(inside).parents
            if str(parent) not in ("/", "/tmp") and not str(parent).startswith(SYSTEM_DIRS)
        }
        for parent in sorted(parents, key=lambda p: (p.count("/"), p)):
            argv += ["--perms", "0755", "--dir", parent]
    for host, inside in jail.readonly:
        argv += ["--ro-bind", host, inside]
    for host, inside in jail.writable:
        argv += ["--bind", host, inside]
    argv += ["--chdir", jail.cwd, "--clearenv"]
    for key, value in sorted(jail.env.items()):
        argv += ["--setenv", key, value]
    inner = list(command)
    lim = jail.limits
    inner = [
        "prlimit",
        f"--as={lim.memory_mb * 2**20}",
        f"--fsize={lim.file_mb * 2**20}",
        f"--nproc={lim.processes}",
        f"--nofile={lim.open_files}",
        "--core=0",
        "--",
        *inner,
    ]
    if root and jail.drop_uid:
        uid = str(UNPRIVILEGED_UID)
        inner = [
            "setpriv",
            f"--reuid={uid}",
            f"--regid={uid}",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--no-new-privs",
            "--",
            *inner,
        ]
    return argv + ["--", *inner]


@dataclass(frozen=True)
class Finished:
    returncode: int | None  # None: killed at the wall-clock limit
    seconds: float
    log: str

    @property
    def timed_out(self) -> bool:
        return self.returncode is None


MAX_LOG_BYTES = 32 * 2**20  # the part of a log that is read back (its head and tail)


def read_log(path: Path) -> str:
    size = path.stat().st_size
    with open(path, "rb") as fh:
        if size <= MAX_LOG_BYTES:
            data = fh.read()
        else:
            head = fh.read(MAX_LOG_BYTES // 2)
            fh.seek(size - MAX_LOG_BYTES // 2)
            data = head + b"\n... (log cut) ...\n" + fh.read()
    return data.decode("utf-8", "replace")


def run(jail: Jail, script: str, log_path: Path, timeout_s: float) -> Finished:
    """Run a bash script in the jail, stdout+stderr to `log_path`, within `timeout_s`."""
    argv = build_argv(jail, ["bash", "-c", script])
    started = time.monotonic()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        try:
            code: int | None = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            code = None
            with _suppress():
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return Finished(code, time.monotonic() - started, read_log(log_path))


class _suppress:
    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        return kind is not None and issubclass(kind, ProcessLookupError | PermissionError)


def missing_tools() -> list[str]:
    """The programs the launcher needs that are not on PATH."""
    return [
        t for t in ("bwrap", "prlimit", "setpriv", "git", "patch", "bash") if not shutil.which(t)
    ]


def give_to_sandbox_user(path: Path) -> None:
    """Make a work tree writable by the sandbox uid (when started as root)."""
    if os.geteuid() == 0:
        subprocess.run(
            ["chown", "-R", f"{UNPRIVILEGED_UID}:{UNPRIVILEGED_UID}", str(path)], check=True
        )
