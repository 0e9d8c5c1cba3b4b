"""TRL's own reward library (`trl.rewards`), registered under TRL's names: what `trl grpo --reward_funcs` accepts.

The plain rewards call TRL's functions (the two that verify math import `math-verify` when first called, not when the
plugin loads). TRL's factories (`get_soft_overlong_punishment`,
`get_cosine_scaled_reward`, `get_repetition_penalty_reward`) take their arguments as reward options
(`GRPOConfig.reward_kwargs`), defaulting to what TRL's `grpo` script uses where it sets them; each call builds TRL's
reward with those arguments and returns what it returns. Nothing is re-implemented.
"""

from __future__ import annotations

from trl import rewards

from ..hookspecs import hookimpl


def accuracy_reward(completions, solution, **kwargs) -> list[float | None]:
    """TRL's `accuracy_reward`: the completion's answer checked against `solution` by math-verify."""
    return rewards.accuracy_reward(completions, solution, **kwargs)


def reasoning_accuracy_reward(
    completions, solution, *, reasoning_delimiters: list[str] | None = None, **kwargs
) -> list[float | None]:
    """TRL's `reasoning_accuracy_reward`: `accuracy_reward` on what follows the reasoning."""
    return rewards.reasoning_accuracy_reward(
        completions, solution, reasoning_delimiters=reasoning_delimiters, **kwargs
    )


def get_soft_overlong_punishment(
    completion_ids, *, max_completion_len: int = 1280, soft_punish_cache: int = 256, **kwargs
) -> list[float]:
    """TRL's `get_soft_overlong_punishment(max_completion_len, soft_punish_cache)`, with TRL's script's values."""
    reward = rewards.get_soft_overlong_punishment(max_completion_len, soft_punish_cache)
    return reward(completion_ids=completion_ids, **kwargs)


def get_cosine_scaled_reward(
    completions,
    solution,
    completion_ids,
    *,
    max_len: int,
    min_value_wrong: float = -1.0,
    max_value_wrong: float = -0.5,
    min_value_correct: float = 0.5,
    max_value_correct: float = 1.0,
    **kwargs,
) -> list[float | None]:
    """TRL's `get_cosine_scaled_reward(max_len, ...)`; `max_len` is required, as in TRL."""
    reward = rewards.get_cosine_scaled_reward(
        max_len, min_value_wrong, max_value_wrong, min_value_correct, max_value_correct
    )
    return reward(completions=completions, solution=solution, completion_ids=completion_ids, **kwargs)


def get_repetition_penalty_reward(completion_ids, *, ngram_size: int = 3, max_penalty: float = -1.0, **kwargs):
    """TRL's `get_repetition_penalty_reward(ngram_size, max_penalty)`, with TRL's defaults."""
    return rewards.get_repetition_penalty_reward(ngram_size, max_penalty)(completion_ids=completion_ids, **kwargs)


# TRL's functions take `solution` as a required argument: without that column they fail at the first step. Declared,
# the trainer checks for it before it loads the model.
for _reward in (accuracy_reward, reasoning_accuracy_reward, get_cosine_scaled_reward):
    _reward.required_columns = ["solution"]


@hookimpl
def register_reward_functions(register):
    register(accuracy_reward)
    register(reasoning_accuracy_reward)
    register(rewards.think_format_reward, name="think_format_reward")
    register(get_soft_overlong_punishment)
    register(get_cosine_scaled_reward)
    register(get_repetition_penalty_reward)
