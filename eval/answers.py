"""Answer extraction from model responses: a registry of extractors by answer format.

Extractors only read text with regular expressions and a brace scanner; nothing a model wrote is ever evaluated.
An extractor returns ``None`` when the response holds no answer in its format (graded as ``unparsed``).
"""

from __future__ import annotations

import re
from collections.abc import Callable

Extractor = Callable[[str], str | None]
EXTRACTORS: dict[str, Extractor] = {}


def register_extractor(answer_format: str) -> Callable[[Extractor], Extractor]:
    def decorate(fn: Extractor) -> Extractor:
        EXTRACTORS[answer_format] = fn
        return fn

    return decorate


def extract_answer(answer_format: str, response: str) -> str | None:
    """Extract the final answer of ``response`` in ``answer_format`` (multiple_choice, boxed, short)."""
    try:
        extractor = EXTRACTORS[answer_format]
    except KeyError:
        raise KeyError(f"unknown answer format {answer_format!r}; known: {', '.join(sorted(EXTRACTORS))}") from None
    return extractor(response)


# ---------------------------------------------------------------- multiple choice
# "Answer: B", "answer: (b)", "**Answer:** C", "ANSWER: [D]", "Answer - A": markdown emphasis and brackets tolerated.
_CHOICE_RE = re.compile(
    r"answer\s*\**\s*[:\-]\s*\**\s*[\(\[]?\s*\**\s*([A-Ja-j])(?=(?P<after>[^\n]*))",
    re.IGNORECASE,
)
# What may follow a lowercase letter for it to count as a choice ("answer: a" yes, "answer: a bit more" no).
_LOWERCASE_TAIL_RE = re.compile(r"^\s*[\)\]]?\s*[\*\.\s]*$")


@register_extractor("multiple_choice")
def extract_choice_letter(response: str) -> str | None:
    """The letter of the LAST ``Answer: X`` in the response (models often restate or revise their answer)."""
    letter = None
    for match in _CHOICE_RE.finditer(response):
        candidate, after = match.group(1), match.group("after")
        if candidate.isupper():
            if after[:1].isalnum():  # "Answer: Because ..." is not a choice
                continue
        elif not _LOWERCASE_TAIL_RE.match(after):
            continue
        letter = candidate.upper()
    return letter


# ---------------------------------------------------------------- boxed (MATH)
_BOX_COMMANDS = ("\\boxed", "\\fbox")
_FINAL_ANSWER_RE = re.compile(r"final answer is[:\s]*(.+?)\s*(?:\.\s|\.?$|\n)", re.IGNORECASE | re.DOTALL)


def _balanced_group(text: str, open_index: int) -> str | None:
    """The text inside the brace group opening at ``open_index``, or None when it never closes (truncated output)."""
    depth = 0
    for i in range(open_index, len(text)):
        char = text[i]
        # An escaped brace \{ or \} (a literal brace in LaTeX) does not open or close a group.
        if char == "{" and (i == 0 or text[i - 1] != "\\"):
            depth += 1
        elif char == "}" and (i == 0 or text[i - 1] != "\\"):
            depth -= 1
            if depth == 0:
                return text[open_index + 1 : i]
    return None


def last_boxed(response: str) -> str | None:
    """Content of the last complete ``\\boxed{...}`` or ``\\fbox{...}`` (nested braces balanced), else None."""
    starts = sorted(
        (m.start(), m.end()) for cmd in _BOX_COMMANDS for m in re.finditer(re.escape(cmd) + r"(?![A-Za-z])", response)
    )
    for _, end in reversed(starts):
        rest = response[end:]
        stripped = rest.lstrip()
        offset = end + len(rest) - len(stripped)
        if stripped.startswith("{"):
            content = _balanced_group(response, offset)
            if content is not None:
                return content.strip()
        elif stripped:  # "\boxed 5": the argument is one token
            token = re.match(r"[^\s$.,;]+", stripped)
            if token:
                return token.group(0)
    return None


@register_extractor("boxed")
def extract_boxed_answer(response: str) -> str | None:
    """The last ``\\boxed{}`` / ``\\fbox{}``; failing that, the text after the last "final answer is"."""
    boxed = last_boxed(response)
    if boxed is not None:
        return boxed
    matches = list(_FINAL_ANSWER_RE.finditer(response))
    if not matches:
        return None
    answer = matches[-1].group(1).strip().strip("$").strip()
    return answer or None


# ---------------------------------------------------------------- short answers (SimpleQA)
_SHORT_PREFIX_RE = re.compile(r"^\s*(?:\**\s*(?:final\s+)?answer\s*\**\s*:\s*\**)", re.IGNORECASE)


@register_extractor("short")
def extract_short_answer(response: str) -> str | None:
    """The response itself, without a leading "Answer:" (SimpleQA is graded on the whole short response)."""
    answer = _SHORT_PREFIX_RE.sub("", response.strip()).strip()
    return answer or None
