"""Atomic writes and the file formats between stages: jsonl(.zst) and parquet."""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import zstandard

ZSTD_LEVEL = 10


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    A crash or exception leaves no partial file at `path` (the temp file is removed).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def _encode_jsonl(rows: Iterable[dict[str, Any]]) -> bytes:
    buf = io.StringIO()
    for row in rows:
        buf.write(json.dumps(row, ensure_ascii=False, sort_keys=True))
        buf.write("\n")
    return buf.getvalue().encode("utf-8")


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict[str, Any]]) -> None:
    """Write rows as JSON lines (zstd-compressed if the name ends in .zst), atomically.

    Keys are sorted and compression is single-threaded at a fixed level, so the same rows
    always give the same bytes.
    """
    data = _encode_jsonl(rows)
    if str(path).endswith(".zst"):
        data = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True).compress(data)
    write_bytes_atomic(path, data)


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read JSON lines (zstd-compressed if the name ends in .zst); errors name the line."""
    raw = Path(path).read_bytes()
    if str(path).endswith(".zst"):
        raw = zstandard.ZstdDecompressor().decompress(raw, max_output_size=1 << 34)
    rows = []
    for lineno, line in enumerate(raw.decode("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
    return rows


def write_parquet(path: str | os.PathLike, frame: Any) -> None:
    """Write a polars DataFrame to parquet atomically."""
    with atomic_path(path) as tmp:
        frame.write_parquet(tmp)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_bytes_atomic(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode("utf-8"))
