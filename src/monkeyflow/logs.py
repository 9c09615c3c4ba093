"""Send a job's output to its log file (at the file-descriptor level, so library and C output
lands there too) while keeping errors visible to the caller."""

from __future__ import annotations

import contextlib
import os
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def log_to(path: str | os.PathLike | None) -> Iterator[None]:
    """Redirect stdout and stderr into `path` for the block; an exception is written to the log
    and re-raised with its message printed to the original stderr as well."""
    if path is None:
        yield
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "a", buffering=1) as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        except BaseException as exc:
            traceback.print_exc()
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            print(f"error: {type(exc).__name__}: {exc} (log: {path})", file=sys.stderr)
            raise
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB (VmHWM). Not `getrusage().ru_maxrss`: Linux
    carries that over from the process that started this one (a child of a 1.6 GB pytest
    reports 1.6 GB before it allocates anything)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
