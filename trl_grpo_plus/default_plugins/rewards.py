"""Built-in reward functions: GSM8K-style answer accuracy, output format, and DAPO's soft overlong penalty.

Each follows TRL's reward contract ``f(prompts, completions, **kwargs) -> list[float | None]``; options are keyword
parameters, set per run with ``GRPOConfig.reward_kwargs={"<name>": {...}}``.
"""

from __future__ import annotations

import re

from ..hookspecs import hookimpl
from ..rewards import completion_text, extract_final_answer


def accuracy(completions, answer=None, solution=None, **kwargs) -> list[float | None]:
    """1.0 when the completion's final number equals the gold answer's, else 0.0; ``None`` without a gold answer.

    The gold answer comes from the ``answer`` column (GSM8K: ``"...reasoning... #### 72"``) or else ``solution``.
    Numbers compare by value: ``"1,000"``, ``"$1000"``, ``"1000.00"`` and ``"1000 dollars"`` are all equal.
    """
    golds = answer if answer is not None else solution
    if golds is None:
        return [None] * len(completions)
    rewards: list[float | None] = []
    for completion, gold in zip(completions, golds, strict=True):
        gold_value = extract_final_answer(str(gold)) if gold is not None else None
        if gold_value is None:
            rewards.append(None)
            continue
        predicted = extract_final_answer(completion_text(completion))
        rewards.append(1.0 if predicted is not None and predicted == gold_value else 0.0)
    return rewards


accuracy.required_columns = [("answer", "solution")]  # the trainer checks the dataset has one before loading a model


def format(
    completions, reasoning_tag: str = "think", answer_tag: str = "answer", pattern: str | None = None, **kwargs
) -> list[float]:
    """1.0 when the completion is reasoning in ``<think>...</think>`` followed by ``<answer>...</answer>``, else 0.0.

    Options: ``reasoning_tag`` / ``answer_tag`` rename the tags (``reasoning_tag=""`` requires the answer tags
    only); ``pattern`` replaces the whole check with a regular expression the stripped text must match in full.
    """
    regex = re.compile(pattern if pattern is not None else _format_pattern(reasoning_tag, answer_tag), re.DOTALL)
    return [1.0 if regex.fullmatch(completion_text(c).strip()) else 0.0 for c in completions]


def _format_pattern(reasoning_tag: str, answer_tag: str) -> str:
    answer = rf"<{re.escape(answer_tag)}>.*?</{re.escape(answer_tag)}>"
    if not reasoning_tag:
        return answer
    return rf"<{re.escape(reasoning_tag)}>.*?</{re.escape(reasoning_tag)}>\s*{answer}"


def _validate_format_options(reasoning_tag: str = "think", answer_tag: str = "answer", pattern: str | None = None):
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as error:
            raise ValueError(f"option 'pattern' is not a valid regular expression: {error}") from None
    elif not answer_tag:
        raise ValueError("option 'answer_tag' must be a non-empty tag name such as 'answer'")


format.validate_options = _validate_format_options


def overlong_penalty(completion_ids, *, max_length: int, cache_length: int, **kwargs) -> list[float]:
    """DAPO's soft overlong punishment (arXiv:2503.14476, eq. 13), by completion length L in tokens.

    0 while ``L <= max_length - cache_length``; then falls linearly to -1 at ``L = max_length``; -1 beyond. Set
    ``max_length`` to the trainer's ``max_completion_length`` and ``cache_length`` to the soft zone (DAPO: 4096 of
    20480).
    """
    threshold = max_length - cache_length
    return [
        0.0 if n <= threshold else -1.0 if n > max_length else (threshold - n) / cache_length
        for n in map(len, completion_ids)
    ]


def _validate_overlong_options(*, max_length, cache_length):
    if not isinstance(max_length, int) or not isinstance(cache_length, int) or not 0 < cache_length < max_length:
        raise ValueError(
            f"needs integers 0 < cache_length < max_length, got max_length={max_length!r}, "
            f"cache_length={cache_length!r}"
        )


overlong_penalty.validate_options = _validate_overlong_options


@hookimpl
def register_reward_functions(register):
    register(accuracy)
    register(format)
    register(overlong_penalty)
