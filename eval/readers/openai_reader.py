"""A reader for an OpenAI-compatible ``/v1/chat/completions`` endpoint (what ``vllm serve`` exposes), over httpx.

One request per prompt asks for all ``n`` samples with ``seed``. vLLM splits such a request into ``n`` child requests
whose seeds are ``seed + i`` (its ``ParentRequest``), which is exactly our convention, so choice i is recorded with
seed ``seed + i``. Servers that share one seed across choices (OpenAI's own API) can be asked one request per sample
with ``per_sample_requests=True``.

Per-choice completion tokens: the endpoint reports only the sum over choices in ``usage.completion_tokens``. With a
``count_tokens`` function (e.g. the model's tokenizer) each choice's text is counted; without one the sum is split
evenly over the choices (remainder to the first ones), which keeps totals exact for FLOP accounting but makes the
per-choice numbers an approximation.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from eval.readers.base import ChatMessage, Completion, GenerationParams, ReaderError, register_reader, split_evenly

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
MAX_BACKOFF_S = 30.0


def chat_completions_url(base_url: str) -> str:
    """``http://host:8000`` or ``http://host:8000/v1`` -> ``http://host:8000/v1/chat/completions``."""
    base = base_url.rstrip("/")
    return f"{base}/chat/completions" if base.endswith("/v1") else f"{base}/v1/chat/completions"


@register_reader("openai")
class OpenAIReader:
    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout: float = 120.0,
        max_retries: int = 5,
        backoff_s: float = 0.5,
        concurrency: int = 8,
        count_tokens: Callable[[str], int] | None = None,
        n_params: int | None = None,
        per_sample_requests: bool = False,
    ) -> None:
        self.name = model
        self.n_params = n_params
        self.url = chat_completions_url(base_url)
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.concurrency = concurrency
        self.count_tokens = count_tokens
        self.per_sample_requests = per_sample_requests
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(timeout=timeout, headers=headers)

    def close(self) -> None:
        self.client.close()

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST with retries on connection errors, timeouts, 429 and 5xx (exponential backoff, or Retry-After)."""
        last_error = ""
        for attempt in range(self.max_retries + 1):
            delay = min(self.backoff_s * 2**attempt, MAX_BACKOFF_S)
            try:
                response = self.client.post(self.url, json=body)
            except httpx.TransportError as exc:
                last_error = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code == 200:
                    try:
                        return response.json()
                    except ValueError:
                        raise ReaderError(f"{self.url}: response is not JSON: {response.text[:200]!r}") from None
                if response.status_code not in RETRY_STATUSES:
                    raise ReaderError(f"{self.url}: HTTP {response.status_code}: {response.text[:300]}")
                last_error = f"HTTP {response.status_code}"
                retry_after = response.headers.get("retry-after", "")
                if retry_after.replace(".", "", 1).isdigit():
                    delay = min(float(retry_after), MAX_BACKOFF_S)
            if attempt < self.max_retries:
                time.sleep(delay)
        raise ReaderError(f"{self.url}: failed after {self.max_retries + 1} attempts, last error {last_error}")

    def _request(
        self, messages: Sequence[ChatMessage], params: GenerationParams, n: int, seed: int
    ) -> list[Completion]:
        body: dict[str, Any] = {
            "model": self.name,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "n": n,
            "seed": seed,
        }
        if params.stop:
            body["stop"] = list(params.stop)
        reply = self._post(body)
        try:
            choices = sorted(reply["choices"], key=lambda c: c.get("index", 0))
            usage = reply.get("usage") or {}
            texts = [c["message"].get("content") or "" for c in choices]
        except (KeyError, TypeError, AttributeError) as exc:
            raise ReaderError(f"{self.url}: malformed chat completion ({exc!r}): {str(reply)[:300]}") from None
        if len(choices) != n:
            raise ReaderError(f"{self.url}: asked for {n} choices, got {len(choices)}")
        if self.count_tokens is not None:
            completion_tokens = [self.count_tokens(text) for text in texts]
        else:
            completion_tokens = split_evenly(int(usage.get("completion_tokens", 0)), n)
        return [
            Completion(
                text=text,
                prompt_tokens=int(usage.get("prompt_tokens", 0)),
                completion_tokens=completion_tokens[i],
                seed=seed + i,
                finish_reason=choices[i].get("finish_reason") or "stop",
            )
            for i, text in enumerate(texts)
        ]

    def _generate_one(self, messages: Sequence[ChatMessage], params: GenerationParams) -> list[Completion]:
        if not self.per_sample_requests:
            return self._request(messages, params, params.n, params.seed)
        return [self._request(messages, params, 1, seed)[0] for seed in params.sample_seeds()]

    def generate(self, prompts: Sequence[Sequence[ChatMessage]], params: GenerationParams) -> list[list[Completion]]:
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(lambda messages: self._generate_one(messages, params), prompts))

    def score(self, prompts: Sequence[Sequence[ChatMessage]], continuations: Sequence[str]) -> list[float]:
        raise NotImplementedError("the chat completions endpoint cannot score a given continuation")
