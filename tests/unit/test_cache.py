"""The verdict cache: lock-free packs that many processes write at once (cluster filesystems)."""

from __future__ import annotations

import multiprocessing as mp
import os
import random

import pytest

from monkeyflow.cache import VerdictCache, cache_scope
from monkeyflow.records import Check


def check_for(key: str) -> Check:
    """The verdict every writer records for `key` (so a wrong or mixed-up entry is visible)."""
    status = "correct" if int(key[-1], 16) % 2 else "incorrect"
    return Check(status, extracted=f"x{key}", method="m", detail=f"d{key}")


def keys(n: int, start: int = 0) -> list[str]:
    return [f"{i:064x}" for i in range(start, start + n)]


def test_roundtrip_scopes_and_only_definite_verdicts(tmp_path):
    cache = VerdictCache(tmp_path)
    a, b = (
        cache_scope({"name": "math", "version": "1"}),
        cache_scope({"name": "math", "version": "2"}),
    )
    items = [(k, check_for(k)) for k in keys(10)] + [
        ("t" * 64, Check("timeout")),
        ("e" * 64, Check("error")),
    ]
    cache.put_many(items, a)
    got = cache.get_many([k for k, _ in items], a)
    assert got == {k: check_for(k) for k in keys(10)}  # timeouts and errors are never cached
    assert cache.get_many(keys(10), b) == {}  # another verifier version sees nothing
    assert all(
        oct(p.stat().st_mode & 0o777) == oct(0o666 & ~0o022) for p in (tmp_path / a).iterdir()
    )


def test_a_damaged_pack_is_ignored_never_believed(tmp_path, capsys):
    cache = VerdictCache(tmp_path)
    scope = cache_scope("s")
    cache.put_many([(k, check_for(k)) for k in keys(5)], scope)
    (pack,) = (tmp_path / scope).glob("pack-*.parquet")
    data = bytearray(pack.read_bytes())
    data[len(data) // 2] ^= 0xFF
    pack.write_bytes(bytes(data))
    assert VerdictCache(tmp_path).get_many(keys(5), scope) == {}
    assert "ignoring" in capsys.readouterr().err
    cache.put_many([(k, check_for(k)) for k in keys(5)], scope)
    cache.compact(scope)  # the damaged pack is dropped, the good one kept
    assert VerdictCache(tmp_path).get_many(keys(5), scope) == {k: check_for(k) for k in keys(5)}
    assert len(list((tmp_path / scope).glob("pack-*.parquet"))) == 1


def test_write_failures_warn_and_never_raise(tmp_path, capsys):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    cache = VerdictCache(blocked)
    cache.put_many([(k, check_for(k)) for k in keys(3)], "s")
    assert cache.write_failures == 1 and "continuing without caching" in capsys.readouterr().err
    assert cache.get_many(keys(3), "s") == {}


def _writer(root: str, seed: int, rounds: int, out) -> None:
    rng = random.Random(seed)
    cache = VerdictCache(root, compact_at=4)
    scope = cache_scope("shared")
    seen = 0
    for _ in range(rounds):
        batch = keys(20, start=rng.randrange(0, 400))
        cache.put_many([(k, check_for(k)) for k in batch], scope)
        got = cache.get_many(batch, scope)
        # what this writer just stored is there, and every entry is the right one
        assert got == {k: check_for(k) for k in batch}, (seed, len(got))
        seen += len(got)
    out.put((seed, seen, cache.write_failures))


@pytest.mark.skipif(os.cpu_count() is None, reason="needs processes")
def test_many_concurrent_writers_lose_nothing(tmp_path):
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), seed, 15, out)) for seed in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
    results = [out.get(timeout=120) for _ in procs]  # generous: CI machines are loaded
    assert all(failures == 0 for _, _, failures in results)
    # every key any writer stored is in the cache exactly as written, after all the compactions
    written = set()
    for seed in range(8):
        rng = random.Random(seed)
        for _ in range(15):
            written.update(keys(20, start=rng.randrange(0, 400)))
    final = VerdictCache(tmp_path).get_many(sorted(written), cache_scope("shared"))
    assert final == {k: check_for(k) for k in written}
    assert not list((tmp_path / cache_scope("shared")).glob(".pack-*"))  # no temp file left
