"""The public toolkit for reward-function authors: what a reward needs besides its own logic.

A reward follows TRL's contract (``reward(prompts, completions, completion_ids, **columns) -> list[float | None]``,
see `trl_grpo_plus.hookspecs.RewardFunction`). These helpers are what the built-in rewards and the first-party
plugins (``trl-grpo-plus-math``, ``trl-grpo-plus-code``) use, and they stay stable across minor versions:

- `completion_text`: the text of a completion, standard or conversational;
- answer parsing (`marked_answer`, `answer_block`, `last_boxed`, `after_final_marker`, `extract_final_answer`) and
  number comparison (`plain_number`, `parse_number`, `same_number`), from `trl_grpo_plus.answers`;
- `score_batch`: run a reward on a batch the way the trainer does (with its checks), for plugin tests.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from .answers import (
    FINAL_MARKER,
    after_final_marker,
    answer_block,
    completion_text,
    extract_final_answer,
    last_boxed,
    marked_answer,
    parse_number,
    plain_number,
)

__all__ = [
    "FINAL_MARKER",
    "after_final_marker",
    "answer_block",
    "completion_text",
    "extract_final_answer",
    "last_boxed",
    "marked_answer",
    "parse_number",
    "plain_number",
    "same_number",
    "score_batch",
]


def same_number(a: str | Decimal | None, b: str | Decimal | None) -> bool:
    """Whether two answers are the same plain number (``"$1,000"`` equals ``"1000.00"``); False if either is not one."""
    a = plain_number(a) if isinstance(a, str) else a
    b = plain_number(b) if isinstance(b, str) else b
    return a is not None and b is not None and a == b


def score_batch(
    reward: Callable[..., Any],
    completions: Sequence[Any],
    *,
    prompts: Sequence[Any] | None = None,
    completion_ids: Sequence[Sequence[int]] | None = None,
    options: Mapping[str, Any] | None = None,
    **columns: Sequence[Any],
) -> list[float | None]:
    """Score `completions` with `reward` as the trainer calls it, and check the answer as the trainer checks it.

    `prompts` default to empty strings and `completion_ids` to empty lists; `columns` are dataset columns (one value
    per completion), `options` the reward's options (what a user sets in ``GRPOConfig.reward_kwargs``), checked as
    the trainer checks a plugin reward's: `trl_grpo_plus.PluginError` for an unknown, missing or invalid option.
    Raises `trl_grpo_plus.RewardFunctionError` when the reward raises or breaks the contract (wrong count, type,
    inf). Async rewards are run to completion.
    """
    import asyncio
    import concurrent.futures
    import inspect

    from .reward_guard import guard

    for column, values in columns.items():
        if len(values) != len(completions):
            raise ValueError(f"column {column!r} has {len(values)} values for {len(completions)} completions")
    name = getattr(reward, "__name__", type(reward).__name__)
    guarded = guard(reward, name, plugin=getattr(reward, "__module__", None) or "test", options=options)
    result = guarded(
        prompts=list(prompts) if prompts is not None else [""] * len(completions),
        completions=list(completions),
        completion_ids=[list(ids) for ids in completion_ids]
        if completion_ids is not None
        else [[]] * len(completions),
        **{column: list(values) for column, values in columns.items()},
    )
    if not inspect.isawaitable(result):
        return result
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(result)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # called from async code: its own loop, in a thread
        return pool.submit(asyncio.run, result).result()
