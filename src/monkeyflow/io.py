"""Atomic writes and the file formats between stages: jsonl(.zst) and parquet.

Every result file checks itself: a `.jsonl.zst` carries zstd's content checksum and a parquet
file a CRC per page, and the readers here verify them, so a truncated or garbled file raises
`CorruptFileError` naming the file and how to regenerate it (never a bare decoder error, never
silently wrong rows). Files are written to a temporary name beside the target and renamed, with
the permissions the umask gives (0644 under umask 022), like any other file the user makes.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import zstandard

ZSTD_LEVEL = 10
# Where a result file comes from, for the message that says how to regenerate a damaged one.
_PRODUCERS = (
    (re.compile(r"/samples/shard-\d+\.jsonl\.zst$"), "sample_shard"),
    (re.compile(r"/verdicts/shard-\d+\.parquet$"), "verify_shard"),
    (re.compile(r"/counts\.parquet$"), "aggregate"),
    (re.compile(r"^data/problems/|/data/problems/"), "prepare_problems"),
    (re.compile(r"/summary/"), "the analysis rule that writes it"),
)


class CorruptFileError(ValueError):
    """A file that cannot be read back as what it claims to be; the message names the file and
    says how to regenerate it."""

    def __init__(self, path: str | os.PathLike, problem: str) -> None:
        self.path = str(path)
        producer = next((rule for pattern, rule in _PRODUCERS if pattern.search(self.path)), None)
        if producer:
            target = self.path
            match = re.search(r"(?:^|/)((?:results|data)/.*)$", target)
            target = match.group(1) if match else target
            fix = (
                f"delete it and run `snakemake {target}` (rule {producer} regenerates it), then "
                "`snakemake`; `monkeyflow check` lists every damaged file"
            )
        else:
            fix = "regenerate it or restore it from a copy"
        super().__init__(f"{self.path}: {problem}; {fix}")


# -- permissions --------------------------------------------------------------------------------
_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process umask (read by setting and restoring it)."""
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    A crash or exception leaves no partial file at `path` (the temp file is removed). The file
    gets the permissions a plain `open()` would (0666 minus the umask), not mkstemp's 0600.
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
        os.chmod(tmp_path, 0o666 & ~current_umask())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


# -- text ---------------------------------------------------------------------------------------
def encode_text(text: str) -> bytes:
    """UTF-8 bytes of any Python string, lone surrogates included (lossless: a model can emit
    them, and two different completions must never hash alike)."""
    return text.encode("utf-8", "surrogatepass")


def printable(text: str | None) -> str | None:
    """`text` with anything UTF-8 cannot store (lone surrogates) written as a backslash escape,
    for fields that describe (extracted answers, details) rather than identify."""
    if text is None:
        return None
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _encode_jsonl(rows: Iterable[dict[str, Any]]) -> bytes:
    buf = io.StringIO()
    for row in rows:
        # ensure_ascii keeps lone surrogates as \\udcxx escapes (valid JSON, lossless); other text
        # stays readable UTF-8. The escapes appear only for such strings, so ordinary shards keep
        # their bytes.
        line = json.dumps(row, ensure_ascii=False, sort_keys=True)
        try:
            line.encode("utf-8")
        except UnicodeEncodeError:
            line = json.dumps(row, ensure_ascii=True, sort_keys=True)
        buf.write(line)
        buf.write("\n")
    return buf.getvalue().encode("utf-8")


# -- jsonl --------------------------------------------------------------------------------------
def write_jsonl(path: str | os.PathLike, rows: Iterable[dict[str, Any]]) -> None:
    """Write rows as JSON lines (zstd-compressed, with its checksum, if the name ends in .zst),
    atomically.

    Keys are sorted and compression is single-threaded at a fixed level, so the same rows
    always give the same bytes.
    """
    data = _encode_jsonl(rows)
    if str(path).endswith(".zst"):
        data = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True).compress(data)
    write_bytes_atomic(path, data)


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read JSON lines (zstd-compressed if the name ends in .zst); errors name the file (and the
    line, for text that is not UTF-8 or not JSON)."""
    return list(iter_jsonl(path))


def _raw_lines(path: str | os.PathLike, chunk_bytes: int = 1 << 20) -> Iterator[bytes]:
    """The lines of a file (decompressed on the fly if .zst), in bounded memory; a truncated or
    damaged zstd file raises CorruptFileError once the damage is reached."""
    compressed = str(path).endswith(".zst")
    decompressor = zstandard.ZstdDecompressor().decompressobj() if compressed else None
    parts: list[bytes] = []  # the line being read, in pieces (a long line is never re-copied)
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(chunk_bytes)
            if not chunk:
                break
            if decompressor is not None:
                try:
                    chunk = decompressor.decompress(chunk)
                except zstandard.ZstdError as exc:
                    raise CorruptFileError(path, f"not a complete zstd file ({exc})") from None
            if b"\n" not in chunk:
                parts.append(chunk)
                continue
            first, *lines, rest = chunk.split(b"\n")
            parts.append(first)
            yield b"".join(parts)
            yield from lines
            parts = [rest]
    if decompressor is not None and not decompressor.eof:
        raise CorruptFileError(
            path, "not a complete zstd file (it ends before its last frame does)"
        )
    tail = b"".join(parts)
    if tail:
        yield tail


def iter_jsonl(path: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """The rows of a JSON lines file one at a time (see `read_jsonl`), in memory bounded by the
    longest line rather than by the file."""
    for lineno, line in enumerate(_raw_lines(path), start=1):
        if not line.strip():
            continue
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(
                f"{path}:{lineno}: not UTF-8 text (byte {exc.start + 1} of the line is {line[exc.start]:#04x}); "
                "save the file as UTF-8"
            ) from None
        try:
            yield json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None


def write_parquet(path: str | os.PathLike, frame: Any) -> None:
    """Write a polars DataFrame to parquet atomically, with a CRC on every page."""
    import pyarrow.parquet as pq

    table = frame.to_arrow()
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, write_page_checksum=True, compression="zstd")


class ParquetStreamWriter:
    """Write a parquet file in parts (row groups) that all share one schema, atomically: the file
    appears at `path`, complete and with a CRC on every page, only when the block succeeds."""

    def __init__(self, path: str | os.PathLike, schema: Any) -> None:
        self.path, self.schema = path, schema
        self._atomic = atomic_path(path)
        self._writer: Any = None

    def __enter__(self) -> ParquetStreamWriter:
        import polars as pl
        import pyarrow.parquet as pq

        self.tmp = self._atomic.__enter__()
        arrow_schema = pl.DataFrame(schema=self.schema).to_arrow().schema
        self._writer = pq.ParquetWriter(
            self.tmp, arrow_schema, write_page_checksum=True, compression="zstd"
        )
        return self

    def write(self, frame: Any) -> None:
        """Append a polars DataFrame with the writer's schema."""
        self._writer.write_table(frame.to_arrow())

    def __exit__(self, *exc: Any) -> Any:
        self._writer.close()
        return self._atomic.__exit__(*exc)


def read_parquet(path: str | os.PathLike, columns: list[str] | None = None) -> Any:
    """A parquet file as a polars DataFrame, its page checksums verified; a damaged or
    truncated file raises CorruptFileError naming it."""
    import polars as pl
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not Path(path).exists():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        table = pq.read_table(path, columns=columns, page_checksum_verification=True)
    except (OSError, pa.ArrowException) as exc:
        raise CorruptFileError(path, f"not a readable parquet file ({exc})") from None
    return pl.from_arrow(table)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_bytes_atomic(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode("utf-8"))
