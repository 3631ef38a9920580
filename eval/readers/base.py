"""The Reader interface every reader model implements, and the registry that builds readers by name.

A reader turns chat prompts into completions. Test-time strategies (``eval.tts``) sample through it, graders
(SimpleQA) judge through it, and FLOP accounting reads the token counts it records, so every completion carries its
own prompt/completion token counts and the seed that produced it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from catalog.errors import ConfigError, RereadError
from catalog.registry import Registry


class ReaderError(RereadError):
    """A reader backend failed (an endpoint kept failing after retries, a prompt longer than the model's context)."""


@dataclass(frozen=True)
class ChatMessage:
    role: str  # "system", "user" or "assistant"
    content: str


@dataclass(frozen=True)
class GenerationParams:
    max_tokens: int = 512
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0
    n: int = 1  # completions per prompt
    seed: int = 0  # sample i of a prompt uses seed + i
    stop: tuple[str, ...] = ()

    def sample_seeds(self) -> list[int]:
        """The seed of each of the ``n`` samples of one prompt (recorded on every Completion)."""
        return [self.seed + i for i in range(self.n)]


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    seed: int
    finish_reason: str  # "stop" (end of sequence or a stop string) or "length" (max_tokens reached)
    logprob: float | None = None  # sum of the sampled tokens' log-probabilities, when the backend reports it


def render_plain(messages: Sequence[ChatMessage]) -> str:
    """The explicit template for models without a chat template: ``Role: content`` blocks, then ``Assistant:``."""
    blocks = [f"{m.role.capitalize()}: {m.content}" for m in messages]
    return "\n\n".join([*blocks, "Assistant:"])


def split_evenly(total: int, parts: int) -> list[int]:
    """``total`` tokens split into ``parts`` whole shares that differ by at most one (remainder to the first ones),
    for backends and searches that only know a sum over several completions."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


@runtime_checkable
class Reader(Protocol):
    name: str  # model name or path
    n_params: int | None  # parameter count, for FLOP accounting (None when unknown)

    def generate(self, prompts: Sequence[Sequence[ChatMessage]], params: GenerationParams) -> list[list[Completion]]:
        """One list of ``params.n`` completions per prompt; sample i of a prompt uses seed ``params.seed + i``."""
        ...

    def score(self, prompts: Sequence[Sequence[ChatMessage]], continuations: Sequence[str]) -> list[float]:
        """Sum of log-probabilities of each continuation given its prompt (for verifiers).

        Readers whose backend cannot score raise NotImplementedError.
        """
        ...


READERS: Registry[type] = Registry("reader kind")


def register_reader(kind: str) -> Callable[[type], type]:
    """Class decorator: make a reader constructible as ``make_reader(kind, **kwargs)``."""
    return READERS.register(kind)


def make_reader(kind: str, **kwargs: Any) -> Reader:
    """Build a registered reader: ``make_reader("transformers", model_path=...)``, ``"openai"``, ``"vllm"``."""
    if kind not in READERS:
        raise ConfigError(f"reader {kind!r}: unknown kind; registered: {', '.join(sorted(READERS))}")
    return READERS[kind](**kwargs)
