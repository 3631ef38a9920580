"""MATH answer equivalence: a cheap normalized-string check, then Math-Verify in a worker process with a hard timeout.

Safety: model text is never evaluated. Math-Verify's default extraction includes ``ExprExtractionConfig``, whose
``extract_expr`` calls sympy's ``parse_expr`` (which runs ``eval``) on the raw string; we pass only
``LatexExtractionConfig``, which parses LaTeX with latex2sympy's own grammar and builds sympy objects directly.
Even a grammar parser can make sympy compute something enormous (``2^{2^{2^{2^{100}}}}``), and Math-Verify's SIGALRM
timeouts cannot interrupt C code and break in threads, so grading runs in separate processes (``catalog.workers``:
spawn context, address space capped, several in parallel), one killed and replaced when a comparison runs past
``timeout_s``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from fractions import Fraction

from tqdm import tqdm

from catalog.workers import TaskFailed, TimeoutPool
from eval.graders.base import CORRECT, INCORRECT, TIMEOUT, UNPARSED, Grade, check_lengths, register_grader

# ---------------------------------------------------------------- cheap pre-check (no worker)
_SPACING_RE = re.compile(r"\\[,;:! ]|\\(?:left|right|displaystyle)\b|\s+")
_UNIT_RE = re.compile(r"^(.+?)\\(?:text|mbox|mathrm)\{\s*[A-Za-z][A-Za-z ]*\}(?:\^\{?\d\}?)?$")
_DEGREE_RE = re.compile(r"(?:\^\{?\\circ\}?|°|\\%|%|\\\$)$")
_SINGLE_VAR_EQ_RE = re.compile(r"^[A-Za-z]=(?!=)(.+)$")
_FRAC_SHORT_RE = re.compile(r"\\frac(\{[^{}]*\}|\d)(\{[^{}]*\}|\d)")
_SQRT_SHORT_RE = re.compile(r"\\sqrt(\d)")
_NUMBER_RE = re.compile(r"^-?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?$")
_FRACTION_RE = re.compile(r"^(-?)\\frac\{(-?\d+)\}\{(-?\d+)\}$|^(-?\d+)/(-?\d+)$")


def _brace(arg: str) -> str:
    return arg if arg.startswith("{") else "{" + arg + "}"


def normalize_math_answer(answer: str) -> str:
    """A canonical string form: no spacing commands or $, \\dfrac -> \\frac, \\frac12 -> \\frac{1}{2}, units and
    degree signs dropped, ``x=2`` -> ``2``."""
    text = answer.strip().strip("$")
    text = _SPACING_RE.sub("", text)
    text = text.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    text = _FRAC_SHORT_RE.sub(lambda m: "\\frac" + _brace(m.group(1)) + _brace(m.group(2)), text)
    text = _SQRT_SHORT_RE.sub(r"\\sqrt{\1}", text)
    unit = _UNIT_RE.match(text)
    if unit:
        text = unit.group(1)
    text = _DEGREE_RE.sub("", text)
    variable = _SINGLE_VAR_EQ_RE.match(text)
    if variable:
        text = variable.group(1)
    return text.rstrip(".")


def exact_number(normalized: str) -> Fraction | None:
    """The exact value of a plain integer, decimal or integer fraction (read with regexes, not evaluated)."""
    if normalized and normalized not in ("-", ".") and _NUMBER_RE.match(normalized):
        return Fraction(normalized.replace(",", ""))
    fraction = _FRACTION_RE.match(normalized)
    if fraction:
        sign, num, den = (fraction.group(1), fraction.group(2), fraction.group(3))
        if num is None:
            sign, num, den = "", fraction.group(4), fraction.group(5)
        if int(den) == 0:
            return None
        value = Fraction(int(num), int(den))
        return -value if sign else value
    return None


def precheck(predicted: str, gold: str) -> Grade | None:
    """A sure verdict from normalized strings or exact numbers, or None when Math-Verify must decide."""
    pred, ref = normalize_math_answer(predicted), normalize_math_answer(gold)
    if pred == ref:
        return Grade(CORRECT, "normalized string match")
    pred_value, ref_value = exact_number(pred), exact_number(ref)
    if pred_value is not None and ref_value is not None:
        return Grade(CORRECT if pred_value == ref_value else INCORRECT, "exact number comparison")
    return None


# ---------------------------------------------------------------- worker process
class _GaveUp(logging.Handler):
    """Counts Math-Verify's "Timeout during parsing/comparison" log records."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("Timeout during"):
            self.count += 1


def math_verify_handler(internal_timeout_s: int, max_memory_mb: int | None) -> Callable[[list[str]], list[str]]:
    """Built once in each grading process (address space capped first): answers [gold, predicted] with
    [outcome, detail]. Warmed up here, so sympy's first-use cost stays out of the per-item timeout."""
    if max_memory_mb:
        import resource

        limit = max_memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    gave_up = _GaveUp()  # Math-Verify's own timeouts only log and answer False/[]: count them to tell them apart
    for name in ("math_verify.grader", "math_verify.parser"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.WARNING)
        logger.propagate = False
        logger.addHandler(gave_up)
    from math_verify import LatexExtractionConfig, parse, verify

    latex_only = [LatexExtractionConfig()]  # never ExprExtractionConfig: it calls sympy parse_expr (eval)

    def grade(pair: list[str]) -> list[str]:
        gave_up.count = 0
        outcome, detail = verdict(*pair)
        if gave_up.count and outcome != CORRECT:  # slow, not wrong: a loaded machine must not turn it into INCORRECT
            return [TIMEOUT, f"math-verify gave up after {internal_timeout_s}s ({gave_up.count} timeouts)"]
        return [outcome, detail]

    def verdict(gold: str, predicted: str) -> list[str]:
        try:
            gold_parsed = parse(f"${gold}$", extraction_config=latex_only, parsing_timeout=internal_timeout_s)
            pred_parsed = parse(f"${predicted}$", extraction_config=latex_only, parsing_timeout=internal_timeout_s)
            if not pred_parsed:
                return [UNPARSED, "math parser found no expression in the prediction"]
            if not gold_parsed:
                return [INCORRECT, "gold answer could not be parsed"]
            if verify(gold_parsed, pred_parsed, timeout_seconds=internal_timeout_s):
                return [CORRECT, "math-verify"]
            return [INCORRECT, "math-verify"]
        except Exception as exc:  # RecursionError, MemoryError included: a hostile input must not end the worker
            return [UNPARSED, f"math parser failed: {type(exc).__name__}"]

    grade(["1", "1"])
    return grade


@register_grader("math")
class MathGrader:
    """Grades MATH answers; use as a context manager (or call ``close()``) to stop the worker processes.

    Answers the pre-check cannot decide go to ``workers`` grading processes in parallel (a
    ``catalog.workers.TimeoutPool``); ``timeout_s`` bounds one comparison's wall time (the workers' start, a few
    seconds, is outside the bound). Predictions longer than ``max_chars`` are ``unparsed`` without reaching the parser.
    """

    name: str

    def __init__(
        self,
        timeout_s: float = 5.0,
        max_chars: int = 2000,
        max_memory_mb: int | None = 2048,
        parser_timeout_s: int | None = None,
        workers: int = 2,
    ) -> None:
        self.timeout_s = timeout_s
        self.max_chars = max_chars
        # Math-Verify's own SIGALRM timeouts (whole seconds, per parse and per verify) stop most slow sympy work
        # without losing the worker; the hard timeout catches what they cannot interrupt (C code, a stuck parser).
        internal_timeout_s = parser_timeout_s or max(1, int(timeout_s / 4))
        self._pool: TimeoutPool = TimeoutPool(
            math_verify_handler,
            (internal_timeout_s, max_memory_mb),
            workers=workers,
            timeout_s=timeout_s,
            name="math-grading",
        )

    @property
    def restarts(self) -> int:
        """Grading processes killed (timeout) or lost (crash) and replaced so far."""
        return self._pool.stats.counters.get("workers_replaced", 0)

    def __enter__(self) -> MathGrader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._pool.close()

    def _without_parser(self, predicted: str | None, gold: str) -> Grade | None:
        """The grade when the parser is not needed: nothing extracted, too long, or a sure pre-check."""
        if predicted is None or not predicted.strip():
            return Grade(UNPARSED, "no answer extracted")
        if len(predicted) > self.max_chars:
            return Grade(UNPARSED, f"answer longer than {self.max_chars} characters")
        return precheck(predicted, gold)

    def _from_worker(self, answer: list[str] | TaskFailed) -> Grade:
        if not isinstance(answer, TaskFailed):
            return Grade(*answer)
        if answer.reason == "timeout":
            return Grade(TIMEOUT, f"no verdict within {self.timeout_s:g}s; worker killed")
        return Grade(UNPARSED, f"math worker died ({answer.detail})")

    def grade_one(self, predicted: str | None, gold: str) -> Grade:
        return self.grade([predicted], [gold])[0]

    def equivalent(self, a: str, b: str) -> bool:
        """Whether two extracted answers are the same mathematical answer (``b`` plays the gold's role, but both come
        from a model, so both are held to ``max_chars``)."""
        return len(b) <= self.max_chars and self.grade_one(a, b).correct

    def grade(
        self, predictions: Sequence[str | None], golds: Sequence[str], questions: Sequence[str] | None = None
    ) -> list[Grade]:
        check_lengths(predictions, golds, questions)
        pairs = [(p, g, self._without_parser(p, g)) for p, g in zip(predictions, golds, strict=True)]
        graded = self._pool.map(pairs, lambda pair: None if pair[2] is not None else [pair[1], pair[0]])
        return [
            sure if sure is not None else self._from_worker(answer)
            for (_, _, sure), answer in tqdm(graded, total=len(pairs), desc="math grading", disable=None)
        ]
