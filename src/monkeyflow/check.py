"""`monkeyflow check`: validate a results tree file by file.

For every run folder (`results/{dataset}/{model}/{run}/`): each sample shard decodes (zstd
checksum), holds valid sample records and exactly the indices `[i*S, (i+1)*S)` of every problem
(S = the run's shard size from run.json); each verdict shard reads (page checksums), has the
verdict columns and statuses, and judges exactly the samples of its shard; counts.parquet reads
and has its columns. Summary tables and verdict-cache packs are checked for readability.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from monkeyflow.io import CorruptFileError, read_jsonl, read_parquet
from monkeyflow.records import VERDICT_COLUMNS, VERDICT_STATUSES, RecordError, Sample

_SHARD = re.compile(r"^shard-(\d+)\.(jsonl\.zst|parquet)$")
COUNT_COLUMNS = ("problem_id", "n", "c", "c_strict", "n_timeout", "n_error")


@dataclass
class Finding:
    path: str
    kind: str
    ok: bool
    detail: str


def _problem(path: Path, kind: str, detail: str) -> Finding:
    return Finding(str(path), kind, False, detail)


def _read_error(exc: Exception) -> str:
    text = str(exc)
    return text.split(": ", 1)[1] if isinstance(exc, CorruptFileError) and ": " in text else text


def check_samples(path: Path, shard: int, shard_size: int | None) -> tuple[Finding, set | None]:
    try:
        rows = read_jsonl(path)
        samples = [Sample.from_dict(r, where=f"line {i + 1}") for i, r in enumerate(rows)]
    except (CorruptFileError, RecordError, ValueError) as exc:
        return _problem(path, "samples", _read_error(exc)), None
    by_problem: dict[str, list[int]] = defaultdict(list)
    for s in samples:
        by_problem[s.problem_id].append(s.sample_index)
    if not by_problem:
        return _problem(path, "samples", "no samples"), set()
    if shard_size is not None:
        want = list(range(shard * shard_size, (shard + 1) * shard_size))
        bad = [pid for pid, idx in by_problem.items() if sorted(idx) != want]
        if bad:
            got = sorted(by_problem[bad[0]])
            return _problem(
                path,
                "samples",
                f"problem {bad[0]} has indices {got[:6]}..., expected {want[0]}..{want[-1]}",
            ), None
    sizes = {len(v) for v in by_problem.values()}
    if len(sizes) > 1:
        return _problem(
            path, "samples", f"problems have different sample counts {sorted(sizes)}"
        ), None
    keys = {(s.problem_id, s.sample_index) for s in samples}
    if len(keys) != len(samples):
        return _problem(path, "samples", "a (problem, sample index) pair repeats"), None
    return Finding(
        str(path), "samples", True, f"{len(samples)} samples, {len(by_problem)} problems"
    ), keys


def check_verdicts(path: Path, expected: set | None) -> Finding:
    try:
        frame = read_parquet(path)
    except (CorruptFileError, FileNotFoundError) as exc:
        return _problem(path, "verdicts", _read_error(exc))
    missing = [c for c in VERDICT_COLUMNS if c not in frame.columns]
    if missing:
        return _problem(path, "verdicts", f"missing columns {missing}")
    statuses = set(frame["status"].unique().to_list()) - set(VERDICT_STATUSES)
    if statuses:
        return _problem(path, "verdicts", f"unknown statuses {sorted(map(str, statuses))}")
    keys = set(zip(frame["problem_id"].to_list(), frame["sample_index"].to_list(), strict=True))
    if len(keys) != frame.height:
        return _problem(path, "verdicts", "a (problem, sample index) pair repeats")
    if expected is not None and keys != expected:
        return _problem(
            path, "verdicts",
            f"judges {len(keys)} samples, but its sample shard holds {len(expected)} "
            f"({len(expected - keys)} not judged, {len(keys - expected)} not in the shard)",
        )  # fmt: skip
    return Finding(str(path), "verdicts", True, f"{frame.height} verdicts")


def check_table(path: Path, kind: str, columns: tuple[str, ...] = ()) -> Finding:
    try:
        frame = read_parquet(path)
    except (CorruptFileError, FileNotFoundError) as exc:
        return _problem(path, kind, _read_error(exc))
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        return _problem(path, kind, f"missing columns {missing}")
    return Finding(str(path), kind, True, f"{frame.height} rows")


def check_run(folder: Path) -> list[Finding]:
    findings: list[Finding] = []
    shard_size = None
    run_json = folder / "run.json"
    if run_json.exists():
        try:
            shard_size = int(json.loads(run_json.read_text())["spec"]["sampling"]["shard_size"])
        except (ValueError, KeyError, TypeError) as exc:
            findings.append(_problem(run_json, "run", f"unreadable run description ({exc})"))
    samples: dict[int, set | None] = {}
    for path in sorted((folder / "samples").glob("shard-*.jsonl.zst"), key=_shard_number):
        finding, keys = check_samples(path, _shard_number(path), shard_size)
        findings.append(finding)
        samples[_shard_number(path)] = keys
    for path in sorted((folder / "verdicts").glob("shard-*.parquet"), key=_shard_number):
        i = _shard_number(path)
        if i not in samples:
            findings.append(_problem(path, "verdicts", "no sample shard of that number"))
            continue
        findings.append(check_verdicts(path, samples[i]))
    if (folder / "counts.parquet").exists():
        findings.append(check_table(folder / "counts.parquet", "counts", COUNT_COLUMNS))
    return findings


def _shard_number(path: Path) -> int:
    m = _SHARD.match(path.name)
    return int(m.group(1)) if m else -1


def check_cache(root: Path) -> list[Finding]:
    findings = []
    for pack in sorted(root.glob("*/pack-*.parquet")):
        digest = hashlib.sha256(pack.read_bytes()).hexdigest()[:24]
        if not pack.name.startswith(f"pack-{digest}"):
            findings.append(
                _problem(
                    pack,
                    "cache",
                    "bytes do not match the name (ignored by readers; safe to delete)",
                )
            )
    if not findings and root.exists():
        findings.append(
            Finding(str(root), "cache", True, f"{len(list(root.glob('*/pack-*.parquet')))} packs")
        )
    return findings


def check_tree(results: str | Path = "results") -> list[Finding]:
    """Every finding for a results folder (see the module docstring)."""
    results = Path(results)
    if not results.is_dir():
        return [_problem(results, "folder", "not a folder")]
    findings: list[Finding] = []
    runs = {p.parent.parent for p in results.glob("*/*/*/samples")} | {
        p.parent for p in results.glob("*/*/*/run.json")
    }
    for run in sorted(runs):
        findings.extend(check_run(run))
    for table in sorted((results / "summary").glob("*.parquet")):
        findings.append(check_table(table, "summary"))
    findings.extend(check_cache(results / "cache" / "verdicts"))
    return findings
