"""TRL's reward library by TRL's names: each registered reward returns exactly what TRL's own function returns."""

import pytest
from trl import rewards as trl_rewards

from trl_grpo_plus import get_registry
from trl_grpo_plus.rewards import score_batch

CONVERSATIONS = [
    [{"role": "assistant", "content": "<think>2 and 2</think>\nThe answer is $4$."}],
    [{"role": "assistant", "content": "It is \\boxed{\\frac{1}{2}}"}],
    [{"role": "assistant", "content": "no think tags, 5"}],
    [{"role": "assistant", "content": "<think>hmm</think> the the the the the the"}],
]
SOLUTIONS = ["$4$", "$0.5$", "$6$", "$3$"]
COMPLETION_IDS = [[1] * 3, [2] * 40, [3] * 1200, [4, 4, 5, 4, 4, 5, 4, 4, 5]]


@pytest.fixture
def registered(plugin_manager):
    rewards = get_registry(plugin_manager).reward_functions
    assert all(rewards.plugin_of(name) == "trl_rewards" for name in TRL_NAMES)
    return rewards


TRL_NAMES = (
    "accuracy_reward",
    "reasoning_accuracy_reward",
    "think_format_reward",
    "get_soft_overlong_punishment",
    "get_cosine_scaled_reward",
    "get_repetition_penalty_reward",
)


def ours(registered, name, options=None):
    return score_batch(
        registered[name], CONVERSATIONS, completion_ids=COMPLETION_IDS, solution=SOLUTIONS, options=options
    )


@pytest.mark.parametrize("name", ["accuracy_reward", "reasoning_accuracy_reward"])
def test_the_math_verifying_rewards_are_trls(registered, name):
    pytest.importorskip("math_verify", reason="TRL's accuracy rewards need math-verify")
    expected = getattr(trl_rewards, name)(CONVERSATIONS, SOLUTIONS)
    assert ours(registered, name) == expected
    assert expected.count(1.0) >= 1 and expected.count(0.0) >= 1  # the case tells right from wrong


def test_think_format_reward_is_trls(registered):
    expected = trl_rewards.think_format_reward(CONVERSATIONS)
    assert ours(registered, "think_format_reward") == expected and set(expected) == {0.0, 1.0}


def test_soft_overlong_punishment_uses_trls_script_values_by_default(registered):
    # TRL's `grpo` script builds it with max_completion_len=1280, soft_punish_cache=256
    expected = trl_rewards.get_soft_overlong_punishment(1280, 256)(completion_ids=COMPLETION_IDS)
    assert ours(registered, "get_soft_overlong_punishment") == expected and min(expected) < 0
    options = {"max_completion_len": 40, "soft_punish_cache": 10}
    assert ours(registered, "get_soft_overlong_punishment", options) == trl_rewards.get_soft_overlong_punishment(
        40, 10
    )(completion_ids=COMPLETION_IDS)


def test_cosine_scaled_reward_takes_trls_arguments_as_options(registered):
    pytest.importorskip("math_verify", reason="TRL's cosine reward verifies with math-verify")
    options = {"max_len": 100, "min_value_wrong": -2.0}
    expected = trl_rewards.get_cosine_scaled_reward(100, min_value_wrong=-2.0)(
        completions=CONVERSATIONS, solution=SOLUTIONS, completion_ids=COMPLETION_IDS
    )
    assert ours(registered, "get_cosine_scaled_reward", options) == expected


def test_cosine_scaled_reward_needs_max_len_as_in_trl(registered):
    with pytest.raises(ValueError, match="needs option 'max_len'"):
        ours(registered, "get_cosine_scaled_reward")


def test_repetition_penalty_uses_trls_defaults(registered):
    expected = trl_rewards.get_repetition_penalty_reward()(completion_ids=COMPLETION_IDS)
    assert ours(registered, "get_repetition_penalty_reward") == expected and min(expected) < 0
    expected = trl_rewards.get_repetition_penalty_reward(ngram_size=2, max_penalty=-0.5)(completion_ids=COMPLETION_IDS)
    assert ours(registered, "get_repetition_penalty_reward", {"ngram_size": 2, "max_penalty": -0.5}) == expected
