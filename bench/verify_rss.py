"""Peak memory of `monkeyflow verify` on a shard of 10,000 code samples (HumanEval).

    python bench/verify_rss.py [--samples 10000] [--limit-mb 1500]

The shard mixes what a k = 10,000 run produces: canonical solutions (repeated, verified once
each), prose without code, distinct wrong programs, 50 KB rambles with unterminated fences, and
100 samples of ~0.95 MB (unfenced: not compiled on the host, rejected in the sandbox) plus 10
over the 1 MB cap (incorrect without being judged). Prints the size of the shard, the verdict
counts, the wall time and the peak RSS of the `verify` process; exits 1 if the peak RSS is over
--limit-mb.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from monkeyflow.data import DatasetSpec, get_dataset


def shard(n: int) -> list[dict]:
    problems = get_dataset(DatasetSpec("humaneval")).problems()
    rows = []
    for i in range(n):
        p = problems[i % len(problems)]
        kind = i % 10
        if kind < 4:
            text = p.reference
        elif kind < 8:
            text = (
                f"Let me think about sample {i}. " + "The answer follows from the docstring. " * 40
            )
        elif kind == 8:
            text = f"```python\ndef {p.metadata['entry_point']}(*args):\n    return {i % 300}\n```"
        elif i % 100 == 9:
            text = f"{i} " + "(a + b) * c, d; " * 60_000  # ~0.95 MB, unfenced
        elif i % 100 == 19 and i < 1000:
            text = "x" * 1_200_000  # over the cap
        else:
            text = "Here is the code:\n```" + "python " * 7000 + f"\n{i}"  # 50 KB, unterminated
        rows.append({"problem_id": p.problem_id, "sample_index": i // len(problems), "text": text})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--limit-mb", type=float, default=1500.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        samples = Path(tmp) / "samples.jsonl"
        rows = shard(args.samples)
        with samples.open("w") as fh:
            for row in rows:
                fh.write(json.dumps(row) + "\n")
        size = samples.stat().st_size
        out = Path(tmp) / "verdicts.parquet"
        # The CLI, reporting its own peak (VmHWM) as it exits: getrusage's ru_maxrss of a child
        # would carry over this process's peak (it holds the whole shard) into the child's.
        cli = ["verify", "humaneval", str(samples), "--output", str(out)]
        code = (
            "import atexit, sys\n"
            "from monkeyflow.cli import main\n"
            "from monkeyflow.logs import peak_rss_mb\n"
            "atexit.register(lambda: print(f'PEAK_RSS_MB {peak_rss_mb():.1f}', file=sys.stderr))\n"
            f"sys.exit(main({cli!r}))\n"
        )
        cmd = [sys.executable, "-c", code]
        start = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ)
        wall = time.monotonic() - start
        lines = proc.stderr.strip().splitlines()
        peaks = [float(x.split()[1]) for x in lines if x.startswith("PEAK_RSS_MB ")]
        peak_mb = peaks[-1] if peaks else float("inf")
        proc.stderr = "\n".join(x for x in lines if not x.startswith("PEAK_RSS_MB "))
    print(f"shard: {len(rows)} samples, {size / 1e6:.1f} MB of JSON lines")
    print(f"verify: exit {proc.returncode}, {wall:.1f} s; {proc.stderr.strip().splitlines()[-1]}")
    print(f"peak RSS of the verify process: {peak_mb:.0f} MB (limit {args.limit_mb:g} MB)")
    if proc.returncode != 0:
        print(proc.stderr[-3000:])
    if proc.returncode != 0 or peak_mb > args.limit_mb:
        sys.exit(1)


if __name__ == "__main__":
    main()
