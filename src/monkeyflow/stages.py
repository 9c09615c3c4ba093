"""One function per workflow stage. Each reads and writes plain files, so the Snakemake scripts
stay thin and the command line and tests can call the same code."""

from __future__ import annotations

import hashlib
import itertools
import os
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import polars as pl

from monkeyflow.cache import VerdictCache, cache_scope
from monkeyflow.data import DatasetSpec, get_dataset
from monkeyflow.hashing import canonical_json
from monkeyflow.io import (
    ParquetStreamWriter,
    encode_text,
    iter_jsonl,
    printable,
    read_jsonl,
    read_parquet,
    write_json,
    write_jsonl,
    write_parquet,
)
from monkeyflow.metrics.passk import pass_at_k
from monkeyflow.models import read_manifest
from monkeyflow.records import VERDICT_COLUMNS, Check, Problem, RecordError, Sample, Verdict
from monkeyflow.sampling.base import ModelSpec, SamplingParams, ShardRequest, get_backend
from monkeyflow.verify import InfrastructureFailure, Verifier, check_safely, get_verifier

# The verdict file's columns (records.VERDICT_COLUMNS) with their parquet types.
VERDICT_SCHEMA = {
    name: pl.Int64 if name == "sample_index" else pl.String for name in VERDICT_COLUMNS
}
# Where the workflow and `monkeyflow verify` keep the verdict cache, under the project folder.
DEFAULT_CACHE_PATH = "results/cache/verdicts"
# Extraction methods that guess (e.g. the last number in a ramble): excluded from strict counts.
LENIENT_METHODS = ("fallback",)


# -- problems ------------------------------------------------------------------------------------
def prepare_problems(spec: DatasetSpec, out: str | os.PathLike) -> list[Problem]:
    """Write the canonical problems of a dataset (sub)set as jsonl; raises DatasetError."""
    problems = get_dataset(spec).problems()
    write_jsonl(out, (p.to_dict() for p in problems))
    return problems


def read_problems(path: str | os.PathLike) -> list[Problem]:
    return [
        Problem.from_dict(row, where=f"{path}: problem {i}")
        for i, row in enumerate(read_jsonl(path))
    ]


# -- sampling ------------------------------------------------------------------------------------
def sample_shard(
    problems_path: str | os.PathLike,
    model_dir: str | os.PathLike | None,
    spec: ModelSpec,
    params: SamplingParams,
    run: str,
    shard: int,
    shard_size: int,
    out: str | os.PathLike,
    stats_out: str | os.PathLike | None = None,
) -> list[Sample]:
    """Draw samples [shard*shard_size, (shard+1)*shard_size) of every problem; write jsonl.zst.

    `model_dir` is the prepared model folder; empty for backends that load no weights (replay),
    which then get the spec's path."""
    problems = read_problems(problems_path)
    weights = read_manifest(model_dir)["weights"] if model_dir else spec.path
    backend = get_backend(spec, weights)
    start = shard * shard_size
    requests = [ShardRequest(problem=p, start=start, count=shard_size) for p in problems]
    started = time.monotonic()
    try:
        samples = backend.generate(requests, params, run)
    finally:
        backend.close()
    elapsed = time.monotonic() - started
    expected = {(p.problem_id, i) for p in problems for i in range(start, start + shard_size)}
    got = {(s.problem_id, s.sample_index) for s in samples}
    if got != expected or len(samples) != len(expected):
        raise RuntimeError(
            f"backend {spec.backend} returned {len(samples)} samples, expected {len(expected)}"
        )
    samples.sort(key=lambda s: (s.problem_id, s.sample_index))
    write_jsonl(out, (s.to_dict() for s in samples))
    if stats_out is not None:
        tokens = sum(s.completion_tokens or 0 for s in samples)
        write_json(
            stats_out,
            {
                "samples": len(samples),
                "completion_tokens": tokens,
                "prompt_tokens": sum(s.prompt_tokens or 0 for s in samples),
                "seconds": round(elapsed, 3),
                "samples_per_s": round(len(samples) / elapsed, 3) if elapsed else None,
                "tokens_per_s": round(tokens / elapsed, 3) if elapsed else None,
            },
        )
    return samples


def read_samples(path: str | os.PathLike) -> list[Sample]:
    return list(iter_samples(path))


def iter_samples(path: str | os.PathLike) -> Iterator[Sample]:
    """The samples of a shard one at a time (bounded memory, see `verify_shard`)."""
    for i, row in enumerate(iter_jsonl(path)):
        yield Sample.from_dict(row, where=f"{path}: line {i + 1}")


# -- verification --------------------------------------------------------------------------------
def verification_key(identity: dict[str, Any], problem: Problem, completion: str) -> str:
    """The cache key of a verdict: the verifier's name, version and verdict-changing options
    (`Verifier.identity()`), what it compares against, and the completion (any string: lone
    surrogates are hashed losslessly)."""
    return completion_key(verification_prefix(identity, problem), completion)


def verification_prefix(identity: dict[str, Any], problem: Problem) -> Any:
    """The hash state of a verification key before the completion: the same for every sample of a
    problem, so a shard serialises and hashes each problem's reference and metadata once."""
    digest = hashlib.sha256(
        encode_text(canonical_json([identity, problem.reference, problem.metadata]))
    )
    digest.update(b"\0")
    return digest


def completion_key(prefix: Any, completion: str) -> str:
    """`verification_key` from a problem's `verification_prefix` and a completion."""
    digest = prefix.copy()
    digest.update(encode_text(completion))
    return digest.hexdigest()


def _check_all(verifier: Verifier, todo: dict[str, tuple[Problem, str]]) -> dict[str, Check]:
    """Checks for distinct (problem, completion) pairs in one `check_many` call (one at a time if
    that call fails, so that one bad pair cannot fail a shard)."""
    if not todo:
        return {}
    try:
        checks = verifier.check_many(list(todo.values()))
        if len(checks) == len(todo) and all(isinstance(c, Check) for c in checks):
            return dict(zip(todo, checks, strict=True))
        print(
            f"[verify] {verifier.name}.check_many returned {len(checks)} checks for {len(todo)} pairs; checking one by one",
            file=sys.stderr,
        )
    except InfrastructureFailure:
        raise  # the verifier cannot judge at all: fail the job, not each sample
    except Exception as exc:  # noqa: BLE001 - fall back to per-sample checks, which record errors
        print(
            f"[verify] {verifier.name}.check_many failed ({type(exc).__name__}: {exc}); checking one by one",
            file=sys.stderr,
        )
    return {key: check_safely(verifier, problem, text) for key, (problem, text) in todo.items()}


def labelled_check(check: Check, label: bool) -> Check:
    """A verifier's check with its status replaced by a label that came with the sample (the
    replay backend's released correctness): the extracted answer and method stay, for voting."""
    status = "correct" if label else "incorrect"
    return Check(
        status=status,
        extracted=check.extracted,
        method=check.method,
        detail=f"status from the sample's label; the verifier said {check.status}",
    )


def oversized_check(completion: str, cap: int) -> Check | None:
    """`incorrect` for a completion over the size cap (never handed to a verifier), else None."""
    if len(completion) * 4 <= cap:  # at most 4 UTF-8 bytes per character: surely under
        return None
    size = len(completion.encode("utf-8", "surrogatepass"))
    if size <= cap:
        return None
    return Check(
        "incorrect",
        detail=f"completion of {size} bytes is over the verifier's cap of {cap} bytes (max_completion_bytes); not judged",
    )


def verify_samples(
    problems: Sequence[Problem],
    samples: Sequence[Sample],
    verifier: Verifier | str,
    cache: VerdictCache | None = None,
    seen: dict[str, Check] | None = None,
) -> tuple[list[Verdict], dict[str, int]]:
    """Verdicts for samples (same order). Identical completions of a problem are verified once.
    A sample with a `label` gets its status from the label (see `labelled_check`).

    `seen`: checks by verification key from earlier calls (the earlier parts of one shard); it is
    consulted before the cache and the verifier, and gets this call's checks added."""
    if isinstance(verifier, str):
        verifier = get_verifier(verifier)
    identity = verifier.identity()
    cap = int(verifier.options.get("max_completion_bytes") or 0)
    by_id = {p.problem_id: p for p in problems}
    prefixes = {pid: verification_prefix(identity, p) for pid, p in by_id.items()}
    keys: list[str | None] = []
    for s in samples:
        prefix = prefixes.get(s.problem_id)
        keys.append(
            None
            if prefix is None
            else completion_key(prefix, verifier.cache_text(by_id[s.problem_id], s.text))
        )
    seen = {} if seen is None else seen
    unique = sorted({k for k in keys if k is not None and k not in seen})
    scope = cache_scope(identity)
    known = cache.get_many(unique, scope) if cache is not None else {}
    stats = {"samples": len(samples), "unique": len(unique), "cached": len(known), "checked": 0}
    todo: dict[str, tuple[Problem, str]] = {}
    fresh: dict[str, Check] = {}
    for s, key in zip(samples, keys, strict=True):
        if key is None or key in seen or key in known or key in todo or key in fresh:
            continue
        too_big = oversized_check(s.text, cap) if cap else None
        if too_big is not None:
            fresh[key] = too_big
        else:
            todo[key] = (by_id[s.problem_id], s.text)
    fresh.update(_check_all(verifier, todo))
    stats["checked"] = len(fresh)
    if cache is not None:
        cache.put_many(fresh.items(), scope)
    seen.update(known)
    seen.update(fresh)
    verdicts = []
    for s, key in zip(samples, keys, strict=True):
        if key is None:
            check = Check(
                status="error", detail=f"problem {s.problem_id!r} is not in the problem file"
            )
        else:
            check = seen[key]
            if s.label is not None:
                check = labelled_check(check, s.label)
        verdicts.append(Verdict.of(s.problem_id, s.sample_index, check))
    return verdicts, stats


def verdict_frame(verdicts: Sequence[Verdict]) -> pl.DataFrame:
    """Verdicts as a table (`VERDICT_SCHEMA`), sorted; descriptive text made storable."""
    rows = [v.to_dict() for v in verdicts]
    for row in rows:
        row["extracted"], row["detail"] = printable(row["extracted"]), printable(row["detail"])
    return pl.DataFrame(rows, schema=VERDICT_SCHEMA).sort(["problem_id", "sample_index"])


VERIFY_CHUNK = 20_000  # samples judged and written per part of a shard


def verify_shard(
    problems_path: str | os.PathLike,
    samples_path: str | os.PathLike,
    verifier: str,
    out: str | os.PathLike,
    options: dict[str, Any] | None = None,
    cache_path: str | os.PathLike | None = None,
    chunk: int = VERIFY_CHUNK,
) -> dict[str, int]:
    """Verify one sample shard with the named verifier (built from `options`) and write one
    verdict row per sample as parquet, sorted by (problem, sample index).

    The shard is read, judged and written `chunk` samples at a time, so memory is bounded by
    the chunk and the shard's distinct completions, not by its size; identical completions are
    still judged once per shard."""
    problems = read_problems(problems_path)
    cache = VerdictCache(cache_path) if cache_path else None
    judge = get_verifier(verifier, options)
    stats = dict.fromkeys(("samples", "unique", "cached", "checked"), 0)
    seen: dict[str, Check] = {}
    in_order, last = True, None
    try:
        samples = iter_samples(samples_path)
        with ParquetStreamWriter(out, VERDICT_SCHEMA) as writer:  # no part: an empty file
            while part := list(itertools.islice(samples, chunk)):
                verdicts, part_stats = verify_samples(problems, part, judge, cache, seen)
                for key, value in part_stats.items():
                    stats[key] += value
                frame = verdict_frame(verdicts)
                first, final = frame.row(0)[:2], frame.row(frame.height - 1)[:2]
                in_order = in_order and (last is None or last <= first)
                last = final
                writer.write(frame)
    finally:
        judge.close()
    if not in_order:  # the shard's samples were not in (problem, index) order: sort the file
        write_parquet(out, read_parquet(out).sort(["problem_id", "sample_index"]))
    print(
        f"[verify] {judge.name} {judge.version}: {stats['samples']} samples, {stats['unique']} distinct completions, "
        f"{stats['cached']} from cache, {stats['checked']} checked",
        file=sys.stderr,
    )
    return stats


def read_verdict_table(paths: Sequence[str | os.PathLike]) -> pl.DataFrame:
    """Concatenate verdict parquet files, checking their columns."""
    frames = []
    for path in paths:
        frame = read_parquet(path)
        missing = set(VERDICT_SCHEMA) - set(frame.columns)
        if missing:
            raise RecordError(f"{path}: not a verdict file (missing columns {sorted(missing)})")
        frames.append(frame.select(list(VERDICT_SCHEMA)).cast(VERDICT_SCHEMA))
    if not frames:
        return pl.DataFrame(schema=VERDICT_SCHEMA)
    return pl.concat(frames)


# -- aggregation ---------------------------------------------------------------------------------
ERROR_POLICIES = ("exclude", "incorrect")


def count_correct(verdicts: pl.DataFrame, errors: str = "exclude") -> pl.DataFrame:
    """Per problem: n (judged samples), c (correct), c_strict (correct with an answer that was
    not guessed by a fallback), n_timeout, n_error, n_excluded (samples left out of n).

    `errors`: `exclude` leaves `error` verdicts (the verifier's infrastructure failed) out of n;
    `incorrect` counts them as wrong answers, a lower bound on coverage."""
    if errors not in ERROR_POLICIES:
        raise ValueError(f"errors must be one of {ERROR_POLICIES}, got {errors!r}")
    judged = pl.col("status") != "error" if errors == "exclude" else pl.col("status").is_not_null()
    dupes = verdicts.group_by(["problem_id", "sample_index"]).len().filter(pl.col("len") > 1)
    if dupes.height:
        raise RecordError(f"verdicts repeat (problem, sample) pairs, e.g. {dupes.row(0)[:2]}")
    return (
        verdicts.group_by("problem_id")
        .agg(
            n=judged.sum().cast(pl.Int64),
            c=(pl.col("status") == "correct").sum().cast(pl.Int64),
            c_strict=(
                (pl.col("status") == "correct")
                & ~pl.col("method").is_in(LENIENT_METHODS).fill_null(False)
            )
            .sum()
            .cast(pl.Int64),
            n_timeout=(pl.col("status") == "timeout").sum().cast(pl.Int64),
            n_error=(pl.col("status") == "error").sum().cast(pl.Int64),
            n_excluded=(~judged).sum().cast(pl.Int64),
        )
        .sort("problem_id")
    )


def aggregate(
    verdict_paths: Sequence[str | os.PathLike], out: str | os.PathLike, errors: str = "exclude"
) -> pl.DataFrame:
    """Per-problem counts over a run's verdict shards (see `count_correct`)."""
    counts = count_correct(read_verdict_table(verdict_paths), errors)
    write_parquet(out, counts)
    return counts


def passk_rows(
    counts: pl.DataFrame, ks: Sequence[int], labels: dict[str, Any]
) -> list[dict[str, Any]]:
    """Mean pass@k over problems for each k (strict and lenient), where problems have n >= k;
    `errors_excluded`: the samples of those problems that `error` verdicts left out of n."""
    n = counts["n"].to_numpy()
    # counts written before n_excluded existed always excluded their errors
    column = next((c for c in ("n_excluded", "n_error") if c in counts.columns), None)
    excluded = counts[column].to_numpy() if column else np.zeros(len(n), dtype=np.int64)
    rows = []
    lenient = pass_at_k(n, counts["c"].to_numpy(), ks)
    strict = pass_at_k(n, counts["c_strict"].to_numpy(), ks)
    for j, k in enumerate(ks):
        valid = n >= k
        if not valid.any():
            continue
        rows.append(
            {
                **labels,
                "k": int(k),
                "pass_at_k": float(lenient[valid, j].mean()),
                "pass_at_k_strict": float(strict[valid, j].mean()),
                "problems": int(valid.sum()),
                "problems_total": int(len(n)),
                "errors_excluded": int(excluded[valid].sum()),
            }
        )
    return rows
