"""A reader for an OpenAI-compatible ``/v1/chat/completions`` endpoint (what ``vllm serve`` exposes), over httpx.

One request per prompt asks for all ``n`` samples with ``seed``. vLLM splits such a request into ``n`` child requests
whose seeds are ``seed + i`` (its ``ParentRequest``), which is exactly our convention, so choice i is recorded with
seed ``seed + i``. Servers that share one seed across choices (OpenAI's own API) can be asked one request per sample
with ``per_sample_requests=True``.

Servers that answer a request for ``n`` choices with a single one (llama.cpp's server does) are detected on the first
such reply: the reader logs a warning and from then on asks one request per sample.

Scoring (``score``, for verifiers) uses the legacy ``/v1/completions`` endpoint with ``echo`` and ``logprobs`` and
``max_tokens: 0``: the server returns the log-probability of every prompt token, and the continuation's tokens are
those at or after the prompt text's length. The chat messages are rendered to text with ``chat_template`` (the model's
Jinja chat template, as in its tokenizer config) or else the plain ``Role: content`` template. vLLM's server supports
this; OpenAI's chat models and llama.cpp's server do not, and get a ReaderError naming the server.

Per-choice completion tokens: the endpoint reports only the sum over choices in ``usage.completion_tokens``. With a
``count_tokens`` function (e.g. the model's tokenizer) each choice's text is counted; without one the sum is split
evenly over the choices (remainder to the first ones), which keeps totals exact for FLOP accounting but makes the
per-choice numbers an approximation.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from eval.readers.base import (
    ChatMessage,
    Completion,
    GenerationParams,
    ReaderError,
    register_reader,
    render_plain,
    split_evenly,
)

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
MAX_BACKOFF_S = 30.0


def endpoint_url(base_url: str, endpoint: str = "chat/completions") -> str:
    """``http://host:8000`` or ``http://host:8000/v1`` -> ``http://host:8000/v1/<endpoint>``."""
    base = base_url.rstrip("/")
    return f"{base}/{endpoint}" if base.endswith("/v1") else f"{base}/v1/{endpoint}"


def chat_completions_url(base_url: str) -> str:
    return endpoint_url(base_url, "chat/completions")


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
        chat_template: str | None = None,
    ) -> None:
        self.name = model
        self.n_params = n_params
        self.url = chat_completions_url(base_url)
        self.completions_url = endpoint_url(base_url, "completions")
        self.chat_template = chat_template
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.concurrency = concurrency
        self.count_tokens = count_tokens
        self.per_sample_requests = per_sample_requests
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(timeout=timeout, headers=headers)

    def close(self) -> None:
        self.client.close()

    def _post(self, body: dict[str, Any], url: str | None = None) -> dict[str, Any]:
        """POST with retries on connection errors, timeouts, 429 and 5xx (exponential backoff, or Retry-After)."""
        url = url or self.url
        last_error = ""
        for attempt in range(self.max_retries + 1):
            delay = min(self.backoff_s * 2**attempt, MAX_BACKOFF_S)
            try:
                response = self.client.post(url, json=body)
            except httpx.TransportError as exc:
                last_error = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code == 200:
                    try:
                        return response.json()
                    except ValueError:
                        raise ReaderError(f"{url}: response is not JSON: {response.text[:200]!r}") from None
                if response.status_code not in RETRY_STATUSES:
                    raise ReaderError(f"{url}: HTTP {response.status_code}: {response.text[:300]}")
                last_error = f"HTTP {response.status_code}"
                retry_after = response.headers.get("retry-after", "")
                if retry_after.replace(".", "", 1).isdigit():
                    delay = min(float(retry_after), MAX_BACKOFF_S)
            if attempt < self.max_retries:
                time.sleep(delay)
        raise ReaderError(f"{url}: failed after {self.max_retries + 1} attempts, last error {last_error}")

    def _request(
        self, messages: Sequence[ChatMessage], params: GenerationParams, n: int, seed: int
    ) -> list[Completion] | None:
        """The ``n`` choices of one request, or None when the server answered a request for n > 1 with one."""
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
        if len(choices) == 1 and n > 1:
            return None  # the server ignores n (llama.cpp's does): the caller falls back to one request per sample
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
            completions = self._request(messages, params, params.n, params.seed)
            if completions is not None:
                return completions
            if not self.per_sample_requests:
                log.warning(
                    "%s answered a request for n=%d choices with one (llama.cpp's server ignores n): asking one "
                    "request per sample from now on", self.url, params.n,
                )  # fmt: skip
                self.per_sample_requests = True
        return [self._request(messages, params, 1, seed)[0] for seed in params.sample_seeds()]

    def generate(self, prompts: Sequence[Sequence[ChatMessage]], params: GenerationParams) -> list[list[Completion]]:
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(lambda messages: self._generate_one(messages, params), prompts))

    def render(self, messages: Sequence[ChatMessage]) -> str:
        """The chat as the text the model reads: ``chat_template`` (Jinja, sandboxed) or the plain template."""
        if self.chat_template is None:
            return render_plain(messages)
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        template = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True).from_string(self.chat_template)
        chat = [{"role": m.role, "content": m.content} for m in messages]
        return template.render(messages=chat, add_generation_prompt=True, bos_token="", eos_token="")

    def _score_one(self, messages: Sequence[ChatMessage], continuation: str) -> float:
        prompt = self.render(messages)
        body = {"model": self.name, "prompt": prompt + continuation, "max_tokens": 0, "echo": True, "logprobs": 0}
        unsupported = (
            f"{self.completions_url} cannot score a continuation: scoring needs a completions endpoint that accepts "
            "echo=true with logprobs and max_tokens=0 (vLLM's server does; OpenAI's chat models and llama.cpp's "
            "server do not)"
        )
        try:
            reply = self._post(body, self.completions_url)
        except ReaderError as exc:
            raise ReaderError(f"{unsupported}: {exc}") from None
        try:
            logprobs = reply["choices"][0]["logprobs"]
            offsets, values = logprobs["text_offset"], logprobs["token_logprobs"]
        except (KeyError, IndexError, TypeError) as exc:
            raise ReaderError(f"{unsupported}: the reply has no echoed prompt logprobs ({exc!r})") from None
        if not isinstance(offsets, list) or not isinstance(values, list) or len(offsets) != len(values):
            raise ReaderError(f"{unsupported}: malformed logprobs in the reply")
        # tokens that start at or after the end of the prompt text are the continuation's
        return float(
            sum(v for offset, v in zip(offsets, values, strict=True) if offset >= len(prompt) and v is not None)
        )

    def score(self, prompts: Sequence[Sequence[ChatMessage]], continuations: Sequence[str]) -> list[float]:
        """Sum of log-probabilities of each continuation after its rendered prompt, from the server's echoed
        prompt logprobs (see the module docstring for which servers support it)."""
        if len(prompts) != len(continuations):
            raise ValueError(f"score: {len(prompts)} prompts but {len(continuations)} continuations")
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(self._score_one, prompts, continuations))
