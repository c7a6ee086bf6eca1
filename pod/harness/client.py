"""Minimal OpenAI-compatible client for vLLM (urllib only), with retries on connection errors and 5xx."""

from __future__ import annotations

import http.client
import json
import logging
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("harness.client")


class FatalRequestError(RuntimeError):
    """The server cannot serve requests (dead, misconfigured, timing out): the run stops."""


class SampleRequestError(RuntimeError):
    """This sample alone cannot be served (prompt longer than the context): recorded, and the run goes on."""


@dataclass(frozen=True)
class ChatResult:
    content: str | None
    reasoning: str | None  # the reasoning parser's field, when the server has one
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_ms: float


def _is_timeout(exc: BaseException) -> bool:
    return isinstance(exc, TimeoutError) or (
        isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, TimeoutError)
    )


class VllmClient:
    def __init__(self, base_url: str, timeout_s: float, retries: int = 2, backoff_s: float = 1.0) -> None:
        self.base_url = base_url
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s

    def _request(self, path: str, body: dict[str, Any] | None, timeout_s: float) -> Any:
        """JSON request with retries; returns the decoded JSON body."""
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        what = f"{'POST' if data is not None else 'GET'} {path}"
        error: BaseException | None = None
        for attempt in range(self.retries + 1):
            request = urllib.request.Request(self.base_url + path, data=data, headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=timeout_s) as response:
                    return json.loads(response.read())
            except urllib.error.HTTPError as exc:
                detail = exc.read().decode(errors="replace")[:2000]
                if exc.code < 500:
                    if exc.code == 400 and "maximum context length" in detail:
                        raise SampleRequestError(f"HTTP 400: {detail}") from exc
                    raise FatalRequestError(f"{what} -> HTTP {exc.code}: {detail}") from exc
                error = exc
            except (urllib.error.URLError, ConnectionError, http.client.HTTPException, TimeoutError) as exc:
                if _is_timeout(exc):
                    # A stuck server would stall again; fail and let the orchestrator resume later.
                    raise FatalRequestError(f"{what} timed out after {timeout_s}s") from exc
                error = exc
            except json.JSONDecodeError as exc:
                raise FatalRequestError(f"{what} returned invalid JSON: {exc}") from exc
            if attempt < self.retries:
                wait = self.backoff_s * 2**attempt
                log.warning("%s failed (%s); retry %d/%d in %.1fs", what, error, attempt + 1, self.retries, wait)
                time.sleep(wait)
        raise FatalRequestError(f"{what} failed after {self.retries + 1} attempts: {error}") from error

    def get_json(self, path: str, timeout_s: float = 10.0) -> Any:
        return self._request(path, None, timeout_s)

    def chat(self, body: dict[str, Any]) -> ChatResult:
        started = time.monotonic()
        payload = self._request("/v1/chat/completions", body, self.timeout_s)
        latency_ms = (time.monotonic() - started) * 1000
        try:
            choice = payload["choices"][0]
            message = choice["message"]
            usage = payload.get("usage") or {}
        except (KeyError, IndexError, TypeError) as exc:
            raise FatalRequestError(f"unexpected chat completion shape: {str(payload)[:500]}") from exc
        # vLLM renamed `reasoning_content` to `reasoning` (reference/pod-side.md 2.1); read either.
        reasoning = message.get("reasoning") or message.get("reasoning_content")
        return ChatResult(
            content=message.get("content"),
            reasoning=reasoning,
            finish_reason=choice.get("finish_reason"),
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            latency_ms=latency_ms,
        )
