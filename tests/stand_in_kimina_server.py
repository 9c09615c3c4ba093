"""STAND-IN for a Kimina Lean Server in tests: NOT Lean. An HTTP server speaking Kimina's
request/response shapes (project-numina/kimina-lean-server, server/routers/check.py and
client/kimina_client/models.py): `POST /api/check` with `{"snippets": [{"id", "code"}],
"timeout", "debug", "reuse"}` answers `{"results": [{"id", "time", "response"|"error"}]}`, with
the code split into header (leading `import` lines) and body and message lines shifted back to
the whole snippet, as the server does; `legacy=True` serves only the old `POST /verify`
(`{"codes": [{"custom_id", "proof"}]}` -> `{"results": [{"custom_id", "response"|"error"}]}`).
The body is judged by the stand-in REPL's rules (`tests/stand_in_lean_repl.py`), in process.

Fault injection: `fail_requests` (the first N requests get HTTP 500), `drop_once` (snippet codes
containing it are left out of their first answer), `api_key` (requests without
`Authorization: Bearer <key>` get HTTP 401). `seen` counts how often each code was received.
"""

from __future__ import annotations

import collections
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .stand_in_lean_repl import Session


def split_header(code: str) -> tuple[str, str, int]:
    lines = code.split("\n")
    i = 0
    while i < len(lines) and (not lines[i].strip() or lines[i].strip().startswith("import ")):
        i += 1
    return "\n".join(lines[:i]), "\n".join(lines[i:]), i


class StandInKimina(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        *,
        legacy: bool = False,
        fail_requests: int = 0,
        drop_once: str | None = None,
        api_key: str | None = None,
    ) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.legacy = legacy
        self.fail_requests = fail_requests
        self.drop_once = drop_once
        self.api_key = api_key
        self.seen: collections.Counter[str] = collections.Counter()
        self.requests = 0
        self.batch_sizes: list[int] = []
        self.sessions: dict[str, tuple[Session, int]] = {}
        self.lock = threading.Lock()
        self._dropped: set[str] = set()
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> StandInKimina:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
        self.server_close()

    def judge(self, code: str, timeout: int) -> dict:
        """One snippet's result: `response` (the REPL answer) or `error`."""
        header, body, offset = split_header(code)
        if "stand_in_hang" in body:
            return {
                "error": f"Lean REPL command timed out in {timeout} seconds",
                "time": float(timeout),
            }
        with self.lock:
            if header not in self.sessions:
                session = Session()
                self.sessions[header] = (session, session.answer({"cmd": header})["env"])
            session, env = self.sessions[header]
            response = session.answer({"cmd": body, "env": env})
        for m in response.get("messages", []):
            for key in ("pos", "endPos"):
                if m.get(key):
                    m[key]["line"] += offset
        return {"response": response, "time": 0.01}


class _Handler(BaseHTTPRequestHandler):
    server: StandInKimina

    def log_message(self, *args) -> None:  # quiet
        pass

    def _reply(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        server = self.server
        length = int(self.headers.get("Content-Length") or 0)
        payload = json.loads(self.rfile.read(length) or b"{}")
        with server.lock:
            server.requests += 1
            failing = server.requests <= server.fail_requests
        path = "/verify" if server.legacy else "/api/check"
        if self.path != path:
            self._reply(404, {"detail": "Not Found"})
            return
        if server.api_key and self.headers.get("Authorization") != f"Bearer {server.api_key}":
            self._reply(401, {"detail": "Invalid API key"})
            return
        if failing:
            self._reply(500, {"detail": "Internal Server Error"})
            return
        if server.legacy:
            items = [(c["custom_id"], c["proof"]) for c in payload["codes"]]
            id_key = "custom_id"
        else:
            items = [(s["id"], s["code"]) for s in payload["snippets"]]
            id_key = "id"
        server.batch_sizes.append(len(items))
        results = []
        for snippet_id, code in items:
            with server.lock:
                server.seen[code] += 1
                drop = server.drop_once and server.drop_once in code and code not in server._dropped
                if drop:
                    server._dropped.add(code)
            if drop:
                continue
            results.append(
                {id_key: snippet_id, **server.judge(code, int(payload.get("timeout", 30)))}
            )
        self._reply(200, {"results": results})
