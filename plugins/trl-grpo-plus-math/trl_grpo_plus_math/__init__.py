"""trl-grpo-plus plugin: the `math_verify` reward, symbolic answer equivalence through `math-verify`."""

from __future__ import annotations

import logging
import re
import threading
from decimal import Decimal

from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

from trl_grpo_plus import hookimpl
from trl_grpo_plus.rewards import completion_text, last_boxed, marked_answer, plain_number

__version__ = "0.3.0"

EXTRACT_CHOICES = ("tags", "boxed", "last")

_EXTRACTION = [LatexExtractionConfig(), ExprExtractionConfig()]
_MATH_DELIMITERS = ("$", "\\(", "\\[")
# LaTeX commands and the text they typeset as words (units such as "\text{ cm}") are not prose.
_LATEX_WORDS = re.compile(r"\\(?:text|textbf|mathrm|mbox)\s*\{[^{}]*\}|\\[A-Za-z]+")
_PROSE_WORD = re.compile(r"[A-Za-z]{2,}")


def math_verify(
    completions,
    solution=None,
    answer=None,
    timeout_seconds: int = 5,
    answer_tag: str = "answer",
    extract: str = "tags",
    **kwargs,
) -> list[float | None]:
    """1.0 when the completion's answer is mathematically equivalent to the gold one, else 0.0; None without gold.

    The answer is read as ``extract`` says: ``"tags"`` (default) the last ``<answer_tag>`` block, else the last
    ``\\boxed{}``, else the ``#### N`` line, else the last expression anywhere in the completion; ``"boxed"`` the last
    ``\\boxed{}`` only (no box scores 0); ``"last"`` the last expression anywhere, ignoring tags and markers. Plain
    numbers compare as ``accuracy`` compares them (``$1,000`` = ``1000``, ``72 clips`` = ``72``, ``50%`` = ``50``).
    The gold answer (``solution`` column, else ``answer``) is read the ``"tags"`` way: GSM8K's ``#### 72`` and
    MATH's ``\\boxed{}`` solutions are understood, and a bare gold is the answer itself.
    """
    golds = solution if solution is not None else answer
    if golds is None:
        return [None] * len(completions)
    # math-verify times itself out with signal.alarm, which only the main thread may use. Elsewhere (trl-grpo-plus
    # runs sync rewards in worker threads, under its own reward_timeout) its timeouts are off, as TRL's are.
    if threading.current_thread() is not threading.main_thread():
        timeout_seconds = None
        for name in ("math_verify.parser", "math_verify.grader"):  # their "timeout is disabled" warnings
            logging.getLogger(name).setLevel(logging.ERROR)
    rewards: list[float | None] = []
    for completion, gold in zip(completions, golds, strict=True):
        gold_parsed = (
            _parse_answer(_answer_text(str(gold), "tags", "answer"), timeout_seconds) if gold is not None else []
        )
        if not gold_parsed:
            rewards.append(None)
            continue
        answer_text = _answer_text(completion_text(completion), extract, answer_tag)
        predicted = _parse_answer(answer_text, timeout_seconds) if answer_text is not None else []
        rewards.append(1.0 if predicted and verify(gold_parsed, predicted, timeout_seconds=timeout_seconds) else 0.0)
    return rewards


def _answer_text(text: str, extract: str, answer_tag: str) -> str | None:
    if extract == "boxed":
        return last_boxed(text)
    if extract == "tags":
        marked = marked_answer(text, answer_tag=answer_tag)
        if marked is not None:
            return marked
    return text


def _parse_answer(text: str, timeout_seconds: int | None) -> list:
    def read(source: str) -> list:
        return parse(source, extraction_config=_EXTRACTION, parsing_timeout=timeout_seconds)

    number = plain_number(text)
    if number is not None:
        return read(_decimal_text(number))
    if any(delimiter in text for delimiter in _MATH_DELIMITERS) or _PROSE_WORD.search(_LATEX_WORDS.sub(" ", text)):
        # Prose or delimited math: math-verify finds the answer in it (its last expression, or a `$…$` block).
        return read(text)
    # Bare LaTeX such as `\sqrt{2}` or `(1, 2]`, which math-verify only reads between math delimiters.
    return read(f"${text}$") or read(text)


def _decimal_text(number: Decimal) -> str:
    return format(number, "f")  # "1000", where str() of a normalized Decimal gives "1E+3"


def _validate_options(timeout_seconds: int = 5, answer_tag: str = "answer", extract: str = "tags"):
    if not isinstance(timeout_seconds, int) or timeout_seconds < 1:
        raise ValueError(f"option 'timeout_seconds' must be a positive integer, got {timeout_seconds!r}")
    if extract not in EXTRACT_CHOICES:
        raise ValueError(f"option 'extract' must be one of {', '.join(map(repr, EXTRACT_CHOICES))}, got {extract!r}")
    if not isinstance(answer_tag, str) or not re.fullmatch(r"[\w.:-]+", answer_tag):
        raise ValueError(f"option 'answer_tag' must be a tag name such as 'answer', got {answer_tag!r}")
    if answer_tag != "answer" and extract != "tags":
        raise ValueError(f"option 'answer_tag' is read only with extract='tags', not extract={extract!r}")


math_verify.validate_options = _validate_options
math_verify.required_columns = [("solution", "answer")]  # checked against the dataset before a model loads


@hookimpl
def register_reward_functions(register):
    register(math_verify)
