"""Outcome verifiers and process reward models loaded from a local model path (transformers).

Two scoring heads are registered by architecture: a sequence-classification model reads (question, solution) and
its positive-class probability is the score (sigmoid of a single logit, or the last label's softmax); a causal LM
is asked whether the solution is correct and the score is P(yes) / (P(yes) + P(no)) at the next token. A process
reward model scores every step prefix with one of these (``PrefixProcessRewardModel``). Verifiers that live
behind a Reader (an API or vLLM server) use ``ReaderVerifier``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path

from catalog.errors import ConfigError
from catalog.registry import Registry
from eval.readers.base import ChatMessage, Reader
from eval.tts.generation import OutcomeVerifier
from indexing.embed import MODEL_LOAD_LOCK

VerifierLoader = Callable[..., OutcomeVerifier]
VERIFIER_HEADS: Registry[VerifierLoader] = Registry("verifier head")  # architecture name suffix -> loader

QUESTION_TEMPLATE = "Question: {question}\n\nSolution: {solution}\n\nIs the solution correct? Answer:"


def register_head(suffix: str) -> Callable[[VerifierLoader], VerifierLoader]:
    return VERIFIER_HEADS.register(suffix)


class _TransformersScorer:
    def __init__(self, model_path: str | Path, device: str = "cpu", batch_size: int = 8, max_length: int = 2048):
        import torch
        from transformers import AutoTokenizer

        self.torch = torch
        self.model_path = str(model_path)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        self.device = device
        self.batch_size = batch_size
        self.max_length = max_length

    def _batches(self, items: Sequence) -> list[Sequence]:
        return [items[i : i + self.batch_size] for i in range(0, len(items), self.batch_size)]


@register_head("ForSequenceClassification")
class SequenceClassificationVerifier(_TransformersScorer):
    """Score = P(correct) from a (question, solution) classifier: sigmoid of one logit, else the last label's softmax."""

    def __init__(self, model_path: str | Path, **kwargs) -> None:
        super().__init__(model_path, **kwargs)
        from transformers import AutoModelForSequenceClassification

        with MODEL_LOAD_LOCK:
            self.model = AutoModelForSequenceClassification.from_pretrained(self.model_path).to(self.device).eval()

    def score(self, question: str, solutions: Sequence[str]) -> list[float]:
        torch = self.torch
        out: list[float] = []
        for batch in self._batches(list(solutions)):
            enc = self.tokenizer(
                [question] * len(batch),
                list(batch),
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            ).to(self.device)
            with torch.no_grad():
                logits = self.model(**enc).logits.float()
            probs = torch.sigmoid(logits[:, 0]) if logits.shape[1] == 1 else torch.softmax(logits, dim=-1)[:, -1]
            out.extend(probs.tolist())
        return out


@register_head("ForCausalLM")
@register_head("LMHeadModel")  # GPT-2 style names
class CausalLMVerifier(_TransformersScorer):
    """Score = P(yes) / (P(yes) + P(no)) for the token after "Is the solution correct? Answer:"."""

    def __init__(
        self, model_path: str | Path, yes: str = " Yes", no: str = " No", template: str = QUESTION_TEMPLATE, **kwargs
    ) -> None:
        super().__init__(model_path, **kwargs)
        from transformers import AutoModelForCausalLM

        with MODEL_LOAD_LOCK:
            self.model = AutoModelForCausalLM.from_pretrained(self.model_path).to(self.device).eval()
        self.template = template
        self.yes_id, self.no_id = self._single_token(yes), self._single_token(no)

    def _single_token(self, text: str) -> int:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            raise ConfigError(f"{self.model_path}: verifier answer {text!r} is {len(ids)} tokens, need exactly one")
        return ids[0]

    def score(self, question: str, solutions: Sequence[str]) -> list[float]:
        torch = self.torch
        out: list[float] = []
        for solution in solutions:  # one at a time: no padding side to get wrong, and CPU batches gain little
            text = self.template.format(question=question, solution=solution)
            ids = self.tokenizer(text, return_tensors="pt", truncation=True, max_length=self.max_length)
            with torch.no_grad():
                logits = self.model(**ids.to(self.device)).logits[0, -1].float()
            pair = torch.softmax(logits[[self.yes_id, self.no_id]], dim=-1)
            out.append(float(pair[0]))
        return out


class ReaderVerifier:
    """Score through a Reader's ``score``: sigmoid of log P(" Yes") - log P(" No") after the verification prompt."""

    def __init__(self, reader: Reader, template: str = QUESTION_TEMPLATE, yes: str = " Yes", no: str = " No"):
        self.reader, self.template, self.yes, self.no = reader, template, yes, no

    def score(self, question: str, solutions: Sequence[str]) -> list[float]:
        prompts = [[ChatMessage("user", self.template.format(question=question, solution=s))] for s in solutions]
        yes = self.reader.score(prompts, [self.yes] * len(prompts))
        no = self.reader.score(prompts, [self.no] * len(prompts))
        return [1.0 / (1.0 + math.exp(n - y)) for y, n in zip(yes, no, strict=True)]


class PrefixProcessRewardModel:
    """A process reward model from an outcome scorer: step i's score is the score of the prefix of steps 0..i."""

    def __init__(self, verifier: OutcomeVerifier, step_separator: str = "\n\n") -> None:
        self.verifier = verifier
        self.step_separator = step_separator

    def score_steps(self, question: str, solutions: Sequence[Sequence[str]]) -> list[list[float]]:
        prefixes = [self.step_separator.join(steps[: i + 1]) for steps in solutions for i in range(len(steps))]
        flat = self.verifier.score(question, prefixes) if prefixes else []
        out, start = [], 0
        for steps in solutions:
            out.append(list(flat[start : start + len(steps)]))
            start += len(steps)
        return out


def load_outcome_verifier(model_path: str | Path, **kwargs) -> OutcomeVerifier:
    """Load a verifier from a local model folder, choosing the head by the config's architecture."""
    config_path = Path(model_path) / "config.json"
    try:
        architectures = json.loads(config_path.read_text(encoding="utf-8")).get("architectures") or []
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{model_path}: cannot read the verifier's config.json ({exc})") from exc
    for architecture in architectures:
        for suffix, loader in VERIFIER_HEADS.items():
            if architecture.endswith(suffix):
                return loader(model_path, **kwargs)
    raise ConfigError(
        f"{model_path}: architectures {architectures} have no verifier head; supported: *{', *'.join(VERIFIER_HEADS)}"
    )


def load_process_reward_model(
    model_path: str | Path, step_separator: str = "\n\n", **kwargs
) -> PrefixProcessRewardModel:
    """A process reward model that scores each step prefix with the verifier at ``model_path``."""
    return PrefixProcessRewardModel(load_outcome_verifier(model_path, **kwargs), step_separator)
