"""OpenAI-compatible servers: `vllm serve`, SGLang, or a hosted API (`backend: openai`).

One HTTP request per sample (n=1), sent by an asyncio client with at most `concurrency` in
flight. A request that fails with 408/409/425/429/5xx, times out, or loses its connection is
retried with exponential backoff and jitter (a `Retry-After` header is honoured) up to
`max_retries` times; every retry is logged with its cause. Each sample is stored once, under
(problem id, sample index), whatever the retries did on the server side, and a shard is
complete only when every sample has arrived.

Seeds: sample i*shard_size + j of a problem gets seed s + j with s = sample_seed(run, problem,
i*shard_size, seed), as vLLM's offline engine seeds the children of one `n=shard_size` request,
so a vLLM server is asked for the same random streams (`request_seed: false` for APIs that
reject `seed`). Token counts come from the response's `usage`.

The API key is read from the environment variable named by `api_key_env` (default
OPENAI_API_KEY; sent only if set) and is never logged or written: messages that could echo it
are redacted.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from monkeyflow.records import Sample
from monkeyflow.sampling.base import (
    CHAT_OPTION,
    Backend,
    ModelSpec,
    SamplingParams,
    ShardRequest,
    sample_seed,
)

DEFAULT_KEY_ENV = "OPENAI_API_KEY"
RETRY_STATUSES = {408, 409, 425, 429, 500, 502, 503, 504}
BACKOFF_BASE_S = 0.5
BACKOFF_MAX_S = 30.0


class RequestError(RuntimeError):
    """A request that cannot succeed (4xx other than the retryable ones, or retries used up)."""


class _Retryable(Exception):
    def __init__(self, cause: str, retry_after: float | None = None) -> None:
        super().__init__(cause)
        self.cause = cause
        self.retry_after = retry_after


@dataclass(frozen=True)
class _Job:
    problem_id: str
    sample_index: int
    body: dict[str, Any]


class OpenAIBackend(Backend):
    """Any OpenAI-compatible server (vLLM, SGLang, a hosted API); `path` is the model it serves."""

    needs_weights = False
    options_schema = {
        "base_url": {
            "type": "string",
            "pattern": "^https?://",
            "x-run-key": False,
            "x-required": True,
            "description": "the server's API root, e.g. http://localhost:8000/v1 (required)",
        },
        "api_key_env": {
            "type": ["string", "null"],
            "pattern": "^[A-Za-z_][A-Za-z0-9_]*$",
            "default": None,
            "x-run-key": False,
            "description": "environment variable holding the API key (null = OPENAI_API_KEY, sent if set); the key itself is never in the config, logs or outputs",
        },
        "chat": CHAT_OPTION,
        "concurrency": {
            "type": "integer",
            "minimum": 1,
            "default": 16,
            "x-run-key": False,
            "description": "most requests in flight per job",
        },
        "request_timeout_s": {
            "type": "number",
            "exclusiveMinimum": 0,
            "default": 600,
            "x-run-key": False,
            "description": "seconds before a request is abandoned and retried",
        },
        "max_retries": {
            "type": "integer",
            "minimum": 0,
            "default": 8,
            "x-run-key": False,
            "description": "retries of one request on 429, 5xx, timeouts and dropped connections",
        },
        "request_seed": {
            "type": "boolean",
            "default": True,
            "description": "send each sample's seed (set false for APIs that reject `seed`)",
        },
        "logprobs": {
            "type": "boolean",
            "default": False,
            "description": "ask for token log-probabilities to record cumulative_logprob",
        },
    }

    def __init__(self, spec: ModelSpec, weights: str) -> None:
        super().__init__(spec, weights)
        options = self.options
        self.base_url = str(options["base_url"]).rstrip("/")
        key_env = options.get("api_key_env") or DEFAULT_KEY_ENV
        self._api_key = os.environ.get(key_env) or None
        if self._api_key is None and options.get("api_key_env"):
            raise ValueError(
                f"models.{spec.name}.api_key_env: the environment variable {key_env} is not set; export the API key "
                f"in it before running (the key is never written to the config, logs or outputs)"
            )
        self.model = spec.path  # the name the server knows the model by
        self.chat = options["chat"]
        self.concurrency = int(options["concurrency"])
        self.timeout_s = float(options["request_timeout_s"])
        self.max_retries = int(options["max_retries"])
        self.request_seed = bool(options["request_seed"])
        self.logprobs = bool(options["logprobs"])
        self.stats: dict[str, Any] = {}

    # -- requests ------------------------------------------------------------------------------
    def _use_chat(self, problem) -> bool:
        if self.chat is None:
            return bool(problem.chat)
        return bool(self.chat)

    def _jobs(self, requests: list[ShardRequest], params: SamplingParams, run: str) -> list[_Job]:
        jobs = []
        for r in requests:
            base_seed = sample_seed(run, r.problem.problem_id, r.start, params.seed) % (2**31)
            chat = self._use_chat(r.problem)
            for j in range(r.count):
                body: dict[str, Any] = {
                    "model": self.model,
                    "max_tokens": params.max_tokens,
                    "temperature": params.temperature,
                    "top_p": params.top_p,
                    "n": 1,
                }
                if params.stop:
                    body["stop"] = list(params.stop)
                if self.request_seed:
                    body["seed"] = base_seed + j
                if chat:
                    body["messages"] = r.problem.chat or [
                        {"role": "user", "content": r.problem.prompt}
                    ]
                    if self.logprobs:
                        body["logprobs"] = True
                else:
                    body["prompt"] = r.problem.prompt
                    if self.logprobs:
                        body["logprobs"] = 0
                jobs.append(_Job(r.problem.problem_id, r.start + j, body))
        return jobs

    def _redact(self, text: str) -> str:
        if self._api_key:
            text = text.replace(self._api_key, "***")
        return text

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    async def _post_once(self, session, url: str, body: dict[str, Any]) -> dict[str, Any]:
        import aiohttp

        try:
            async with session.post(url, json=body, headers=self._headers()) as resp:
                raw = await resp.read()
                if resp.status in RETRY_STATUSES or resp.status >= 500:
                    raise _Retryable(
                        f"HTTP {resp.status}", _retry_after(resp.headers.get("Retry-After"))
                    )
                if resp.status != 200:
                    detail = self._redact(raw[:500].decode("utf-8", "replace"))
                    raise RequestError(f"{url}: HTTP {resp.status}: {detail}")
        except (asyncio.TimeoutError, TimeoutError):
            raise _Retryable(f"timeout after {self.timeout_s:g} s") from None
        except aiohttp.ClientPayloadError as exc:
            raise _Retryable(f"truncated response ({type(exc).__name__})") from None
        except aiohttp.ClientConnectionError as exc:
            raise _Retryable(f"connection {type(exc).__name__}") from None
        try:
            return json.loads(raw)
        except ValueError:
            raise _Retryable("malformed JSON body") from None

    async def _request(self, session, job: _Job, causes: Counter) -> Sample:
        url = f"{self.base_url}/{'chat/completions' if 'messages' in job.body else 'completions'}"
        label = f"{job.problem_id}#{job.sample_index}"
        for attempt in range(self.max_retries + 1):
            try:
                data = await self._post_once(session, url, job.body)
                return _sample(job, data)
            except _Retryable as exc:
                if attempt == self.max_retries:
                    raise RequestError(
                        f"{label}: gave up after {attempt + 1} attempts, last: {exc.cause}"
                    ) from None
                delay = exc.retry_after
                if delay is None:
                    delay = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2**attempt) * random.uniform(
                        0.5, 1.0
                    )
                causes[exc.cause.split(" after ")[0]] += 1
                print(
                    f"[openai] retry {attempt + 1}/{self.max_retries} {label}: {self._redact(exc.cause)}; "
                    f"waiting {delay:.2f} s",
                    file=sys.stderr,
                    flush=True,
                )
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def _run(self, jobs: list[_Job]) -> tuple[dict[tuple[str, int], Sample], Counter]:
        import aiohttp

        causes: Counter = Counter()
        results: dict[tuple[str, int], Sample] = {}
        limit = asyncio.Semaphore(self.concurrency)
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        connector = aiohttp.TCPConnector(limit=self.concurrency)

        async def one(session, job: _Job) -> None:
            async with limit:
                sample = await self._request(session, job, causes)
            key = (job.problem_id, job.sample_index)
            if key in results:  # cannot happen: one task per key; kept as a guard
                raise RequestError(f"sample {key} delivered twice")
            results[key] = sample

        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            tasks = [asyncio.create_task(one(session, job)) for job in jobs]
            try:
                await asyncio.gather(*tasks)
            finally:  # on a failure, stop the other requests before the session closes
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        return results, causes

    def generate(
        self, requests: list[ShardRequest], params: SamplingParams, run: str
    ) -> list[Sample]:
        jobs = self._jobs(requests, params, run)
        started = time.monotonic()
        results, causes = asyncio.run(self._run(jobs))
        elapsed = time.monotonic() - started
        samples = [results[(job.problem_id, job.sample_index)] for job in jobs]
        tokens = sum(s.completion_tokens or 0 for s in samples)
        self.stats = {
            "requests": len(jobs),
            "retries": sum(causes.values()),
            "retry_causes": dict(causes),
            "prompt_tokens": sum(s.prompt_tokens or 0 for s in samples),
            "completion_tokens": tokens,
            "seconds": round(elapsed, 3),
        }
        print(
            f"[openai] {len(samples)} samples from {self.base_url} in {elapsed:.1f} s "
            f"({len(samples) / max(elapsed, 1e-9):.2f} samples/s, {tokens / max(elapsed, 1e-9):.1f} tokens/s), "
            f"{self.stats['retries']} retries {dict(causes) or ''}".rstrip(),
            file=sys.stderr,
            flush=True,
        )
        return samples


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds form only), capped at BACKOFF_MAX_S."""
    if not value:
        return None
    try:
        return max(0.0, min(BACKOFF_MAX_S, float(value)))
    except ValueError:
        return None


def _sample(job: _Job, data: dict[str, Any]) -> Sample:
    """One Sample from a completions or chat completions response."""
    try:
        choice = data["choices"][0]
    except (KeyError, IndexError, TypeError):
        raise _Retryable("response without choices") from None
    chat = "messages" in job.body
    text = (choice.get("message") or {}).get("content") if chat else choice.get("text")
    if text is None:
        raise _Retryable("response without text")
    usage = data.get("usage") or {}
    return Sample(
        problem_id=job.problem_id,
        sample_index=job.sample_index,
        text=text,
        prompt_tokens=usage.get("prompt_tokens"),
        completion_tokens=usage.get("completion_tokens"),
        finish_reason=choice.get("finish_reason"),
        cumulative_logprob=_cumulative_logprob(choice.get("logprobs"), chat),
    )


def _cumulative_logprob(logprobs: Any, chat: bool) -> float | None:
    if not logprobs:
        return None
    if chat:
        values = [t.get("logprob") for t in logprobs.get("content") or []]
    else:
        values = logprobs.get("token_logprobs") or []
    values = [v for v in values if v is not None]
    return round(float(sum(values)), 6) if values else None
