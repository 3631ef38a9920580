"""A reader for small local causal LMs through transformers, with its own seeded sampling loop on CPU or GPU.

The loop (rather than ``model.generate``) gives each of the ``n`` samples of a prompt its own ``torch.Generator``
seeded ``params.seed + i``, so sample i is reproducible on its own whatever ``n`` is, and lets us record exact token
counts and the model's log-probability of what it sampled. Prompts are sorted by length and batched (left-padded,
``batch_size`` prompts per forward pass); each prompt is prefilled once and its KV cache copied to its ``n`` samples
(as prefix caching does in vLLM); samples that finish leave the batch. Padding changes float rounding, so a greedy
answer can differ in rare near-ties between a prompt generated alone and in a batch.

``model_path`` is a model folder, a ``.gguf`` file, or a bundled model name (``eval.readers.model_files``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from catalog.errors import ConfigError
from eval.readers.base import ChatMessage, Completion, GenerationParams, ReaderError, register_reader, render_plain
from eval.readers.model_files import converted_gguf, resolve_model
from indexing.embed import MODEL_LOAD_LOCK


@register_reader("transformers")
class TransformersReader:
    def __init__(
        self,
        model_path: str | Path,
        device: str = "cpu",
        dtype: str = "float32",
        chat_template: str | None = None,
        threads: int | None = None,
        batch_size: int = 8,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self._torch = torch
        self.name = str(model_path)
        self.device = device
        if batch_size < 1:
            raise ConfigError(f"transformers reader: batch_size must be at least 1, got {batch_size}")
        self.batch_size = batch_size
        if threads is not None:
            if threads < 1:
                raise ConfigError(f"transformers reader: threads must be at least 1, got {threads}")
            torch.set_num_threads(threads)
        if not isinstance(getattr(torch, dtype, None), torch.dtype):
            raise ConfigError(f"transformers reader: dtype {dtype!r} is not a torch dtype (float32, bfloat16, ...)")
        files = resolve_model(model_path)
        folder = converted_gguf(files) if files.gguf_file else files.folder
        try:
            with MODEL_LOAD_LOCK:
                self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
                self.model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=getattr(torch, dtype))
        except (OSError, ValueError) as exc:
            raise ReaderError(f"transformers reader: cannot load model {model_path}: {exc}") from exc
        self.model.to(device).eval()
        if chat_template is not None:
            self.tokenizer.chat_template = chat_template
        self.n_params: int | None = sum(p.numel() for p in self.model.parameters())
        self.eos_ids = self._eos_ids()
        self.pad_id = (
            self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else min(self.eos_ids, default=0)
        )
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
        encoded = [self.encode_prompt(messages) for messages in prompts]
        for ids in encoded:
            self._check_length(len(ids) + params.max_tokens)
        # Prompts of similar length share a batch: left padding to the longest prompt is computed like real
        # tokens, so batching in the given order wastes up to a third of prefill on mixed-length prompts.
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        out: list[list[Completion]] = [[] for _ in encoded]
        starts = range(0, len(order), self.batch_size)
        for start in tqdm(
            starts, desc=f"generate ({self.name})", unit="batch", disable=None if len(starts) > 1 else True
        ):
            rows = order[start : start + self.batch_size]
            for i, completions in zip(rows, self._sample_batch([encoded[i] for i in rows], params), strict=True):
                out[i] = completions
        return out

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

    def _sample_batch(self, prompts: list[list[int]], params: GenerationParams) -> list[list[Completion]]:
        """``params.n`` samples of each prompt; row ``p * n + i`` of the batch is sample i of prompt p."""
        torch = self._torch
        n, width = params.n, max(len(ids) for ids in prompts)
        seeds = params.sample_seeds()
        rows = len(prompts) * n
        generators = [torch.Generator(device=self.device).manual_seed(seeds[r % n]) for r in range(rows)]
        generated: list[list[int]] = [[] for _ in range(rows)]
        logprobs = [0.0] * rows
        finish: list[str | None] = [None] * rows
        active = list(range(rows))  # rows still generating, in the order of the cache's batch rows
        # left padding: every prompt ends at the last column, and positions count only real tokens
        input_ids = torch.tensor([[self.pad_id] * (width - len(ids)) + ids for ids in prompts], device=self.device)
        mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in prompts], device=self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        with torch.inference_mode():
            out = self.model(
                input_ids=input_ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1
            )
            cache = out.cache
            if n > 1:
                cache.batch_repeat_interleave(n)
            mask = mask.repeat_interleave(n, dim=0)
            position = positions[:, -1].repeat_interleave(n)
            logits = out.logits[:, -1, :].float().repeat_interleave(n, dim=0)
            for step in range(params.max_tokens):
                next_ids = self._next_tokens(logits, params, [generators[r] for r in active])
                # the model's own log-probability of each sampled token (temperature 1, no top-p)
                token_logprobs = torch.log_softmax(logits, dim=-1).gather(-1, next_ids[:, None])[:, 0]
                keep = []
                for row, r in enumerate(active):
                    token = int(next_ids[row])
                    generated[r].append(token)
                    logprobs[r] += float(token_logprobs[row])
                    if token in self.eos_ids or self._hits_stop(generated[r], params.stop):
                        finish[r] = "stop"
                    else:
                        keep.append(row)
                if not keep or step == params.max_tokens - 1:
                    break
                if len(keep) < len(active):
                    kept = torch.tensor(keep, device=self.device)
                    cache.batch_select_indices(kept)
                    next_ids, mask, position = next_ids[kept], mask[kept], position[kept]
                    active = [active[row] for row in keep]
                mask = torch.cat([mask, mask.new_ones(len(active), 1)], dim=1)
                position = position + 1
                out = self.model(
                    input_ids=next_ids[:, None], attention_mask=mask, position_ids=position[:, None], cache=cache,
                    use_cache=True,
                )  # fmt: skip
                cache = out.cache
                logits = out.logits[:, -1, :].float()
        return [
            [
                Completion(
                    text=self._final_text(generated[r], params.stop),
                    prompt_tokens=len(prompt),
                    completion_tokens=len(generated[r]),
                    seed=seeds[r % n],
                    finish_reason=finish[r] or "length",
                    logprob=logprobs[r],
                )
                for r in range(p * n, (p + 1) * n)
            ]
            for p, prompt in enumerate(prompts)
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
