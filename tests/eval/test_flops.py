"""FLOP accounting against hand-computed numbers."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from eval.flops import (
    ModelSizes,
    QuestionCompute,
    ReaderCall,
    generation_attention_flops,
    prefill_attention_flops,
    question_flops,
    search_flops,
    strategy_flops,
)
from eval.readers.base import Completion

SIZES = ModelSizes(
    reader_params=8_000_000_000,
    embedder_params=600_000_000,
    reranker_params=600_000_000,
    reader_layers=32,
    reader_attention_width=4096,
    reranker_layers=28,
    reranker_attention_width=1024,
)


def test_reader_only_question():
    record = QuestionCompute(reader_calls=(ReaderCall(prompt_tokens=1000, completion_tokens=(200,)),))
    flops = question_flops(record, SIZES)
    assert flops.prefill == 2 * 8e9 * 1000 == 1.6e13
    assert flops.generation == 2 * 8e9 * 200 == 3.2e12
    assert flops.total == 1.92e13
    assert flops.query_embedding == flops.rerank == flops.search == 0


def test_retrieval_rerank_and_self_consistency():
    record = QuestionCompute(
        reader_calls=(ReaderCall(3000, (100, 150, 250, 300)),),  # 4 samples of one 3000-token prompt
        query_tokens=(20,),
        rerank_pair_tokens=(300,) * 100,  # 100 candidates of (20 query + 280 passage) tokens
        searched_vectors=1_000_000,
        vector_dim=1024,
    )
    flops = question_flops(record, SIZES)
    assert flops.query_embedding == 2 * 6e8 * 20 == 2.4e10
    assert flops.search == 2 * 1_000_000 * 1024 == 2.048e9
    assert flops.rerank == 2 * 6e8 * 30_000 == 3.6e13
    assert flops.prefill == 2 * 8e9 * 3000 == 4.8e13  # shared by the 4 samples (prefix caching)
    assert flops.generation == 2 * 8e9 * 800 == 1.28e13
    assert flops.total == pytest.approx(2.4e10 + 2.048e9 + 3.6e13 + 4.8e13 + 1.28e13)
    per_sample = question_flops(record, SIZES, prefill_per_sample=True)
    assert per_sample.prefill == 4 * 4.8e13


def test_attention_term():
    # P = 3 prompt tokens attend over 1 + 2 + 3 = 6 positions; each position costs 2 * L * d
    assert prefill_attention_flops(2, 10, 3) == 2 * 2 * 10 * 6 == 240
    # G = 2 generated tokens at positions 4 and 5: 2 * L * d * (4 + 5)
    assert generation_attention_flops(2, 10, 3, 2) == 2 * 2 * 10 * 9 == 360
    record = QuestionCompute(reader_calls=(ReaderCall(3, (2,)),))
    sizes = ModelSizes(reader_params=100, reader_layers=2, reader_attention_width=10)
    flops = question_flops(record, sizes, attention=True)
    assert flops.prefill == 2 * 100 * 3 + 240
    assert flops.generation == 2 * 100 * 2 + 360


def test_strategy_sum_and_per_question_mean():
    records = [
        QuestionCompute(reader_calls=(ReaderCall(10, (5,)),)),
        QuestionCompute(reader_calls=(ReaderCall(20, (5,)), ReaderCall(30, (10,)))),  # two rounds
    ]
    sizes = ModelSizes(reader_params=1000)
    total = strategy_flops(records, sizes)
    assert total.questions == 2
    assert total.prefill == 2 * 1000 * (10 + 20 + 30)
    assert total.generation == 2 * 1000 * (5 + 5 + 10)
    summary = total.as_dict()
    assert summary["total"] == 2 * 1000 * 80
    assert summary["total_per_question"] == 80_000


def test_reader_call_from_completions_and_missing_sizes():
    completions = [Completion("a", 50, 7, 0, "stop"), Completion("b", 50, 9, 1, "length")]
    assert ReaderCall.from_completions(completions) == ReaderCall(50, (7, 9))
    with pytest.raises(ValueError, match="reranker_params is not set"):
        question_flops(QuestionCompute(rerank_pair_tokens=(10,)), ModelSizes(reader_params=1))
    with pytest.raises(ValidationError):
        ModelSizes(reader_params=0)
    assert search_flops(10, 4, n_queries=3) == 240
