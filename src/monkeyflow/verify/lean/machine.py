"""What one machine holds: the memory of a REPL's process tree, and a machine-wide cap on live
REPL workers shared by every process of a user."""

from __future__ import annotations

import fcntl
import os
import sys
import tempfile


def _children(pid: int) -> list[int]:
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                out += [int(c) for c in fh.read().split()]
    except OSError:
        pass
    return out


def anon_rss_bytes(pid: int) -> int | None:
    """Anonymous resident memory of a process and its descendants (bytes; None without /proc).
    File-backed pages (Mathlib's memory-mapped .olean files, shared by all workers) are left out."""
    if not os.path.exists(f"/proc/{pid}/status"):
        return None
    total, todo, seen = 0, [pid], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            with open(f"/proc/{p}/status") as fh:
                for line in fh:
                    if line.startswith("RssAnon:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            continue
        todo += _children(p)
    return total


class WorkerSlots:
    """A machine-wide cap on live REPL workers, across every process of this user: one flock'ed
    file per slot (a lock dies with its holder). Several verify_shard jobs running side by side
    (a local `snakemake` on all cores) then never start more REPLs than the memory holds."""

    def __init__(self, count: int, folder: str | None = None) -> None:
        self.count = max(1, count)
        self.folder = folder or os.path.join(
            tempfile.gettempdir(), f"monkeyflow-lean-slots-{os.getuid()}"
        )
        os.makedirs(self.folder, exist_ok=True)

    def try_acquire(self) -> int | None:
        """A held slot (a file descriptor to release), or None when all are taken."""
        for i in range(self.count):
            fd = os.open(os.path.join(self.folder, f"slot-{i}"), os.O_CREAT | os.O_RDWR, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except OSError:
                os.close(fd)
        return None

    @staticmethod
    def release(fd: int) -> None:
        os.close(fd)  # closing the descriptor drops the lock

    def waiting(self, seconds: float) -> None:
        """Say once, after a while, why nothing happens."""
        if 10.0 <= seconds < 10.5:
            print(
                f"[lean] waiting for one of {self.count} REPL slots of this machine ({self.folder}), "
                "held by other jobs' Lean workers (lean.machine_workers)",
                file=sys.stderr,
            )


def machine_slots(memory_gb: float | None) -> int:
    """REPL workers this machine holds at once: its cores, and its memory / memory_gb."""
    cores = os.cpu_count() or 1
    try:
        total_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return cores
    return max(1, min(cores, int(total_gb // memory_gb))) if memory_gb else cores
