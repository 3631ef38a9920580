"""Session-wide fixtures: paths to the real shared data, the bundled embedder, a Prefect test harness."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Offline everywhere: nothing may reach a hub at test time, and faiss/torch must not oversubscribe 2 cores.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURES = REPO_ROOT / "tests" / "fixtures"
SAMPLE_DATA = REPO_ROOT / "sample_data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real public data beside the repository (``../shared/data``); tests using it skip when it is absent."""
    path = Path(os.environ.get("REREAD_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
    if not path.is_dir():
        pytest.skip(f"shared data not found at {path}")
    return path


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def prefect_harness():
    """One Prefect test harness (a temporary server and database) for the whole session: its first start migrates a
    database, which takes tens of seconds, so tests that run flows share it."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


TINY_SENTENCES = [
    "the cat sat on the mat",
    "a dog ran in the park",
    "system user assistant answer question",
    "one two three four five six seven eight nine ten",
    "be brief hello world : ? .",
    "A B C D Answer :",
]


def _build_tiny_llama(path, chat_template: str | None = None, max_positions: int = 128):
    """A 2-layer Llama with a word-level tokenizer, built and saved by the test: a real model for the reader
    interface where a real LLM cannot run."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[BOS]", "[EOS]"]
    backend = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.train_from_iterator(
        TINY_SENTENCES + ["System User Assistant"], trainers.WordLevelTrainer(special_tokens=specials)
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]", bos_token="[BOS]", eos_token="[EOS]"
    )
    if chat_template:
        tokenizer.chat_template = chat_template
    tokenizer.save_pretrained(path)
    config = LlamaConfig(
        vocab_size=backend.get_vocab_size(),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_positions,
        bos_token_id=2,
        eos_token_id=3,
        pad_token_id=0,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def build_tiny_model():
    return _build_tiny_llama


_EXIT_STATUS: list[int] = []


def pytest_sessionfinish(session, exitstatus):
    _EXIT_STATUS.append(int(exitstatus))


def pytest_unconfigure(config):
    # DuckDB 2's nanobind bindings print pages of spurious "leaked instance" reports at interpreter shutdown, after
    # pytest's summary line; end the process once pytest has reported everything (as the CLI does).
    if _EXIT_STATUS and os.environ.get("REREAD_TEST_KEEP_SHUTDOWN") is None:
        import atexit
        import sys

        atexit._run_exitfuncs()  # stop temporary servers and worker pools first
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_EXIT_STATUS[-1])
