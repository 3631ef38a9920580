"""Step search with a process reward model, the reader-backed generator, and verifiers loaded from tiny models."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
import pytest

from catalog.errors import ConfigError
from eval.readers.base import Completion, GenerationParams
from eval.tts.generation import ReaderGenerator, Step, TtsQuestion, sample_parallel, sample_revisions
from eval.tts.samples import validate_samples
from eval.tts.search import SearchConfig, search_rows, step_search
from eval.tts.strategies import StrategySpec, evaluate_strategy
from eval.tts.verifiers import (
    CausalLMVerifier,
    PrefixProcessRewardModel,
    SequenceClassificationVerifier,
    load_outcome_verifier,
    load_process_reward_model,
)

N_STEPS, STEP_TOKENS = 4, 10


class StepwiseGeneratorDouble:
    """Test double for an LLM solving in ``N_STEPS`` steps: a step after a correct prefix is correct ("ok")
    with probability ``q``, anything after a wrong step stays wrong ("bad"). Greedy (seed < 0) returns the more
    likely step. The last step states the answer: the reference if the whole path is correct."""

    def __init__(self, q: float) -> None:
        self.q = q

    def next_steps(self, question: TtsQuestion, prefix: Sequence[str], n: int, seed: int) -> list[Step]:
        rng = np.random.default_rng([int(question.question_id.removeprefix("q")), max(seed, 0), len(prefix)])
        on_track = all(s.startswith("ok") for s in prefix)
        steps = []
        for _ in range(n):
            ok = on_track and (self.q >= 0.5 if seed < 0 else rng.random() < self.q)
            text = f"{'ok' if ok else 'bad'}{len(prefix)}"
            final = len(prefix) == N_STEPS - 1
            answer = (question.reference if ok else f"wrong{rng.integers(1000)}") if final else ""
            steps.append(Step(text, STEP_TOKENS, final, answer, prompt_tokens=5))
        return steps

    def solutions(self, question, n, seed):
        raise NotImplementedError

    def revise(self, question, attempts, seed):
        raise NotImplementedError


class PerfectPRMDouble:
    """Test double for a process reward model that knows: a prefix scores 1 while every step is correct."""

    def score_steps(self, question: str, solutions: Sequence[Sequence[str]]) -> list[list[float]]:
        return [
            [float(all(s.startswith("ok") for s in steps[: i + 1])) for i in range(len(steps))] for steps in solutions
        ]


QUESTIONS = [TtsQuestion(f"q{i}", f"question {i}", f"gold{i}") for i in range(20)]


def test_beam_search_with_perfect_prm_finds_the_correct_path():
    generator = StepwiseGeneratorDouble(q=0.4)
    for question in QUESTIONS:
        result = step_search(generator, PerfectPRMDouble(), question, SearchConfig(budget=16, width=4))
        best = result.candidates[0]
        assert [s.text for s in best.steps] == [f"ok{i}" for i in range(N_STEPS)]
        assert best.answer == question.reference
        assert best.step_scores == [1.0] * N_STEPS
        # 16 candidate steps per search step, every step generated counted.
        assert result.tokens == 16 * N_STEPS * STEP_TOKENS


def test_beam_search_rows_beat_parallel_sampling_at_the_same_budget():
    generator = StepwiseGeneratorDouble(q=0.4)
    rows = search_rows("beam_search", generator, PerfectPRMDouble(), QUESTIONS, SearchConfig(budget=16, width=4))
    table = validate_samples(rows)
    qids = table.question_ids
    beam = evaluate_strategy(table, StrategySpec("beam_search", "best_score"), 16, qids)
    assert beam.accuracy.tolist() == [1.0] * len(QUESTIONS)
    assert beam.tokens.tolist() == pytest.approx([16 * N_STEPS * (STEP_TOKENS + 5)] * len(QUESTIONS))
    # Sixteen independent whole solutions succeed with 1 - (1 - 0.4^4)^16 = 0.34 on average: the search wins.
    parallel = 1 - (1 - 0.4**N_STEPS) ** 16
    assert parallel < 0.35
    assert beam.accuracy.mean() > parallel
    # Not stored at another budget: unavailable rather than guessed.
    assert not evaluate_strategy(table, StrategySpec("beam_search", "best_score"), 8, qids).available


def test_lookahead_search_scores_by_greedy_rollouts():
    generator = StepwiseGeneratorDouble(q=0.6)
    config = SearchConfig(budget=8, width=4, lookahead=2)
    rows = search_rows("lookahead", generator, PerfectPRMDouble(), QUESTIONS[:8], config)
    table = validate_samples(rows)
    outcome = evaluate_strategy(table, StrategySpec("lookahead", "best_score"), 8, table.question_ids)
    assert outcome.accuracy.mean() == 1.0
    # Rollouts cost tokens on top of the beam steps.
    assert (rows.group_by("question_id").agg(pl.col("tokens").sum())["tokens"] > 8 * N_STEPS * STEP_TOKENS).all()
    with pytest.raises(ValueError, match="lookahead"):
        search_rows("lookahead", generator, PerfectPRMDouble(), QUESTIONS[:1], SearchConfig(budget=8, width=4))


def test_search_config_rejects_budgets_not_divisible_by_width():
    with pytest.raises(ValueError, match="multiple of width"):
        SearchConfig(budget=6, width=4)


# ---------------------------------------------------------------- the reader-backed generator
class ScriptedReaderDouble:
    """Test double for an LLM behind the Reader interface: replies come from ``script(prompt_text, seed)``."""

    name = "scripted-double"
    n_params = 1_000_000

    def __init__(self, script) -> None:
        self.script = script
        self.calls: list[GenerationParams] = []
        self.prompts: list[str] = []

    def generate(self, prompts, params: GenerationParams) -> list[list[Completion]]:
        self.calls.append(params)
        out = []
        for messages in prompts:
            text = messages[-1].content
            self.prompts.append(text)
            out.append(
                [Completion(self.script(text, s), len(text.split()), 7, s, "stop") for s in params.sample_seeds()]
            )
        return out

    def score(self, prompts, continuations):
        raise NotImplementedError


def test_reader_generator_samples_grades_and_steps():
    reader = ScriptedReaderDouble(lambda text, seed: f"so \\boxed{{{'gold0' if seed % 2 == 0 else '7'}}}")
    generator = ReaderGenerator(reader, answer_format="boxed", temperature=0.7)
    rows = sample_parallel(generator, QUESTIONS[:1], 4, seed=10)
    assert rows["answer"].to_list() == ["gold0", "7", "gold0", "7"]
    assert rows["correct"].to_list() == [True, False, True, False]
    assert rows["tokens"].to_list() == [7] * 4
    assert reader.calls[-1].seed == 10 and reader.calls[-1].temperature == 0.7

    steps = generator.next_steps(QUESTIONS[0], ["first step"], 2, seed=-1)
    assert reader.calls[-1].stop == ("\n\n",) and reader.calls[-1].temperature == 0.0
    assert "first step" in reader.prompts[-1]
    assert [s.final for s in steps] == [True, True] and steps[0].answer == "gold0"


def test_revision_chains_see_their_previous_attempts():
    reader = ScriptedReaderDouble(
        lambda text, seed: "Attempt text \\boxed{gold0}" if "Attempt 2" in text else "\\boxed{1}"
    )
    generator = ReaderGenerator(reader)
    rows = sample_revisions(generator, QUESTIONS[:1], chains=2, length=3)
    assert rows.select("chain", "sample_idx").rows() == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    # The third attempt of a chain is the first to see "Attempt 2", and the script then answers correctly.
    assert rows["correct"].to_list() == [False, False, True, False, False, True]


# ---------------------------------------------------------------- verifiers from tiny models
WORDS = ["question", "solution", "is", "the", "correct", "answer", "yes", "no", "Yes", "No", "step", "one", "two", "?"]


def _tiny_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    vocab = {w: i for i, w in enumerate(specials + sorted(set(WORDS + ["Question:", "Solution:", "Answer:"])))}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]"
    )


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    import torch
    from transformers import BertConfig, BertForSequenceClassification, GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("verifiers")
    tokenizer = _tiny_tokenizer()
    small = {"num_hidden_layers": 2, "num_attention_heads": 2}
    classifier = BertForSequenceClassification(
        BertConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_labels=1, **small)
    )
    causal = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_embd=16, n_layer=2, n_head=2, n_positions=128))
    paths = {}
    for name, model in (("classifier", classifier), ("causal", causal)):
        paths[name] = root / name
        model.save_pretrained(paths[name])
        tokenizer.save_pretrained(paths[name])
    return paths


SOLUTIONS = ["step one", "step one step two is the answer", "no", "the answer is two ?"]


def test_sequence_classification_verifier_loads_by_architecture_and_pads_correctly(tiny_models):
    verifier = load_outcome_verifier(tiny_models["classifier"], batch_size=8)
    assert isinstance(verifier, SequenceClassificationVerifier)
    batched = verifier.score("the question", SOLUTIONS)
    one_by_one = load_outcome_verifier(tiny_models["classifier"], batch_size=1).score("the question", SOLUTIONS)
    assert batched == pytest.approx(one_by_one, abs=1e-5)  # padding must not change a solution's score
    assert all(0.0 < s < 1.0 for s in batched)
    assert len(set(np.round(batched, 6))) > 1  # different solutions, different scores


def test_causal_lm_verifier_yes_no_probability(tiny_models):
    verifier = load_outcome_verifier(tiny_models["causal"])
    assert isinstance(verifier, CausalLMVerifier)
    scores = verifier.score("the question", SOLUTIONS)
    swapped = CausalLMVerifier(tiny_models["causal"], yes=" No", no=" Yes").score("the question", SOLUTIONS)
    assert np.allclose(np.array(scores) + np.array(swapped), 1.0)
    with pytest.raises(ConfigError, match="exactly one"):
        CausalLMVerifier(tiny_models["causal"], yes=" Yes Yes")


def test_process_reward_model_scores_every_prefix(tiny_models):
    prm = load_process_reward_model(tiny_models["classifier"], step_separator=" ")
    assert isinstance(prm, PrefixProcessRewardModel)
    steps = [["step one", "step two", "the answer is two"], ["no"]]
    scores = prm.score_steps("the question", steps)
    assert [len(s) for s in scores] == [3, 1]
    outcome = prm.verifier.score("the question", ["step one step two the answer is two", "no"])
    assert scores[0][-1] == pytest.approx(outcome[0], abs=1e-6) and scores[1][0] == pytest.approx(outcome[1], abs=1e-6)


def test_unknown_architecture_is_a_clear_error(tmp_path):
    (tmp_path / "config.json").write_text('{"architectures": ["BertModel"]}')
    with pytest.raises(ConfigError, match="no verifier head"):
        load_outcome_verifier(tmp_path)
    with pytest.raises(ConfigError, match="config.json"):
        load_outcome_verifier(tmp_path / "missing")
