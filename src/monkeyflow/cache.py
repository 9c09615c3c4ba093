"""The verdict cache: definite verdicts keyed by `stages.verification_key`, shared by every
verify_shard job and `monkeyflow verify`, safe on cluster filesystems.

Hundreds of SLURM jobs write it at once, on NFS, Lustre or GPFS, where file locks are not to be
trusted (SQLite's own documentation says so for its locking). So nothing here locks: the cache
is a folder of immutable pack files, one per writer call, each written to a temporary name and
renamed (rename within a folder is atomic on those filesystems) to a name derived from its bytes
(`pack-<sha256 prefix>.parquet`), which readers check, so a damaged pack is ignored (its verdicts
are computed again), never believed.

    <root>/<scope>/pack-<digest>.parquet      scope = hash of the verifier's name, version, options

A reader reads every pack of its scope (only the key column unless a key matches). When a scope
holds more than `COMPACT_AT` packs, the writer that notices merges them into one pack and then
deletes the ones it merged: an entry is removed only after it is in a renamed pack, so nothing
is lost when two writers compact at once (at worst an entry sits in two packs), and a reader
that meets a pack deleted under it lists the folder again.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from monkeyflow.hashing import content_hash
from monkeyflow.io import current_umask, printable
from monkeyflow.records import Check

COMPACT_AT = 32
_COLUMNS = ("key", "status", "extracted", "method", "detail")
_DEFINITE = ("correct", "incorrect")


def cache_scope(identity: Any) -> str:
    """The folder name of a verifier identity's verdicts."""
    return content_hash(identity, length=16)


class VerdictCache:
    """Verdicts by key under `root`; see the module docstring. Only definite verdicts
    (correct/incorrect) are stored: a timeout or an infrastructure error is retried next time.

    Failures to write (a full disk, a read-only folder) never fail the caller: they are
    reported on stderr and counted in `write_failures`; the verdicts themselves are kept by the
    caller."""

    def __init__(self, root: str | os.PathLike, compact_at: int = COMPACT_AT) -> None:
        self.root = Path(root)
        self.compact_at = compact_at
        self.write_failures = 0
        self.skipped_packs: list[str] = []

    # -- reading -----------------------------------------------------------------------------
    def get_many(self, keys: Sequence[str], scope: str) -> dict[str, Check]:
        """The cached checks of those keys that are in the cache."""
        import polars as pl

        wanted = set(keys)
        found: dict[str, Check] = {}
        folder = self.root / scope
        if not wanted or not folder.is_dir():
            return found
        done: set[Path] = set()
        # A pack deleted under us was merged into a newer pack first: list again until a listing
        # holds nothing unread (bounded: under endless churn, a miss only costs a re-check).
        for _round in range(50):
            vanished = False
            unread = [p for p in sorted(folder.glob("pack-*.parquet")) if p not in done]
            for pack in unread:
                done.add(pack)
                try:
                    frame = self._load(pack)
                except FileNotFoundError:
                    vanished = True
                    continue
                if frame is None:
                    continue
                hits = frame.filter(pl.col("key").is_in(list(wanted - found.keys())))
                for key, status, extracted, method, detail in hits.select(_COLUMNS).iter_rows():
                    if status in _DEFINITE:
                        found[key] = Check(status, extracted, method, detail or "")
                if len(found) == len(wanted):
                    return found
            if not vanished:
                break
        return found

    def _load(self, pack: Path):
        """A pack's rows, or None (reported) when its bytes do not match its name."""
        import io

        import polars as pl
        import pyarrow.parquet as pq

        data = pack.read_bytes()  # FileNotFoundError propagates: the caller lists again
        if not pack.name.startswith("pack-" + hashlib.sha256(data).hexdigest()[:24]):
            self._skip(pack, "its bytes do not match its name")
            return None
        try:
            return pl.from_arrow(pq.read_table(io.BytesIO(data), page_checksum_verification=True))
        except Exception as exc:  # noqa: BLE001 - any unreadable pack is skipped, not believed
            self._skip(pack, f"unreadable ({type(exc).__name__})")
            return None

    def _skip(self, pack: Path, why: str) -> None:
        if str(pack) not in self.skipped_packs:
            self.skipped_packs.append(str(pack))
            print(
                f"[cache] ignoring {pack}: {why}; its verdicts will be computed again",
                file=sys.stderr,
            )

    # -- writing -----------------------------------------------------------------------------
    def put_many(self, items: Iterable[tuple[str, Check]], scope: str) -> None:
        """Add the definite checks among `items` as one new pack (then compact if due)."""
        rows = {k: c for k, c in items if c.status in _DEFINITE}
        if not rows:
            return
        folder = self.root / scope
        try:
            self._write_pack(folder, rows)
            packs = list(folder.glob("pack-*.parquet"))
            if len(packs) > self.compact_at:
                self.compact(scope)
        except OSError as exc:
            self.write_failures += 1
            print(
                f"[cache] could not write to the verdict cache {self.root} ({exc}); "
                "continuing without caching these verdicts",
                file=sys.stderr,
            )

    def _write_pack(self, folder: Path, rows: dict[str, Check]) -> Path:
        import pyarrow as pa
        import pyarrow.parquet as pq

        folder.mkdir(parents=True, exist_ok=True)
        keys = sorted(rows)
        table = pa.table(
            {
                "key": keys,
                "status": [rows[k].status for k in keys],
                "extracted": [printable(rows[k].extracted) for k in keys],
                "method": [rows[k].method for k in keys],
                "detail": [printable(rows[k].detail) for k in keys],
            }
        )
        fd, tmp = tempfile.mkstemp(prefix=".pack-", suffix=".tmp", dir=folder)
        os.close(fd)
        try:
            pq.write_table(table, tmp, write_page_checksum=True, compression="zstd")
            data = Path(tmp).read_bytes()
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o666 & ~current_umask())
            target = folder / f"pack-{hashlib.sha256(data).hexdigest()[:24]}.parquet"
            os.replace(tmp, target)
            return target
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def compact(self, scope: str) -> None:
        """Merge the scope's packs into one; delete the merged ones only after it is renamed."""
        import polars as pl

        folder = self.root / scope
        packs = sorted(folder.glob("pack-*.parquet"))
        if len(packs) < 2:
            return
        frames, merged = [], []
        for pack in packs:
            try:
                frame = self._load(pack)
            except FileNotFoundError:
                continue  # another writer merged it already
            merged.append(pack)  # unreadable packs are dropped: nothing in them can be believed
            if frame is not None:
                frames.append(frame.select(_COLUMNS))
        if frames:
            union = pl.concat(frames).unique("key", keep="first").sort("key")
            rows = {
                key: Check(status, extracted, method, detail or "")
                for key, status, extracted, method, detail in union.iter_rows()
            }
            target = self._write_pack(folder, rows)
        else:
            target = None
        for pack in merged:
            if pack != target:
                try:
                    pack.unlink()
                except FileNotFoundError:
                    pass

    def close(self) -> None:  # nothing is held open between calls
        pass
