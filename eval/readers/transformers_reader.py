"""A reader for small local causal LMs through transformers, with its own seeded sampling loop on CPU or GPU.

The loop (rather than ``model.generate``) gives each of the ``n`` samples of a prompt its own ``torch.Generator``
seeded ``params.seed + i``, so sample i is reproducible on its own whatever ``n`` is, and lets us record exact token
counts and the model's log-probability of what it sampled. The prompt is prefilled once and its KV cache copied to the
``n`` samples (as prefix caching does in vLLM); samples that finish leave the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from catalog.errors import ConfigError
from eval.readers.base import ChatMessage, Completion, GenerationParams, ReaderError, register_reader


def render_plain(messages: Sequence[ChatMessage]) -> str:
    """The explicit template for tokenizers without a chat template: ``Role: content`` blocks, then ``Assistant:``."""
    blocks = [f"{m.role.capitalize()}: {m.content}" for m in messages]
    return "\n\n".join([*blocks, "Assistant:"])


@register_reader("transformers")
class TransformersReader:
    def __init__(
        self, model_path: str | Path, device: str = "cpu", dtype: str = "float32", chat_template: str | None = None
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self._torch = torch
        self.name = str(model_path)
        self.device = device
        if not isinstance(getattr(torch, dtype, None), torch.dtype):
            raise ConfigError(f"transformers reader: dtype {dtype!r} is not a torch dtype (float32, bfloat16, ...)")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(model_path))
            self.model = AutoModelForCausalLM.from_pretrained(str(model_path), dtype=getattr(torch, dtype))
        except (OSError, ValueError) as exc:
            raise ReaderError(f"transformers reader: cannot load model {model_path}: {exc}") from exc
        self.model.to(device).eval()
        if chat_template is not None:
            self.tokenizer.chat_template = chat_template
        self.n_params: int | None = sum(p.numel() for p in self.model.parameters())
        self.eos_ids = self._eos_ids()
        self.max_positions: int | None = getattr(self.model.config, "max_position_embeddings", None)

    def _eos_ids(self) -> set[int]:
        ids: set[int] = set()
        for value in (self.tokenizer.eos_token_id, getattr(self.model.generation_config, "eos_token_id", None)):
            if isinstance(value, int):
                ids.add(value)
            elif isinstance(value, (list, tuple)):
                ids.update(value)
        return ids

    # ---------------------------------------------------------------- prompts
    def render(self, messages: Sequence[ChatMessage]) -> str:
        if self.tokenizer.chat_template:
            chat = [{"role": m.role, "content": m.content} for m in messages]
            return self.tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        return render_plain(messages)

    def encode_prompt(self, messages: Sequence[ChatMessage]) -> list[int]:
        # A chat template writes its own special tokens (BOS); the plain template lets the tokenizer add them.
        add_special = not self.tokenizer.chat_template
        return self.tokenizer(self.render(messages), add_special_tokens=add_special)["input_ids"]

    # ---------------------------------------------------------------- generation
    def generate(self, prompts: Sequence[Sequence[ChatMessage]], params: GenerationParams) -> list[list[Completion]]:
        return [
            self._sample(self.encode_prompt(messages), params)
            for messages in tqdm(prompts, desc=f"generate ({self.name})", disable=None)
        ]

    def _check_length(self, n_tokens: int) -> None:
        if self.max_positions is not None and n_tokens > self.max_positions:
            raise ReaderError(
                f"{self.name}: prompt plus max_tokens is {n_tokens} tokens, over the model's context of "
                f"{self.max_positions}"
            )

    def _next_tokens(self, logits: Any, params: GenerationParams, generators: list[Any]) -> Any:
        torch = self._torch
        if params.temperature == 0:
            return logits.argmax(dim=-1)
        probs = torch.softmax(logits / params.temperature, dim=-1)
        if params.top_p < 1.0:
            sorted_probs, order = probs.sort(dim=-1, descending=True)
            # keep the smallest prefix whose mass reaches top_p (always at least the top token)
            outside = sorted_probs.cumsum(dim=-1) - sorted_probs >= params.top_p
            sorted_probs = sorted_probs.masked_fill(outside, 0.0)
            probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
        rows = [torch.multinomial(probs[i], 1, generator=generators[i]) for i in range(probs.shape[0])]
        return torch.cat(rows)

    def _sample(self, prompt_ids: list[int], params: GenerationParams) -> list[Completion]:
        torch = self._torch
        self._check_length(len(prompt_ids) + params.max_tokens)
        seeds = params.sample_seeds()
        generators = [torch.Generator(device=self.device).manual_seed(seed) for seed in seeds]
        n = params.n
        generated: list[list[int]] = [[] for _ in range(n)]
        logprobs = [0.0] * n
        finish: list[str | None] = [None] * n
        active = list(range(n))  # samples still generating, in the order of the cache's batch rows
        with torch.inference_mode():
            # One prefill, its KV cache copied to the n samples; finished samples leave the batch.
            out = self.model(input_ids=torch.tensor([prompt_ids], device=self.device), use_cache=True)
            past = out.past_key_values
            past.batch_repeat_interleave(n)
            logits = out.logits[:, -1, :].float().expand(n, -1)
            for step in range(params.max_tokens):
                next_ids = self._next_tokens(logits, params, [generators[i] for i in active])
                # the model's own log-probability of each sampled token (temperature 1, no top-p)
                token_logprobs = torch.log_softmax(logits, dim=-1).gather(-1, next_ids[:, None])[:, 0]
                keep = []
                for row, i in enumerate(active):
                    token = int(next_ids[row])
                    generated[i].append(token)
                    logprobs[i] += float(token_logprobs[row])
                    if token in self.eos_ids or self._hits_stop(generated[i], params.stop):
                        finish[i] = "stop"
                    else:
                        keep.append(row)
                if not keep or step == params.max_tokens - 1:
                    break
                if len(keep) < len(active):
                    rows = torch.tensor(keep, device=self.device)
                    past.batch_select_indices(rows)
                    next_ids = next_ids[rows]
                    active = [active[row] for row in keep]
                out = self.model(input_ids=next_ids[:, None], past_key_values=past, use_cache=True)
                past = out.past_key_values
                logits = out.logits[:, -1, :].float()
        return [
            Completion(
                text=self._final_text(generated[i], params.stop),
                prompt_tokens=len(prompt_ids),
                completion_tokens=len(generated[i]),
                seed=seeds[i],
                finish_reason=finish[i] or "length",
                logprob=logprobs[i],
            )
            for i in range(n)
        ]

    def _hits_stop(self, tokens: list[int], stop: tuple[str, ...]) -> bool:
        if not stop:
            return False
        text = self.tokenizer.decode(tokens, skip_special_tokens=True)
        return any(s in text for s in stop)

    def _final_text(self, tokens: list[int], stop: tuple[str, ...]) -> str:
        text = self.tokenizer.decode(tokens, skip_special_tokens=True)
        cuts = [text.index(s) for s in stop if s in text]
        return text[: min(cuts)] if cuts else text

    # ---------------------------------------------------------------- scoring
    def score(self, prompts: Sequence[Sequence[ChatMessage]], continuations: Sequence[str]) -> list[float]:
        torch = self._torch
        if len(prompts) != len(continuations):
            raise ValueError(f"score: {len(prompts)} prompts but {len(continuations)} continuations")
        scores = []
        with torch.inference_mode():
            for messages, continuation in zip(prompts, continuations, strict=True):
                prompt_ids = self.encode_prompt(messages)
                cont_ids = self.tokenizer(continuation, add_special_tokens=False)["input_ids"]
                if not cont_ids:
                    scores.append(0.0)
                    continue
                self._check_length(len(prompt_ids) + len(cont_ids))
                ids = torch.tensor([prompt_ids + cont_ids], device=self.device)
                logits = self.model(input_ids=ids).logits[0, len(prompt_ids) - 1 : -1].float()
                target = ids[0, len(prompt_ids) :]
                scores.append(float(torch.log_softmax(logits, dim=-1).gather(-1, target[:, None]).sum()))
        return scores
