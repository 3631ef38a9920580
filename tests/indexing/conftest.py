"""Fixtures shared by the indexing tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from indexing.embed import bundled_model_path


@pytest.fixture(scope="session")
def save_tiny_bert():
    """A builder: ``save_tiny_bert(path, model_class, **config)`` saves a random (seed 0) 2-layer BERT of
    ``model_class`` (hidden size 32) with MiniLM's tokenizer to ``path``; ``config`` adds BertConfig fields."""

    def save(path: Path, model_class, **config) -> Path:
        import torch
        from transformers import AutoTokenizer, BertConfig

        tokenizer = AutoTokenizer.from_pretrained(str(bundled_model_path()))
        torch.manual_seed(0)
        bert_config = BertConfig(
            vocab_size=tokenizer.vocab_size,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            **config,
        )
        model_class(bert_config).save_pretrained(path)
        tokenizer.save_pretrained(path)
        return path

    return save
