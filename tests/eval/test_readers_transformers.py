"""The transformers reader on a tiny Llama the test builds: token counts, n samples, seeds, stop, scoring."""

from __future__ import annotations

import pytest

from catalog.errors import ConfigError
from eval.readers import READERS, ChatMessage, GenerationParams, make_reader
from eval.readers.base import ReaderError
from eval.readers.transformers_reader import TransformersReader, render_plain

CHAT_TEMPLATE = "{% for m in messages %}{{ m['role'] }} : {{ m['content'] }} {% endfor %}assistant :"


# Tests using these fixtures are marked slow (tests/conftest.py): reader builds and loads the tiny Llama and
# generates with it.
SLOW_FIXTURES = ("reader",)


@pytest.fixture(scope="module")
def reader(tmp_path_factory, build_tiny_model):
    path = build_tiny_model(tmp_path_factory.mktemp("tiny-llama"))
    return make_reader("transformers", model_path=path)


PROMPT = [ChatMessage("system", "be brief"), ChatMessage("user", "hello world")]


def test_registered_and_counts_parameters(reader):
    assert READERS["transformers"] is TransformersReader
    # embeddings + lm head (untied) + 2 layers of a 32-wide Llama
    assert reader.n_params == sum(p.numel() for p in reader.model.parameters())
    assert 10_000 < reader.n_params < 100_000


def test_plain_template_and_prompt_token_count(reader):
    assert render_plain(PROMPT) == "System: be brief\n\nUser: hello world\n\nAssistant:"
    # System : be brief User : hello world Assistant : -> 10 word-level tokens
    out = reader.generate([PROMPT], GenerationParams(max_tokens=5, temperature=0.0))
    assert len(out) == 1 and len(out[0]) == 1
    assert out[0][0].prompt_tokens == 10
    assert 1 <= out[0][0].completion_tokens <= 5
    assert out[0][0].finish_reason in ("stop", "length")
    if out[0][0].finish_reason == "length":
        assert out[0][0].completion_tokens == 5


def test_n_samples_with_recorded_seeds_and_determinism(reader):
    params = GenerationParams(max_tokens=12, temperature=1.0, n=4, seed=7)
    first = reader.generate([PROMPT, PROMPT[1:]], params)
    again = reader.generate([PROMPT, PROMPT[1:]], params)
    assert [len(c) for c in first] == [4, 4]
    assert [c.seed for c in first[0]] == [7, 8, 9, 10]
    assert first == again  # same seeds, same samples, same counts and log-probs
    texts = {c.text for c in first[0]}
    assert len(texts) > 1  # different seeds, different samples at temperature 1
    for c in first[0]:
        assert c.completion_tokens == 12 if c.finish_reason == "length" else 1 <= c.completion_tokens <= 12
        assert c.logprob is not None and c.logprob < 0


def test_sample_i_is_reproducible_on_its_own(reader):
    batch = reader.generate([PROMPT], GenerationParams(max_tokens=8, temperature=1.0, n=3, seed=100))[0]
    alone = reader.generate([PROMPT], GenerationParams(max_tokens=8, temperature=1.0, n=1, seed=102))[0]
    assert alone[0].text == batch[2].text and alone[0].seed == 102


def test_greedy_is_seed_independent_and_top_p_tiny_is_greedy(reader):
    a = reader.generate([PROMPT], GenerationParams(max_tokens=6, temperature=0.0, seed=1))[0][0]
    b = reader.generate([PROMPT], GenerationParams(max_tokens=6, temperature=0.0, seed=2))[0][0]
    c = reader.generate([PROMPT], GenerationParams(max_tokens=6, temperature=1.0, top_p=1e-6, seed=3))[0][0]
    assert a.text == b.text == c.text


def test_stop_string_truncates(reader):
    sampled = reader.generate([PROMPT], GenerationParams(max_tokens=20, temperature=1.0, n=6, seed=0))[0]
    words = [c.text.split() for c in sampled if len(c.text.split()) >= 3]
    assert words, "tiny model produced no 3-word sample"
    stop_word = words[0][1]
    stopped = reader.generate(
        [PROMPT], GenerationParams(max_tokens=20, temperature=1.0, n=6, seed=0, stop=(stop_word,))
    )
    target = stopped[0][sampled.index(next(c for c in sampled if c.text.split()[1:2] == [stop_word]))]
    assert stop_word not in target.text
    assert target.finish_reason == "stop"


def test_score_matches_generation_logprob(reader):
    samples = reader.generate([PROMPT], GenerationParams(max_tokens=6, temperature=1.0, n=8, seed=5))[0]
    # a sample that ran to max_tokens without special tokens re-tokenizes to exactly what was sampled
    plain = [
        c
        for c in samples
        if c.finish_reason == "length" and len(reader.tokenizer(c.text, add_special_tokens=False)["input_ids"]) == 6
    ]
    assert plain, "no sample without special tokens"
    [score] = reader.score([PROMPT], [plain[0].text])
    assert score == pytest.approx(plain[0].logprob, abs=1e-3)
    low, high = reader.score([PROMPT, PROMPT], ["the cat sat on the mat", "the cat sat"])
    assert low < high < 0  # more tokens, lower total log-probability


@pytest.mark.slow
def test_chat_template_is_used_when_present(tmp_path, build_tiny_model):
    reader = TransformersReader(build_tiny_model(tmp_path, CHAT_TEMPLATE))
    assert reader.render(PROMPT) == "system : be brief user : hello world assistant :"
    out = reader.generate([PROMPT], GenerationParams(max_tokens=2))[0][0]
    assert out.prompt_tokens == 10  # system : be brief user : hello world assistant :


def test_prompt_over_context_is_a_clear_error(reader):
    with pytest.raises(ReaderError, match="over the model's context of 128"):
        reader.generate([[ChatMessage("user", "one " * 200)]], GenerationParams(max_tokens=4))
    with pytest.raises(ConfigError, match="not a local folder or .gguf file, nor a bundled model"):
        TransformersReader("/nonexistent/model")
    with pytest.raises(ConfigError, match="no such GGUF file"):
        TransformersReader("/nonexistent/model.gguf")
    with pytest.raises(ConfigError, match="not a torch dtype"):
        TransformersReader("/nonexistent/model", dtype="float33")


def test_prompts_of_different_lengths_batch_like_they_generate_alone(reader):
    prompts = [
        [ChatMessage("user", "hello world")],
        [ChatMessage("user", "the cat sat on the mat a dog ran in the park one two three")],
        [ChatMessage("user", "one")],
    ]
    for params in (GenerationParams(max_tokens=8), GenerationParams(max_tokens=8, temperature=1.0, n=3, seed=4)):
        batched = reader.generate(prompts, params)  # one left-padded forward pass for the three prompts
        alone = [reader.generate([p], params)[0] for p in prompts]
        assert [[c.text for c in b] for b in batched] == [[c.text for c in a] for a in alone]
        assert [[c.prompt_tokens for c in b] for b in batched] == [[c.prompt_tokens for c in a] for a in alone]
        for b, a in zip(batched, alone, strict=True):
            assert [c.logprob for c in b] == pytest.approx([c.logprob for c in a], abs=1e-4)


def test_batches_hold_prompts_of_similar_length_and_answers_keep_the_callers_order(reader, monkeypatch):
    """Left padding to the longest prompt of a batch is computed like real tokens: batches are formed by length."""
    words = "the cat sat on the mat a dog ran in the park one two three four five six seven eight nine ten"
    prompts = [[ChatMessage("user", " ".join(words.split()[:n]))] for n in (20, 1, 18, 2, 19, 3)]
    batch_lengths = []
    sample_batch = reader._sample_batch

    def recording(batch, params):
        batch_lengths.append(sorted(len(ids) for ids in batch))
        return sample_batch(batch, params)

    monkeypatch.setattr(reader, "batch_size", 3)
    monkeypatch.setattr(reader, "_sample_batch", recording)
    params = GenerationParams(max_tokens=4)
    batched = reader.generate(prompts, params)
    lengths = sorted(len(reader.encode_prompt(p)) for p in prompts)
    assert batch_lengths == [lengths[:3], lengths[3:]]  # the three short prompts together, then the three long
    monkeypatch.setattr(reader, "_sample_batch", sample_batch)
    assert [b[0].prompt_tokens for b in batched] == [len(reader.encode_prompt(p)) for p in prompts]
    assert [b[0].text for b in batched] == [reader.generate([p], params)[0][0].text for p in prompts]


def test_generation_emits_no_deprecation_warning(reader, recwarn):
    reader.generate([PROMPT, PROMPT[1:]], GenerationParams(max_tokens=4, n=2, temperature=1.0))
    assert not [w for w in recwarn if "past_key_values" in str(w.message)]


@pytest.mark.slow  # builds and loads the tiny Llama (~5 s): the OpenAI reader tests keep readers quick
def test_threads_and_batch_size_are_validated(tmp_path, build_tiny_model):
    import torch

    path = build_tiny_model(tmp_path)
    before = torch.get_num_threads()
    try:
        TransformersReader(path, threads=1, batch_size=2)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ConfigError, match="threads must be at least 1"):
        TransformersReader(path, threads=0)
    with pytest.raises(ConfigError, match="batch_size must be at least 1"):
        TransformersReader(path, batch_size=0)
