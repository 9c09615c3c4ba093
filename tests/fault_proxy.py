"""A local HTTP proxy that injects faults in front of an OpenAI-compatible server, and a tiny
fake server to stand behind it when the real one (`vllm serve`) is not needed.

Faults follow a fixed cycle over the requests the proxy receives (request n gets
`pattern[(n - 1) % len(pattern)]`), so a run sees every kind:
  ok           forward, return the server's answer
  503 / 429    answer that status without asking the server (429 with `Retry-After: 0.2`)
  delay        wait `delay_s`, then forward (slow, but within the client's timeout)
  stall        hold the request for `stall_s` (longer than the client's timeout), then drop it
  drop_before  close the connection without asking the server
  drop_after   ask the server, then close the connection without answering: the server did the
               work, so a client that retries must still keep only one sample
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections import Counter

from aiohttp import ClientSession, ClientTimeout, web

DEFAULT_PATTERN = (
    "ok",
    "503",
    "ok",
    "drop_after",
    "429",
    "delay",
    "ok",
    "drop_before",
    "stall",
    "ok",
)


class _BackgroundApp:
    """An aiohttp application served on 127.0.0.1 from its own thread and event loop."""

    def __init__(self) -> None:
        self.port: int | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        raise NotImplementedError

    async def _start(self) -> None:
        self._runner = web.AppRunner(self.app(), handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        await self.on_stop()
        if self._runner is not None:
            await self._runner.cleanup()

    async def on_stop(self) -> None:
        pass

    def __enter__(self):
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=30)
        return self

    def __exit__(self, *exc) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class FaultProxy(_BackgroundApp):
    """Forward every request to `upstream` (e.g. http://127.0.0.1:8000), injecting faults."""

    def __init__(
        self, upstream: str, pattern=DEFAULT_PATTERN, delay_s: float = 1.0, stall_s: float = 6.0
    ) -> None:
        super().__init__()
        self.upstream = upstream.rstrip("/")
        self.pattern = tuple(pattern)
        self.delay_s = delay_s
        self.stall_s = stall_s
        self.requests = 0
        self.injected: Counter = Counter()  # fault kind -> times
        self.headers_seen: list[dict[str, str]] = []
        self._session: ClientSession | None = None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def on_stop(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _forward(self, request: web.Request, body: bytes) -> tuple[int, bytes, str]:
        if self._session is None:
            self._session = ClientSession(timeout=ClientTimeout(total=900))
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() in ("content-type", "authorization")
        }
        async with self._session.request(
            request.method, self.upstream + request.path_qs, data=body, headers=headers
        ) as resp:
            return (
                resp.status,
                await resp.read(),
                resp.headers.get("Content-Type", "application/json"),
            )

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests += 1
        self.headers_seen.append(dict(request.headers))
        kind = (
            self.pattern[(self.requests - 1) % len(self.pattern)]
            if request.method == "POST"
            else "ok"
        )
        self.injected[kind] += 1
        if kind in ("503", "429"):
            headers = {"Retry-After": "0.2"} if kind == "429" else {}
            return web.json_response(
                {"error": {"message": f"injected {kind}"}}, status=int(kind), headers=headers
            )
        if kind == "delay":
            await asyncio.sleep(self.delay_s)
        if kind == "stall":
            await asyncio.sleep(self.stall_s)
            return _drop(request)
        if kind == "drop_before":
            return _drop(request)
        status, payload, content_type = await self._forward(request, body)
        if kind == "drop_after":
            return _drop(request)
        return web.Response(status=status, body=payload, headers={"Content-Type": content_type})


def _drop(request: web.Request) -> web.StreamResponse:
    """Close the client's connection without an answer (what a crashed server or LB does)."""
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=500)  # never reaches the client: the connection is gone


class FakeOpenAIServer(_BackgroundApp):
    """Answers /v1/completions and /v1/chat/completions with text that is a function of the
    request (prompt, seed), with usage; counts how often each (prompt, seed) was generated."""

    def __init__(self) -> None:
        super().__init__()
        self.generated: Counter = Counter()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/completions", self._handle)
        app.router.add_post("/v1/chat/completions", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        chat = "messages" in body
        prompt = str(body["messages"] if chat else body["prompt"])
        key = hashlib.sha256(f"{prompt}|{body.get('seed')}".encode()).hexdigest()[:8]
        self.generated[(prompt, body.get("seed"))] += 1
        text = f"The answer is {int(key, 16) % 100}. #### {int(key, 16) % 100}"
        choice = {"index": 0, "finish_reason": "stop"}
        choice.update(
            {"message": {"role": "assistant", "content": text}} if chat else {"text": text}
        )
        if body.get("logprobs") is not None and body.get("logprobs") is not False:
            lp = [-0.5, -0.25]
            choice["logprobs"] = (
                {"content": [{"logprob": v} for v in lp]} if chat else {"token_logprobs": lp}
            )
        return web.json_response(
            {
                "id": key,
                "object": "chat.completion" if chat else "text_completion",
                "model": body["model"],
                "choices": [choice],
                "usage": {
                    "prompt_tokens": len(prompt.split()),
                    "completion_tokens": 7,
                    "total_tokens": 0,
                },
            }
        )
