"""Client of a Kimina Lean Server (project-numina/kimina-lean-server): the same commands as the
REPL pool, sent over HTTP to a pool of REPLs someone already runs.

API (server/routers/check.py, client/kimina_client/models.py): `POST {url}/api/check` with
`{"snippets": [{"id", "code"}], "timeout": seconds, "debug": false, "reuse": true}` answers
`{"results": [{"id", "time", "error"?, "response"?}]}`, where `response` is the REPL's own answer
(`{"env", "messages", "sorries"}` or `{"message"}`) and `error` a server-side failure ("Lean REPL
command timed out in N seconds" for a timeout). The API key goes in `Authorization: Bearer ...`.
Servers before 2.0 only have `POST {url}/verify` with `{"codes": [{"custom_id", "proof"}],
"timeout"}` answering `{"results": [{"custom_id", "error"?, "response"?}]}`; the client falls
back to it when `/api/check` is not found.

Commands go in batches of `batch_size`, `concurrency` batches at a time. A failed request
(connection refused, HTTP 429/5xx, a broken answer) is retried with exponential backoff; a
snippet that got its answer is never sent again, and one whose answer is missing or a server
error is retried alone. After the last try a proof without an answer is `error`.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from monkeyflow.verify.lean.repl import Outcome

CHECK_PATH = "/api/check"
LEGACY_PATH = "/verify"


class ServerError(RuntimeError):
    """A request failed; `retry` says whether trying again may help."""

    def __init__(self, message: str, retry: bool = True) -> None:
        super().__init__(message)
        self.retry = retry


class KiminaClient:
    """Checks commands on a Kimina Lean Server at `url`."""

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None,
        api_key_env: str,
        timeout_s: float,
        batch_size: int,
        concurrency: int,
        retries: int,
        backoff_s: float,
        http_timeout_s: float | None,
        lean_version: str | None,
    ) -> None:
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.api_key_env = api_key_env
        self.timeout_s = timeout_s
        self.batch_size = max(1, batch_size)
        self.concurrency = max(1, concurrency)
        self.retries = retries
        self.backoff_s = backoff_s
        # A batch's snippets run side by side on the server, but may wait for a free REPL and
        # for a fresh REPL's Mathlib import first.
        self.http_timeout_s = http_timeout_s or (2 * timeout_s + 600)
        self.lean_version = lean_version
        self.path = CHECK_PATH
        self._version_checked = False
        self._lock = threading.Lock()

    # -- HTTP -------------------------------------------------------------------------------------
    def _post(self, path: str, payload: dict[str, Any]) -> Any:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(
            self.url + path,
            data=json.dumps(payload, ensure_ascii=False).encode("utf-8"),
            headers=headers,
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.http_timeout_s) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:300].decode("utf-8", "replace")
            if exc.code in (401, 403):
                raise ServerError(
                    f"the Lean server at {self.url} refused the request (HTTP {exc.code}: {detail}): "
                    f"put its API key in ${self.api_key_env} (lean.api_key_env)",
                    retry=False,
                ) from None
            if exc.code == 404:
                raise ServerError(f"{self.url}{path} not found (HTTP 404)", retry=False) from None
            retry = exc.code == 429 or exc.code >= 500
            raise ServerError(
                f"HTTP {exc.code} from {self.url}{path}: {detail}", retry=retry
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ServerError(f"cannot reach the Lean server at {self.url}: {reason}") from None
        try:
            return json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ServerError(f"the Lean server answered with no JSON: {body[:200]!r}") from None

    def _send(self, snippets: list[tuple[str, str]]) -> dict[str, dict[str, Any]]:
        """Answers by snippet id for one request (a Kimina `ReplResponse`-like dict each)."""
        timeout = max(1, math.ceil(self.timeout_s))
        if self.path == CHECK_PATH:
            payload = {
                "snippets": [{"id": i, "code": code} for i, code in snippets],
                "timeout": timeout,
                "debug": False,
                "reuse": True,
            }
            try:
                answer = self._post(CHECK_PATH, payload)
            except ServerError as exc:
                if "HTTP 404" not in str(exc):
                    raise
                with self._lock:
                    self.path = LEGACY_PATH  # a server before 2.0
                return self._send(snippets)
            key = "id"
        else:
            payload = {
                "codes": [{"custom_id": i, "proof": code} for i, code in snippets],
                "timeout": timeout,
            }
            answer = self._post(LEGACY_PATH, payload)
            key = "custom_id"
        results = answer.get("results") if isinstance(answer, dict) else None
        if not isinstance(results, list):
            raise ServerError(
                f"the Lean server's answer has no `results` list: {str(answer)[:200]}"
            )
        out: dict[str, dict[str, Any]] = {}
        for result in results:
            if isinstance(result, dict) and str(result.get(key)) not in out:
                out[str(result.get(key))] = result
        return out

    # -- checking ---------------------------------------------------------------------------------
    def run(self, full_texts: Sequence[str], version_probe: str | None = None) -> list[Outcome]:
        """Outcomes for the given Lean files (header + command each), in order."""
        if not full_texts:
            return []
        if version_probe is not None and self.lean_version and not self._version_checked:
            failure = self._check_version(version_probe)
            if failure:
                return [Outcome("error", detail=failure) for _ in full_texts]
        outcomes: list[Outcome | None] = [None] * len(full_texts)
        batches = [
            list(range(start, min(start + self.batch_size, len(full_texts))))
            for start in range(0, len(full_texts), self.batch_size)
        ]
        fatal: list[str] = []

        def run_batch(indices: list[int]) -> None:
            pending = list(indices)
            last = ""
            for attempt in range(self.retries + 1):
                if fatal:
                    last = fatal[0]
                    break
                if attempt:
                    time.sleep(min(30.0, self.backoff_s * 2 ** (attempt - 1)))
                try:
                    answers = self._send([(str(i), full_texts[i]) for i in pending])
                except ServerError as exc:
                    last = str(exc)
                    if not exc.retry:
                        fatal.append(last)
                        break
                    continue
                still = []
                for i in pending:
                    outcome = _outcome(answers.get(str(i)))
                    if outcome is None:
                        still.append(i)
                        last = _missing(answers.get(str(i)))
                    else:
                        outcomes[i] = outcome
                pending = still
                if not pending:
                    return
            for i in pending:
                outcomes[i] = Outcome(
                    "error",
                    detail=f"no verdict from the Lean server after {self.retries + 1} tries: {last}",
                )

        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(batches))) as pool:
            list(pool.map(run_batch, batches))
        return [o if o is not None else Outcome("error", detail="not checked") for o in outcomes]

    def _check_version(self, probe: str) -> str | None:
        """None if the server runs `lean_version`, else why not (also when it cannot be asked)."""
        outcome = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(min(30.0, self.backoff_s * 2 ** (attempt - 1)))
            try:
                outcome = _outcome(self._send([("lean-version", probe)]).get("lean-version"))
            except ServerError as exc:
                if not exc.retry:
                    return str(exc)
                outcome = Outcome("error", detail=str(exc))
                continue
            if outcome is not None and outcome.kind == "response":
                break
        if outcome is None or outcome.kind != "response":
            return f"could not ask the Lean server for its Lean version: {outcome.detail if outcome else 'no answer'}"
        response = outcome.response
        found = [
            str(m.get("data", "")).strip().strip('"')
            for m in (response.get("messages") or [] if isinstance(response, dict) else [])
            if isinstance(m, dict) and m.get("severity") == "info"
        ]
        if found[-1:] != [self.lean_version]:
            return (
                f"the Lean server runs Lean {found[-1] if found else '(unknown)'} but lean.lean_version is "
                f"{self.lean_version!r}: set lean.lean_version to the server's version (it is part of the verdict cache key)"
            )
        self._version_checked = True
        return None


def _outcome(result: dict[str, Any] | None) -> Outcome | None:
    """The outcome of one answered snippet, or None when it should be sent again."""
    if not isinstance(result, dict):
        return None
    error = result.get("error")
    if error:
        if "timed out" in str(error):
            return Outcome("timeout", detail=f"the Lean server: {str(error)[:200]}")
        return None
    response = result.get("response")
    if isinstance(response, dict) and "message" in response and "messages" not in response:
        return None  # the REPL's own failure (e.g. "Unknown environment."): another REPL may do
    if not isinstance(response, dict):
        return None
    return Outcome("response", response=response)


def _missing(result: dict[str, Any] | None) -> str:
    if not isinstance(result, dict):
        return "the answer left the proof out"
    if result.get("error"):
        return f"server error: {str(result['error'])[:300]}"
    response = result.get("response")
    if isinstance(response, dict) and "message" in response:
        return f"the REPL failed: {str(response['message'])[:300]}"
    return f"malformed answer {str(result)[:200]}"


def api_key_from(env: str) -> str | None:
    """The API key from environment variable `env` (None when unset or empty)."""
    return os.environ.get(env) or None
