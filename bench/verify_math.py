"""A million MATH verdicts: `verify_shard` over the paper's MATH setting, against math-verify per sample.

    python bench/verify_math.py [--problems 128] [--samples 10000] [--shard-size 5000]
                                [--workers 2] [--subsample 1000] [--goal-s 300] [--seed 0]

Builds a realistic shard set from the bundled MATH test split: `--problems` problems, each with
`--samples` completions. A completion is a prefix of the problem's own reference solution (its
boxes written out as plain values, so the reasoning differs from sample to sample) followed by a
final statement in one of the shapes models write (Minerva line, boxed sentence, "**Final
Answer**" display, "The answer is:"). Its answer is drawn per problem the way repeated sampling
spreads answers: a problem-specific solve rate (from a Beta(0.5, 1.5), so most problems are hard
and a few easy, as in the paper's MATH runs) picks the reference in one of several written forms
(`\\dfrac`, `a/b`, decimals, units, `x =`), else a wrong answer from a Zipf-weighted pool of
200 per problem (other problems' references and near misses of this one), so many samples
share a final answer; 3% of completions repeat an earlier completion exactly.

Then it times `monkeyflow.stages.verify_shard` over every shard (`--workers` processes, no
verdict cache), prints the peak RSS, and compares with
 - the naive path, math-verify on every sample (`verify(parse(reference), parse(completion))`,
   math-verify's own extraction), timed on a random subsample and extrapolated;
 - the MATH verifier called on every sample of the same subsample one by one (`verify_math`,
   no de-duplication): its verdicts must be identical to verify_shard's.
Exits non-zero when the whole set takes more than `--goal-s` seconds or a verdict differs.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import re
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

from monkeyflow.data.base import read_bundled
from monkeyflow.data.math import reference_answer
from monkeyflow.io import write_jsonl
from monkeyflow.records import Problem, Sample
from monkeyflow.stages import verify_shard
from monkeyflow.verify.math import verify_math

SHAPES = (
    "{body}\nFinal Answer: The final answer is ${X}$. I hope it is correct.",
    "{body} Therefore, the answer is $\\boxed{{X}}$.",
    "{body}\n\n**Final Answer**\n\\[\n\\boxed{{X}}\n\\]",
    "{body}\nThe answer is: {X}",
)
_BOX = re.compile(r"\\boxed\{([^{}]*)\}")
_FRAC = re.compile(r"(-?)\\frac\{(\d+)\}\{(\d+)\}")


def rewrites(ref: str) -> list[str]:
    """Ways a model writes the reference (all equal to it)."""
    forms = [ref, f"x = {ref}"]
    m = _FRAC.fullmatch(ref)
    if m:
        sign, a, b = m.groups()
        forms += [f"{sign}\\dfrac{{{a}}}{{{b}}}", f"{sign}{a}/{b}"]
        if int(b) in (2, 4, 5, 8, 10, 20, 25):
            forms.append(sign + f"{int(a) / int(b):g}")
    if re.fullmatch(r"-?\d+", ref):
        forms += [f"{ref}.0", f"{ref}\\text{{ units}}", f"{int(ref):,}"]
    return list(dict.fromkeys(forms))


def wrong_pool(ref: str, others: list[str], rng: random.Random, size: int = 200) -> list[str]:
    """Wrong answers for one problem: mostly near misses of its own reference (what a model that
    slips gets), a fifth other problems' references (what one that misreads gets)."""
    pool: list[str] = []
    if re.fullmatch(r"-?\d+", ref):
        n = int(ref)
        pool += [str(n + d) for d in range(-80, 81) if d]
    m = _FRAC.fullmatch(ref)
    if m:
        sign, a, b = m.groups()
        pool += [f"{sign}\\frac{{{int(a) + d}}}{{{b}}}" for d in range(1, 60)]
        pool += [f"{sign}\\frac{{{a}}}{{{int(b) + d}}}" for d in range(1, 60)]
    digits = [k for k, ch in enumerate(ref) if ch.isdigit()]
    for k in digits:
        for d in range(1, 10):
            pool.append(ref[:k] + str((int(ref[k]) + d) % 10) + ref[k + 1 :])
    rng.shuffle(pool)
    pool = pool[: size * 4 // 5]
    pool += rng.sample(others, size - len(pool))
    pool = [p for p in dict.fromkeys(pool) if p != ref]
    rng.shuffle(pool)
    return pool[:size]


def build(args, root: Path) -> tuple[Path, list[Path], list[Problem]]:
    rng = random.Random(args.seed)
    rows = read_bundled("math/test.jsonl")
    chosen = sorted(rng.sample(range(len(rows)), args.problems))
    refs_all = [reference_answer(r["solution"]) for r in rows]
    problems = [
        Problem(f"math-{i:05d}", "math", "", refs_all[i], metadata={"row": i}) for i in chosen
    ]
    problems_path = root / "problems.jsonl"
    write_jsonl(problems_path, (p.to_dict() for p in problems))
    plans = []
    for p, i in zip(problems, chosen, strict=True):
        body = _BOX.sub(r"\1", rows[i]["solution"]).replace("\\boxed", "")
        sentences = re.split(r"(?<=[.!?])\s+", body)
        solve_rate = rng.betavariate(0.5, 1.5)
        pool = wrong_pool(p.reference, refs_all, rng)
        weights = [1.0 / (k + 1) ** 1.1 for k in range(len(pool))]
        plans.append((p, sentences, solve_rate, rewrites(p.reference), pool, weights))
    shard_paths = []
    for shard in range(args.samples // args.shard_size):
        samples = []
        for p, sentences, solve_rate, right, pool, weights in plans:
            previous: list[str] = []
            for j in range(shard * args.shard_size, (shard + 1) * args.shard_size):
                if previous and rng.random() < 0.03:
                    text = rng.choice(previous)  # an exact repeat of an earlier completion
                else:
                    if rng.random() < solve_rate:
                        answer = rng.choice(right)
                    else:
                        answer = rng.choices(pool, weights)[0]
                    cut = rng.randint(1, len(sentences))
                    body = " ".join(sentences[:cut])
                    shape = rng.choice(SHAPES if "\\" in answer or " " in answer else SHAPES)
                    text = shape.replace("{body}", body).replace("{X}", answer)
                    if len(previous) < 50:
                        previous.append(text)
                samples.append(Sample(p.problem_id, j, text).to_dict())
        path = root / f"shard-{shard}.jsonl.zst"
        write_jsonl(path, samples)
        shard_paths.append(path)
    return problems_path, shard_paths, problems


def _verify_one(job: tuple[str, str, str]) -> tuple[float, float]:
    """Seconds to verify one shard, and the worker's peak RSS so far (MB, VmHWM)."""
    from monkeyflow.logs import peak_rss_mb

    problems_path, shard_path, out = job
    t = time.perf_counter()
    verify_shard(problems_path, shard_path, "math", out)
    return time.perf_counter() - t, peak_rss_mb()


def naive_math_verify(problems: dict[str, Problem], sample_rows: list[dict]) -> float:
    """Seconds per sample of math-verify on the raw completion (its own extraction)."""
    from math_verify import parse, verify

    t = time.perf_counter()
    for row in sample_rows:
        gold = parse(f"${problems[row['problem_id']].reference}$", parsing_timeout=None)
        pred = parse(row["text"], parsing_timeout=None)
        verify(gold, pred, timeout_seconds=None)
    return (time.perf_counter() - t) / len(sample_rows)


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--problems", type=int, default=128)
    ap.add_argument("--samples", type=int, default=10_000)
    ap.add_argument("--shard-size", type=int, default=5000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--subsample", type=int, default=1000)
    ap.add_argument("--goal-s", type=float, default=300.0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.samples % args.shard_size:
        ap.error("--samples must be a multiple of --shard-size")
    import logging

    logging.getLogger("math_verify").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="verify_math_") as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        problems_path, shard_paths, problems = build(args, root)
        total = args.problems * args.samples
        size = sum(p.stat().st_size for p in shard_paths)
        print(
            f"built {len(shard_paths)} shards, {total:,} samples of {args.problems} problems "
            f"({size / 1e6:.0f} MB zstd) in {time.perf_counter() - t:.0f} s"
        )

        jobs = [
            (str(problems_path), str(s), str(root / f"v-{k}.parquet"))
            for k, s in enumerate(shard_paths)
        ]
        t = time.perf_counter()
        with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
            results = pool.map(_verify_one, jobs, chunksize=1)
        wall = time.perf_counter() - t
        per_shard = [seconds for seconds, _ in results]
        # VmHWM of the workers (ru_maxrss would carry over this process's own peak into them)
        peak_mb = max(peak for _, peak in results)
        verdicts = pl.concat([pl.read_parquet(j[2]) for j in jobs])
        counts = verdicts["status"].value_counts().sort("status")
        print(
            f"verify_shard: {total:,} samples in {wall:.1f} s wall with {args.workers} workers "
            f"({sum(per_shard):.1f} s of shard jobs, {total / wall:,.0f} samples/s); "
            f"peak RSS of one process {peak_mb:.0f} MB"
        )
        print("  statuses: " + ", ".join(f"{s} {n:,}" for s, n in counts.iter_rows()))

        # The subsample: the same samples judged naively.
        from monkeyflow.io import read_jsonl

        rng = random.Random(args.seed + 1)
        by_id = {p.problem_id: p for p in problems}
        picks: list[dict] = []
        per_shard_n = max(1, args.subsample // len(shard_paths))
        for path in shard_paths:
            rows = read_jsonl(path)
            picks += rng.sample(rows, min(per_shard_n, len(rows)))
        keyed = {
            (r["problem_id"], r["sample_index"]): r
            for r in verdicts.filter(
                pl.struct(["problem_id", "sample_index"]).is_in(
                    [
                        {"problem_id": p["problem_id"], "sample_index": p["sample_index"]}
                        for p in picks
                    ]
                )
            ).iter_rows(named=True)
        }
        t = time.perf_counter()
        mismatches = []
        for row in picks:
            check = verify_math(by_id[row["problem_id"]], row["text"])
            got = keyed[(row["problem_id"], row["sample_index"])]
            mine = (got["status"], got["extracted"], got["method"], got["detail"])
            if mine != (check.status, check.extracted, check.method, check.detail):
                mismatches.append((row["problem_id"], row["sample_index"], mine, check))
        per_sample_ours = (time.perf_counter() - t) / len(picks)
        per_sample_naive = naive_math_verify(by_id, picks)
        naive_total = per_sample_naive * total
        print(
            f"subsample of {len(picks):,}: verify_math one by one {1000 * per_sample_ours:.2f} ms/"
            f"sample (-> {per_sample_ours * total / 60:.0f} min for all, one core); math-verify on "
            f"every sample {1000 * per_sample_naive:.2f} ms/sample (-> {naive_total / 60:.0f} min)"
        )
        print(
            f"ratio: naive math-verify estimate / verify_shard = {naive_total / wall:.1f}x; "
            f"verdicts identical to one-by-one verify_math on the subsample: "
            f"{len(picks) - len(mismatches)}/{len(picks)}"
        )
        for m in mismatches[:5]:
            print("  differs:", m)
        ok = wall <= args.goal_s and not mismatches
        print(
            f"goal: whole set under {args.goal_s:.0f} s on {os.cpu_count()} cores, verdict-identical"
            f" -> {'met' if ok else 'MISSED'}"
        )
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
