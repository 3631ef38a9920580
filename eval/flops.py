"""Inference FLOP accounting per question and strategy, from recorded token counts.

The dense-transformer approximation (Kaplan et al. 2020): a forward pass costs ``2 * N_params`` FLOPs per token,
plus, optionally, ``2 * n_layers * d_attn * context_length`` per token for attention over the context.

* query embedding: ``2 * N_embedder * query_tokens``
* search: an exact (Flat) inner-product scan costs ``2 * dim`` per stored vector per query
* reranking: ``2 * N_reranker * tokens`` of each (query + passage) pair
* reader prefill: ``2 * N_reader * prompt_tokens`` (the prompt includes the retrieved context)
* reader generation: ``2 * N_reader * completion_tokens``

With the attention term, the token at (1-based) position i attends over i positions, so a prompt of P tokens adds
``n_layers * d_attn * P * (P + 1)`` and G generated tokens after it add ``n_layers * d_attn * G * (2P + G + 1)``.

The n samples of one prompt share its prefill when the engine caches prefixes (vLLM ``enable_prefix_caching``), which
is the default here; ``prefill_per_sample=True`` charges it once per sample (engines that re-read the prompt).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from eval.readers.base import Completion


class ModelSizes(BaseModel):
    """Parameter counts (and, for the attention term, the reader's depth and attention width) from config."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reader_params: int = Field(gt=0)
    embedder_params: int | None = Field(default=None, gt=0)
    reranker_params: int | None = Field(default=None, gt=0)
    reader_layers: int | None = Field(default=None, gt=0)
    reader_attention_width: int | None = Field(default=None, gt=0)  # n_heads * head_dim (d_model for most models)
    reranker_layers: int | None = Field(default=None, gt=0)
    reranker_attention_width: int | None = Field(default=None, gt=0)


def forward_flops(n_params: int, tokens: int) -> float:
    return 2.0 * n_params * tokens


def prefill_attention_flops(n_layers: int, attention_width: int, prompt_tokens: int) -> float:
    return float(n_layers * attention_width * prompt_tokens * (prompt_tokens + 1))


def generation_attention_flops(
    n_layers: int, attention_width: int, prompt_tokens: int, completion_tokens: int
) -> float:
    g = completion_tokens
    return float(n_layers * attention_width * g * (2 * prompt_tokens + g + 1))


def search_flops(n_vectors: int, dim: int, n_queries: int = 1) -> float:
    """An exact inner-product scan; approximate indexes (IVF, HNSW) cost less: pass the vectors they visit."""
    return 2.0 * n_vectors * dim * n_queries


@dataclass(frozen=True)
class ReaderCall:
    """One prompt sent to the reader and the token counts of its samples."""

    prompt_tokens: int
    completion_tokens: tuple[int, ...]

    @classmethod
    def from_completions(cls, completions: Sequence[Completion]) -> ReaderCall:
        if not completions:
            raise ValueError("a reader call needs at least one completion")
        return cls(completions[0].prompt_tokens, tuple(c.completion_tokens for c in completions))


@dataclass(frozen=True)
class QuestionCompute:
    """What one question cost under one strategy, as recorded token counts."""

    reader_calls: tuple[ReaderCall, ...] = ()
    query_tokens: tuple[int, ...] = ()  # one entry per embedded query
    rerank_pair_tokens: tuple[int, ...] = ()  # one entry per (query, passage) pair scored by the reranker
    searched_vectors: int = 0  # vectors scanned per query (the datastore size for a Flat index)
    vector_dim: int = 0


@dataclass
class FlopBreakdown:
    query_embedding: float = 0.0
    search: float = 0.0
    rerank: float = 0.0
    prefill: float = 0.0
    generation: float = 0.0
    questions: int = field(default=0)

    @property
    def total(self) -> float:
        return self.query_embedding + self.search + self.rerank + self.prefill + self.generation

    def add(self, other: FlopBreakdown) -> FlopBreakdown:
        return FlopBreakdown(
            self.query_embedding + other.query_embedding,
            self.search + other.search,
            self.rerank + other.rerank,
            self.prefill + other.prefill,
            self.generation + other.generation,
            self.questions + other.questions,
        )

    def as_dict(self) -> dict[str, float]:
        parts = ("query_embedding", "search", "rerank", "prefill", "generation")
        out = {name: getattr(self, name) for name in parts}
        out["total"] = self.total
        out["questions"] = self.questions
        out["total_per_question"] = self.total / self.questions if self.questions else 0.0
        return out


def _require(value: int | None, what: str) -> int:
    if value is None:
        raise ValueError(f"FLOP accounting: {what} is not set in ModelSizes but the record uses it")
    return value


def question_flops(
    record: QuestionCompute, sizes: ModelSizes, attention: bool = False, prefill_per_sample: bool = False
) -> FlopBreakdown:
    """The FLOPs of one question's recorded work."""
    out = FlopBreakdown(questions=1)
    if record.query_tokens:
        out.query_embedding = forward_flops(
            _require(sizes.embedder_params, "embedder_params"), sum(record.query_tokens)
        )
        out.search = search_flops(record.searched_vectors, record.vector_dim, n_queries=len(record.query_tokens))
    if record.rerank_pair_tokens:
        reranker = _require(sizes.reranker_params, "reranker_params")
        out.rerank = forward_flops(reranker, sum(record.rerank_pair_tokens))
        if attention:
            layers = _require(sizes.reranker_layers, "reranker_layers")
            width = _require(sizes.reranker_attention_width, "reranker_attention_width")
            out.rerank += sum(prefill_attention_flops(layers, width, t) for t in record.rerank_pair_tokens)
    for call in record.reader_calls:
        prefills = len(call.completion_tokens) if prefill_per_sample else 1
        out.prefill += prefills * forward_flops(sizes.reader_params, call.prompt_tokens)
        out.generation += forward_flops(sizes.reader_params, sum(call.completion_tokens))
        if attention:
            layers = _require(sizes.reader_layers, "reader_layers")
            width = _require(sizes.reader_attention_width, "reader_attention_width")
            out.prefill += prefills * prefill_attention_flops(layers, width, call.prompt_tokens)
            out.generation += sum(
                generation_attention_flops(layers, width, call.prompt_tokens, g) for g in call.completion_tokens
            )
    return out


def strategy_flops(
    records: Iterable[QuestionCompute], sizes: ModelSizes, attention: bool = False, prefill_per_sample: bool = False
) -> FlopBreakdown:
    """Sum of a strategy's FLOPs over its questions (``as_dict()`` adds the total per question)."""
    total = FlopBreakdown()
    for record in records:
        total = total.add(question_flops(record, sizes, attention, prefill_per_sample))
    return total
