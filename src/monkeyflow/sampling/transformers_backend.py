"""The CPU default backend: Hugging Face transformers weights, monkeyflow's own decoding loop.

Llama-architecture models (the embedded SmolLM2 included) run in `monkeyflow.sampling.decoder`:
the shard's prompts share their common prefix (computed and attended to once), each prompt's own
tokens are computed once for all its samples, rows decode in at most `batch_size` slots of a
preallocated cache, and a finished row's slot is refilled at once from the waiting rows in shard
order (continuous batching). Other architectures run the model's forward in fixed batches of
`batch_size` rows with a left-padded cache (rows leave the batch as they finish).

Each row has its own torch.Generator seeded from (run key, problem id, sample index, seed) and
draws one uniform number per token from it (inverse CDF over the top-p nucleus), so a row's
random numbers depend on nothing else. Which rows share a batch step is a function of the shard
and the tokens drawn, so the same config gives the same bytes; it can change a row's floats, so
`batch_size` is in the run key. Log-probabilities are of the raw model distribution (before
temperature and top-p), as vLLM reports them.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass

from monkeyflow.prompting import prompt_token_ids
from monkeyflow.records import Sample
from monkeyflow.sampling.base import (
    CHAT_OPTION,
    Backend,
    ModelSpec,
    SamplingParams,
    ShardRequest,
    sample_seed,
    truncate_at_stop,
)

DTYPES = ("float32", "bfloat16", "float16")
DEFAULT_BATCH_SIZE = 32


@dataclass
class _Row:
    problem_id: str
    sample_index: int
    prompt: list[int]
    generator: object
    tokens: list[int]
    logprob: float = 0.0
    finish: str | None = None
    text: str | None = None


class TransformersBackend(Backend):
    """CPU (or single-GPU) sampling with transformers and monkeyflow's own batched KV-cache loop."""

    # 2: the decoder loop (shared prefix, slot cache, continuous batching) and inverse-CDF sampling
    sampler_version = 2
    options_schema = {
        "dtype": {
            "type": "string",
            "enum": [*DTYPES, "auto"],
            "default": "float32",
            "description": "weight dtype (auto = float32; float32 is seed-reproducible on CPU)",
        },
        "chat": CHAT_OPTION,
        "batch_size": {
            "type": "integer",
            "minimum": 1,
            "default": DEFAULT_BATCH_SIZE,
            "description": "rows decoded together (changes the floats, so it is in the run key)",
        },
        "threads": {
            "type": ["integer", "null"],
            "minimum": 1,
            "default": None,
            "x-run-key": False,
            "description": "torch threads (null = the job's threads, env MONKEYFLOW_THREADS)",
        },
    }

    def __init__(self, spec: ModelSpec, weights: str) -> None:
        super().__init__(spec, weights)
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        threads = int(self.options["threads"] or os.environ.get("MONKEYFLOW_THREADS", 0) or 0)
        if threads > 0:
            torch.set_num_threads(threads)
        dtype = self.options["dtype"]
        if dtype == "auto":
            dtype = "float32"
        self.batch_size = int(self.options["batch_size"])
        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(weights)
        self.model = AutoModelForCausalLM.from_pretrained(
            weights, dtype=getattr(torch, dtype), attn_implementation=_register_gqa_attention()
        )
        self.model.eval()
        from monkeyflow.sampling.decoder import Decoder, supports

        self.decoder = None
        if supports(self.model) is None:
            self.decoder = Decoder(self.model)
        self.chat = self.options["chat"]
        eos = self.model.generation_config.eos_token_id
        if eos is None:
            eos = self.tokenizer.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos]) - {None}

    def generate(
        self, requests: list[ShardRequest], params: SamplingParams, run: str
    ) -> list[Sample]:
        torch = self.torch
        rows: list[_Row] = []
        for request in requests:
            ids = prompt_token_ids(self.tokenizer, request.problem, self.chat)
            for i in range(request.start, request.start + request.count):
                seed = sample_seed(run, request.problem.problem_id, i, params.seed)
                rows.append(
                    _Row(
                        request.problem.problem_id, i, ids, torch.Generator().manual_seed(seed), []
                    )
                )
        if not rows:
            return []
        progress = _Progress(len(rows))
        with torch.inference_mode():
            if self.decoder is not None:
                self._run_continuous(rows, params, progress)
            else:
                for b in range(0, len(rows), self.batch_size):
                    self._run_batch(rows[b : b + self.batch_size], params)
                    progress.done(rows[b : b + self.batch_size])
        return [self._record(r) for r in rows]

    def _run_continuous(self, rows: list[_Row], params: SamplingParams, progress) -> None:
        """Decode `rows` with at most batch_size at a time, refilling freed slots from the
        waiting rows in shard order (see monkeyflow.sampling.decoder)."""
        torch = self.torch
        decoder = self.decoder
        distinct = list(dict.fromkeys(tuple(r.prompt) for r in rows))
        # The shared prefix: the prompts' longest common prefix, leaving every prompt one token
        # of its own (the one whose logits start sampling).
        shared = min(len(os.path.commonprefix(distinct)), min(len(p) for p in distinct) - 1)
        prefix = decoder.prefill(list(distinct[0][:shared]), None)[0] if shared > 0 else None
        waiting_per_prompt: dict[tuple[int, ...], int] = {}
        for r in rows:
            waiting_per_prompt[tuple(r.prompt)] = waiting_per_prompt.get(tuple(r.prompt), 0) + 1
        prefilled: dict[tuple[int, ...], tuple] = {}
        slots = min(self.batch_size, len(rows))
        capacity = max(len(p) for p in distinct) - shared + params.max_tokens
        cache = decoder.new_cache(slots, capacity)
        active: list[_Row] = []  # active[j] is in slot j
        lengths: list[int] = []  # cached tokens beyond the prefix, per slot
        logits = None  # [len(active), V]: the next-token logits of each active row
        queue = iter(rows)
        pending = next(queue, None)
        while True:
            admitted = []
            while pending is not None and len(active) < slots:
                key = tuple(pending.prompt)
                if key not in prefilled:
                    prefilled[key] = decoder.prefill(list(key[shared:]), prefix)
                own, first_logits = prefilled[key]
                decoder.load(cache, len(active), own)
                active.append(pending)
                lengths.append(len(key) - shared)
                admitted.append(first_logits)
                waiting_per_prompt[key] -= 1
                if not waiting_per_prompt[key]:
                    del prefilled[key]
                pending = next(queue, None)
            if not active:
                break
            if admitted:
                new = torch.stack(admitted)
                logits = new if logits is None else torch.cat([logits, new])
            tokens, logprobs = _sample(torch, logits, [r.generator for r in active], params)
            finished = []
            for j, row in enumerate(active):
                tok = tokens[j]
                row.tokens.append(tok)
                row.logprob += logprobs[j]
                if self._finished(row, tok, params, last=len(row.tokens) >= params.max_tokens):
                    finished.append(j)
            if finished:
                progress.done([active[j] for j in finished])
                # The last active row moves into each freed slot (one row's cache copied).
                order = list(range(len(active)))
                for j in reversed(finished):
                    last = len(order) - 1
                    if j != last:
                        decoder.move(cache, last, j, lengths[order[last]])
                        order[j] = order[last]
                    order.pop()
                active = [active[j] for j in order]
                lengths = [lengths[j] for j in order]
                tokens = [tokens[j] for j in order]
                if not active:
                    logits = None
                    continue
            logits = decoder.step(
                torch.tensor(tokens, dtype=torch.long),
                torch.tensor(lengths, dtype=torch.long),
                prefix,
                cache,
            )
            lengths = [n + 1 for n in lengths]

    def _prefill(self, batch: list[_Row]):
        """One forward pass per distinct prompt; returns a left-padded cache for all rows, the
        attention mask, each row's next position and the first-step logits [rows, vocab]."""
        torch = self.torch
        from transformers import DynamicCache

        distinct: dict[tuple[int, ...], tuple] = {}
        for row in batch:
            key = tuple(row.prompt)
            if key not in distinct:
                out = self.model(
                    input_ids=torch.tensor([row.prompt], dtype=torch.long), use_cache=True
                )
                layers = [(layer.keys, layer.values) for layer in out.past_key_values.layers]
                distinct[key] = (layers, out.logits[0, -1, :])
        width = max(len(r.prompt) for r in batch)
        num_layers = len(next(iter(distinct.values()))[0])
        cache = DynamicCache()
        for layer in range(num_layers):
            keys, values = [], []
            for row in batch:
                k, v = distinct[tuple(row.prompt)][0][layer]
                pad = width - k.shape[2]
                if pad:
                    k = torch.nn.functional.pad(k, (0, 0, pad, 0))
                    v = torch.nn.functional.pad(v, (0, 0, pad, 0))
                keys.append(k)
                values.append(v)
            cache.update(torch.cat(keys), torch.cat(values), layer)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for j, row in enumerate(batch):
            mask[j, width - len(row.prompt) :] = 1
        positions = torch.tensor([len(r.prompt) for r in batch], dtype=torch.long)
        logits = torch.stack([distinct[tuple(r.prompt)][1] for r in batch])
        return cache, mask, positions, logits

    def _run_batch(self, batch: list[_Row], params: SamplingParams) -> None:
        torch = self.torch
        with torch.inference_mode():
            cache, mask, positions, logits = self._prefill(batch)
            active = list(range(len(batch)))
            for step in range(params.max_tokens):
                raw = logits.float()
                logp = torch.log_softmax(raw, dim=-1)
                probs = _sampling_probs(torch, raw, params.temperature, params.top_p)
                chosen = []
                keep = []
                for j, r in enumerate(active):
                    row = batch[r]
                    if probs is None:
                        tok = int(torch.argmax(raw[j]))
                    else:
                        tok = int(torch.multinomial(probs[j], 1, generator=row.generator))
                    chosen.append(tok)
                    row.tokens.append(tok)
                    row.logprob += float(logp[j, tok])
                    if self._finished(row, tok, params, last=step + 1 == params.max_tokens):
                        continue
                    keep.append(j)
                if not keep:
                    break
                if len(keep) < len(active):
                    index = torch.tensor(keep)
                    cache.batch_select_indices(index)
                    mask = mask[index]
                    positions = positions[index]
                    active = [active[j] for j in keep]
                mask = torch.cat([mask, torch.ones((len(active), 1), dtype=torch.long)], dim=1)
                step_input = torch.tensor([[chosen[j]] for j in keep], dtype=torch.long)
                out = self.model(
                    input_ids=step_input,
                    attention_mask=mask,
                    position_ids=positions.unsqueeze(1),
                    past_key_values=cache,
                    use_cache=True,
                )
                positions = positions + 1
                logits = out.logits[:, -1, :]

    def _finished(self, row: _Row, tok: int, params: SamplingParams, last: bool) -> bool:
        if tok in self.eos_ids:
            row.finish = "stop"
            return True
        # A stop string can only appear in the text's tail: decode the last few tokens first
        # and the whole completion only when the tail matches.
        if params.stop:
            longest = max(len(s) for s in params.stop)
            tail = self.tokenizer.decode(row.tokens[-(longest + 4) :], skip_special_tokens=True)
            if any(s in tail for s in params.stop):
                text, found = truncate_at_stop(
                    self.tokenizer.decode(row.tokens, skip_special_tokens=True), params.stop
                )
                if found:
                    row.finish, row.text = "stop", text
                    return True
        if last:
            row.finish = "length"
            return True
        return False

    def _record(self, row: _Row) -> Sample:
        text = row.text
        if text is None:
            text = self.tokenizer.decode(
                [t for t in row.tokens if t not in self.eos_ids], skip_special_tokens=True
            )
        return Sample(
            problem_id=row.problem_id,
            sample_index=row.sample_index,
            text=text,
            prompt_tokens=len(row.prompt),
            completion_tokens=len(row.tokens),
            finish_reason=row.finish or "length",
            cumulative_logprob=round(row.logprob, 6),
        )


def _register_gqa_attention() -> str:
    """Register (once) an SDPA attention that keeps grouped-query KV heads unrepeated.

    transformers' own SDPA path copies every cached key/value head group on every step as soon
    as an attention mask is present (our padded batches always have one); on CPU that copy was
    45% of decoding time. torch's SDPA takes the grouped heads directly (`enable_gqa`), which
    made a decoding step about 5x faster here with logits equal to within 3e-5.
    """
    import torch
    from transformers import AttentionInterface, AttentionMaskInterface
    from transformers.masking_utils import sdpa_mask

    name = "monkeyflow_sdpa_gqa"

    def attention(
        module,
        query,
        key,
        value,
        attention_mask,
        dropout=0.0,
        scaling=None,
        is_causal=None,
        **kwargs,
    ):
        q_len, kv_len = query.shape[2], key.shape[2]
        causal = False
        if attention_mask is None and q_len > 1:
            if q_len != kv_len:  # chunked prefill over a cache: build a bottom-right causal mask
                attention_mask = torch.ones((q_len, kv_len), dtype=torch.bool).tril(kv_len - q_len)
            else:
                causal = True
        out = torch.nn.functional.scaled_dot_product_attention(
            query,
            key,
            value,
            attn_mask=attention_mask,
            scale=scaling,
            is_causal=causal,
            enable_gqa=query.shape[1] != key.shape[1],
        )
        return out.transpose(1, 2).contiguous(), None

    if name not in AttentionInterface._global_mapping:
        AttentionInterface.register(name, attention)
        AttentionMaskInterface.register(name, sdpa_mask)
    return name


class _Progress:
    """A log line about every 10 s and at the end: samples done, samples/s, tokens/s."""

    def __init__(self, total: int) -> None:
        self.total, self.count, self.tokens = total, 0, 0
        self.started = self.last = time.monotonic()

    def done(self, rows: list[_Row]) -> None:
        self.count += len(rows)
        self.tokens += sum(len(r.tokens) for r in rows)
        now = time.monotonic()
        if now - self.last < 10 and self.count < self.total:
            return
        self.last = now
        elapsed = max(now - self.started, 1e-9)
        print(
            f"[sample] {self.count}/{self.total} samples, {self.count / elapsed:.2f} samples/s, "
            f"{self.tokens / elapsed:.1f} tokens/s",
            file=sys.stderr,
            flush=True,
        )


NUCLEUS_CANDIDATES = 64  # top tokens tried first for top-p; rows they do not cover sort all


def _sample(torch, logits, generators: list, params: SamplingParams):
    """Draw one token per row of `logits` [A, V]: greedy at temperature 0, else from the top-p
    nucleus of softmax(logits / T) by inverse CDF with one uniform number from the row's own
    generator (so a row's draws depend on its seed alone). Returns (tokens, log-probabilities of
    the raw distribution)."""
    raw = logits.float()
    lse = torch.logsumexp(raw, dim=-1)
    if params.temperature == 0:
        chosen = torch.argmax(raw, dim=-1)
    else:
        probs = torch.softmax(raw / params.temperature, dim=-1)
        uniform = torch.cat([torch.rand(1, generator=g) for g in generators])
        if params.top_p < 1.0:
            width = min(NUCLEUS_CANDIDATES, probs.shape[-1])
            top, order = torch.topk(probs, width, dim=-1)
            cumulative = torch.cumsum(top, dim=-1)
            uncovered = (cumulative[:, -1] < params.top_p).nonzero().flatten().tolist()
            chosen = _inverse_cdf(torch, top, cumulative, order, uniform, params.top_p)
            for j in uncovered:  # the candidates hold less than top_p: use the whole ranking
                full, full_order = torch.sort(probs[j : j + 1], dim=-1, descending=True)
                chosen[j] = _inverse_cdf(
                    torch,
                    full,
                    torch.cumsum(full, dim=-1),
                    full_order,
                    uniform[j : j + 1],
                    params.top_p,
                )[0]
        else:
            cumulative = torch.cumsum(probs, dim=-1)
            target = (uniform * cumulative[:, -1]).unsqueeze(1)
            chosen = torch.searchsorted(cumulative, target, right=True).squeeze(1)
            chosen = chosen.clamp_(max=probs.shape[-1] - 1)
    logprobs = raw.gather(1, chosen.unsqueeze(1)).squeeze(1) - lse
    return chosen.tolist(), logprobs.tolist()


def _inverse_cdf(torch, ranked, cumulative, order, uniform, top_p: float):
    """Sample from the nucleus of probabilities ranked in descending order: a token is dropped
    once the tokens ranked above it already cover top_p."""
    kept = (cumulative - ranked) <= top_p
    ranked = ranked * kept
    cumulative = torch.cumsum(ranked, dim=-1)
    target = (uniform * cumulative[:, -1]).unsqueeze(1)
    index = torch.searchsorted(cumulative, target, right=True).clamp_(max=ranked.shape[-1] - 1)
    return order.gather(1, index).squeeze(1)


def _sampling_probs(torch, logits, temperature: float, top_p: float):
    """Probabilities after temperature and nucleus (top-p) filtering; rows sum to 1.
    None for greedy decoding (temperature 0)."""
    if temperature == 0:
        return None
    probs = torch.softmax(logits / temperature, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = torch.sort(probs, dim=-1, descending=True)
        cumulative = torch.cumsum(sorted_probs, dim=-1)
        # drop a token once the tokens ranked above it already cover top_p
        drop = (cumulative - sorted_probs) > top_p
        sorted_probs = sorted_probs.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
        probs = probs / probs.sum(dim=-1, keepdim=True)
    return probs
