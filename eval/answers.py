"""Answer extraction from model responses: a registry of extractors by answer format.

Extractors only read text with regular expressions and a brace scanner; nothing a model wrote is ever evaluated.
An extractor returns ``None`` when the response holds no answer in its format (graded as ``unparsed``).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from catalog.registry import Registry

AnswerExtractor = Callable[[str], str | None]
ANSWER_EXTRACTORS: Registry[AnswerExtractor] = Registry("answer format", KeyError)


def register_answer_extractor(answer_format: str) -> Callable[[AnswerExtractor], AnswerExtractor]:
    return ANSWER_EXTRACTORS.register(answer_format)


def extract_answer(answer_format: str, response: str) -> str | None:
    """Extract the final answer of ``response`` in ``answer_format`` (multiple_choice, boxed, short)."""
    return ANSWER_EXTRACTORS.lookup(answer_format)(response)


# ---------------------------------------------------------------- multiple choice
# Every pattern below is linear in the response's length: runs of whitespace and markdown stars are matched by one
# possessive ``[\s*]*+`` (never two adjacent ``\s*``, which backtrack against each other: "Answer:" + 300 spaces + "!"
# took 88 s that way), and no lookahead reads to the end of a line (a long line of "Answer: A" would be quadratic).
# "Answer: B", "answer: (b)", "**Answer:** C", "ANSWER: [D]", "Answer - A": markdown emphasis and brackets tolerated.
_CHOICE_RE = re.compile(r"answer[\s*]*+[:\-][\s*]*+[\(\[]?+[\s*]*+([A-Ja-j])", re.IGNORECASE)
# What may follow a lowercase letter, up to the end of its line, for it to count as a choice ("answer: a" yes,
# "answer: a bit more" no). Its characters cannot start another match, so these tails never overlap.
_LOWERCASE_TAIL_RE = re.compile(r"[^\S\n]*+[\)\]]?+(?:[^\S\n]|[*.])*+(?:\n|\Z)")


@register_answer_extractor("multiple_choice")
def extract_choice_letter(response: str) -> str | None:
    """The letter of the LAST ``Answer: X`` in the response (models often restate or revise their answer)."""
    letter = None
    for match in _CHOICE_RE.finditer(response):
        candidate, end = match.group(1), match.end()
        if candidate.isupper():
            if response[end : end + 1].isalnum():  # "Answer: Because ..." is not a choice
                continue
        elif not _LOWERCASE_TAIL_RE.match(response, end):
            continue
        letter = candidate.upper()
    return letter


# ---------------------------------------------------------------- boxed (MATH)
_BOX_COMMAND_RE = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
_SPACES_RE = re.compile(r"\s*+")
_BARE_TOKEN_RE = re.compile(r"[^\s$.,;]+")
_FINAL_ANSWER_RE = re.compile(r"final answer is", re.IGNORECASE)
_FINAL_ANSWER_LEAD_RE = re.compile(r"[:\s]*+")
_FINAL_ANSWER_END_RE = re.compile(r"\n|\.\s")


def _closing_braces(text: str) -> dict[int, int]:
    """For each ``{`` that closes, the index of its matching ``}``: one pass with a stack. An escaped brace ``\\{``
    or ``\\}`` (a literal brace in LaTeX) does not open or close a group; a group that never closes (truncated output)
    has no entry."""
    closing: dict[int, int] = {}
    open_at: list[int] = []
    for match in re.finditer(r"(?<!\\)[{}]", text):
        i = match.start()
        if text[i] == "{":
            open_at.append(i)
        elif open_at:
            closing[open_at.pop()] = i
    return closing


def last_boxed(response: str) -> str | None:
    """Content of the last complete ``\\boxed{...}`` or ``\\fbox{...}`` (nested braces balanced), else None.

    Linear time: brace pairs are found in one pass, not re-scanned for each box (8,000 unclosed ``\\boxed{`` never
    finished that way)."""
    boxes = list(_BOX_COMMAND_RE.finditer(response))
    if not boxes:
        return None
    closing = _closing_braces(response)
    for box in reversed(boxes):
        start = _SPACES_RE.match(response, box.end()).end()
        if start == len(response):
            continue
        if response[start] == "{":
            end = closing.get(start)
            if end is not None:
                return response[start + 1 : end].strip()
            continue
        token = _BARE_TOKEN_RE.match(response, start)  # "\boxed 5": the argument is one token
        if token:
            return token.group(0)
    return None


def _final_answer_phrase(response: str) -> str | None:
    """The text after the last "final answer is", up to the end of its line or sentence (". "), without $."""
    last_end = max((m.end() for m in _FINAL_ANSWER_RE.finditer(response)), default=None)
    if last_end is None:
        return None
    start = _FINAL_ANSWER_LEAD_RE.match(response, last_end).end()
    stop = _FINAL_ANSWER_END_RE.search(response, start + 1)
    if stop is None:
        answer = response[start:].rstrip()
        answer = answer[:-1] if answer.endswith(".") else answer
    else:
        answer = response[start : stop.start()]
    return answer.strip().strip("$").strip() or None


@register_answer_extractor("boxed")
def extract_boxed_answer(response: str) -> str | None:
    """The last ``\\boxed{}`` / ``\\fbox{}``; failing that, the text after the last "final answer is"."""
    boxed = last_boxed(response)
    if boxed is not None:
        return boxed
    return _final_answer_phrase(response)


# ---------------------------------------------------------------- short answers (SimpleQA)
_SHORT_PREFIX_RE = re.compile(r"[\s*]*+(?:final\s++)?answer[\s*]*+:[\s*]*+", re.IGNORECASE)


@register_answer_extractor("short")
def extract_short_answer(response: str) -> str | None:
    """The response itself, without a leading "Answer:" (SimpleQA is graded on the whole short response)."""
    response = response.strip()
    prefix = _SHORT_PREFIX_RE.match(response)
    answer = response[prefix.end() if prefix else 0 :].strip()
    return answer or None


_SENTENCE_END_RE = re.compile(r"(?<=[^\s.]{2})[.!?](?:\s|$)")


@register_answer_extractor("phrase")
def extract_phrase_answer(response: str) -> str | None:
    """The short answer of an open-domain QA response: its first non-empty line, without a leading "Answer:",
    cut at the end of its first sentence (so votes compare answers, not the sentences around them)."""
    for line in response.strip().splitlines():
        line = line.strip()
        prefix = _SHORT_PREFIX_RE.match(line)
        answer = line[prefix.end() if prefix else 0 :].strip()
        if answer:
            end = _SENTENCE_END_RE.search(answer)
            return (answer[: end.start()] if end else answer).strip() or None
    return None
