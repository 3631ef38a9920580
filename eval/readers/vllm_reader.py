"""A reader on an in-process vLLM engine (the ``gpu`` extra). vLLM is imported only when this reader is built."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from catalog.errors import ConfigError
from eval.readers.base import ChatMessage, Completion, GenerationParams, register_reader


@register_reader("vllm")
class VLLMReader:
    """``vllm.LLM`` with prefix caching (the n samples of a prompt, and prompts sharing retrieved context, reuse the
    prompt's KV cache). One request per prompt with ``SamplingParams(n, seed)``: vLLM gives sample i seed ``seed + i``.
    """

    def __init__(self, model: str, n_params: int | None = None, **llm_kwargs: Any) -> None:
        try:
            import vllm
        except ImportError:
            raise ConfigError(
                "reader 'vllm': the vllm package is not installed (install the gpu extra: pip install 'reread[gpu]')"
            ) from None
        self._vllm = vllm
        self.name = model
        self.n_params = n_params
        llm_kwargs.setdefault("enable_prefix_caching", True)
        self.llm = vllm.LLM(model=model, **llm_kwargs)
        self.tokenizer = self.llm.get_tokenizer()

    def render(self, messages: Sequence[ChatMessage]) -> str:
        chat = [{"role": m.role, "content": m.content} for m in messages]
        return self.tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)

    def generate(self, prompts: Sequence[Sequence[ChatMessage]], params: GenerationParams) -> list[list[Completion]]:
        sampling = self._vllm.SamplingParams(
            n=params.n,
            seed=params.seed,
            temperature=params.temperature,
            top_p=params.top_p,
            max_tokens=params.max_tokens,
            stop=list(params.stop) or None,
        )
        outputs = self.llm.generate([self.render(m) for m in prompts], sampling)
        return [
            [
                Completion(
                    text=sample.text,
                    prompt_tokens=len(output.prompt_token_ids),
                    completion_tokens=len(sample.token_ids),
                    seed=params.seed + sample.index,
                    finish_reason=sample.finish_reason or "stop",
                    logprob=sample.cumulative_logprob,
                )
                for sample in sorted(output.outputs, key=lambda s: s.index)
            ]
            for output in outputs
        ]

    def score(self, prompts: Sequence[Sequence[ChatMessage]], continuations: Sequence[str]) -> list[float]:
        """Sum of the continuation tokens' log-probabilities from vLLM's prompt logprobs (``prompt_logprobs=0``
        returns each prompt token's own log-probability), on the token ids the transformers reader scores: the
        rendered prompt's, then the continuation's. Not exercised by the test suite (vLLM needs a GPU)."""
        if len(prompts) != len(continuations):
            raise ValueError(f"score: {len(prompts)} prompts but {len(continuations)} continuations")
        sampling = self._vllm.SamplingParams(max_tokens=1, prompt_logprobs=0)
        requests, starts = [], []
        for messages, continuation in zip(prompts, continuations, strict=True):
            prompt_ids = self.tokenizer(self.render(messages), add_special_tokens=False)["input_ids"]
            cont_ids = self.tokenizer(continuation, add_special_tokens=False)["input_ids"]
            requests.append({"prompt_token_ids": prompt_ids + cont_ids})
            starts.append(len(prompt_ids))
        outputs = self.llm.generate(requests, sampling)
        scores = []
        for output, start in zip(outputs, starts, strict=True):
            ids, logprobs = output.prompt_token_ids, output.prompt_logprobs
            scores.append(float(sum(logprobs[i][ids[i]].logprob for i in range(max(start, 1), len(ids)))))
        return scores
