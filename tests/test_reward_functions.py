"""Rewards by name, their options, and the one clear error each bad reward gives."""

import re

import pytest

from trl_grpo_plus import GRPOTrainer, PluginError, RewardFunctionError, UnknownComponentError, get_registry, hookimpl
from trl_grpo_plus.reward_guard import AsyncGuardedReward, GuardedReward, resolve_reward_funcs
from trl_grpo_plus.testing import tiny_grpo_config, tiny_model, tiny_prompt_dataset, tiny_tokenizer


def resolve(plugin_manager, reward_funcs, reward_plugins=None, reward_kwargs=None):
    return resolve_reward_funcs(
        reward_funcs, reward_plugins, reward_kwargs, get_registry(plugin_manager).reward_functions
    )


def call(reward, completions):
    return reward(prompts=["p"] * len(completions), completions=completions, completion_ids=[[1]] * len(completions))


def test_a_plugin_name_resolves_to_the_registered_reward_under_that_name(plugin_manager):
    [reward] = resolve(plugin_manager, ["accuracy"])
    assert reward.__name__ == "accuracy" and reward.plugin == "rewards"


def test_reward_plugins_from_the_config_follow_reward_funcs(plugin_manager):
    def mine(completions, **kwargs):
        return [0.0] * len(completions)

    rewards = resolve(plugin_manager, [mine], reward_plugins=["format"])
    assert [r.__name__ for r in rewards] == ["mine", "format"]


def test_reward_kwargs_reach_the_reward_as_options(plugin_manager):
    [reward] = resolve(plugin_manager, ["format"], reward_kwargs={"format": {"reasoning_tag": "", "answer_tag": "a"}})
    assert call(reward, ["<a>1</a>", "<think>x</think><a>1</a>"]) == [1.0, 0.0]


def test_an_unknown_option_is_refused_listing_the_options(plugin_manager):
    with pytest.raises(
        PluginError,
        match="'format' \\(from plugin 'rewards'\\) has no option 'tag'. Its options are: answer_tag, pattern, reasoning_tag",
    ):
        resolve(plugin_manager, ["format"], reward_kwargs={"format": {"tag": "x"}})


def test_a_missing_required_option_is_refused_showing_how_to_set_it(plugin_manager):
    with pytest.raises(
        PluginError,
        match="'overlong_penalty' \\(from plugin 'rewards'\\) needs option 'cache_length', 'max_length'. Set it in GRPOConfig.reward_kwargs\\['overlong_penalty'\\]",
    ):
        resolve(plugin_manager, ["overlong_penalty"])


def test_an_invalid_option_value_is_refused_before_training(plugin_manager):
    with pytest.raises(
        PluginError,
        match="Bad options for reward function 'overlong_penalty' \\(from plugin 'rewards'\\): needs integers",
    ):
        resolve(
            plugin_manager,
            ["overlong_penalty"],
            reward_kwargs={"overlong_penalty": {"max_length": 4, "cache_length": 9}},
        )


def test_options_for_a_reward_not_in_use_are_refused(plugin_manager):
    with pytest.raises(
        PluginError,
        match="reward_kwargs has options for 'format', which is not among the rewards in use that take options "
        "\\(accuracy:",
    ):
        resolve(plugin_manager, ["accuracy"], reward_kwargs={"format": {}})


def test_options_for_a_plain_callable_reward_point_to_binding_its_arguments(plugin_manager):
    def brevity(completions, **kwargs):
        return [0.0] * len(completions)

    with pytest.raises(PluginError, match="'brevity', a callable passed in reward_funcs, not a plugin reward") as info:
        resolve(plugin_manager, [brevity], reward_kwargs={"brevity": {"limit": 3}})
    assert "functools.partial(brevity, option=value)" in str(info.value)
    assert "Add it to reward_funcs" not in str(info.value)


def test_an_unknown_reward_name_lists_the_available_ones(plugin_manager):
    with pytest.raises(
        UnknownComponentError,
        match="Unknown reward function 'acc'.*Available reward functions: accuracy.*reward model",
    ):
        resolve(plugin_manager, ["acc"])


def test_an_unknown_name_in_reward_plugins_is_never_read_as_a_model(plugin_manager):
    with pytest.raises(UnknownComponentError, match="Unknown reward function 'org/model'"):
        resolve(plugin_manager, [], reward_plugins=["org/model"])


def test_a_model_id_string_is_left_for_trl_to_load(plugin_manager):
    assert resolve(plugin_manager, ["some-org/reward-model"]) == ["some-org/reward-model"]


def test_a_registered_name_wins_over_a_model_directory_of_the_same_name(plugin_manager, tmp_path, monkeypatch):
    (tmp_path / "accuracy").mkdir()
    monkeypatch.chdir(tmp_path)
    [reward] = resolve(plugin_manager, ["accuracy"])
    assert isinstance(reward, GuardedReward)


def test_a_reward_that_raises_is_named_with_its_plugin(plugin_manager, register_plugin):
    def fragile(completions, **kwargs):
        raise KeyError("solution")

    class Plugin:
        @hookimpl
        def register_reward_functions(self, register):
            register(fragile)

    register_plugin(Plugin(), name="fragile_plugin")
    [reward] = resolve(plugin_manager, ["fragile"])
    with pytest.raises(
        RewardFunctionError, match="'fragile' \\(from plugin 'fragile_plugin'\\) raised KeyError: 'solution'"
    ) as info:
        call(reward, ["a"])
    assert isinstance(info.value.__cause__, KeyError)


def test_a_raising_plain_callable_reward_is_not_told_to_use_reward_kwargs(plugin_manager):
    def fragile(completions, **kwargs):
        raise KeyError("solution")

    [reward] = resolve(plugin_manager, [fragile])
    with pytest.raises(RewardFunctionError, match="raised KeyError: 'solution'. Fix the reward function, or the "):
        call(reward, ["a"])
    with pytest.raises(RewardFunctionError) as info:
        call(reward, ["a"])
    assert "reward_kwargs" not in str(info.value)


@pytest.mark.parametrize(
    "value",
    [float("inf"), float("-inf"), 1e300],
    ids=["inf", "minus-inf", "overflows-float32"],
)
def test_a_reward_outside_float32_range_is_refused_naming_the_reward_and_completion(plugin_manager, value):
    def unbounded(completions, **kwargs):
        return [0.5, value]

    [reward] = resolve(plugin_manager, [unbounded])
    with pytest.raises(
        RewardFunctionError, match=re.escape(f"'unbounded' returned {value!r} for the completion 'second'")
    ):
        call(reward, ["first", "second"])


def test_nan_and_none_mean_unscorable_and_pass_through(plugin_manager):
    def partial_scores(completions, **kwargs):
        return [float("nan"), None, 3.0e38]

    [reward] = resolve(plugin_manager, [partial_scores])
    rewards = call(reward, ["a", "b", "c"])
    assert rewards[1:] == [None, 3.0e38] and rewards[0] != rewards[0]


@pytest.mark.parametrize(
    "output, message",
    [
        ([1.0], "returned 1 rewards for 2 completions"),
        (3.0, "returned float; it must return a list"),
        ([1.0, "good"], "returned 'good' \\(str\\); each reward must be a float"),
    ],
    ids=["wrong-count", "not-a-list", "not-a-number"],
)
def test_a_reward_breaking_the_contract_gets_one_clear_error(plugin_manager, output, message):
    def contract_breaker(completions, **kwargs):
        return output

    [reward] = resolve(plugin_manager, [contract_breaker])
    with pytest.raises(RewardFunctionError, match=f"'contract_breaker' {message}"):
        call(reward, ["a", "b"])


def test_none_and_tensor_outputs_are_within_the_contract(plugin_manager):
    import torch

    def as_tensor(completions, **kwargs):
        return torch.tensor([0.5, 1.5])

    def with_none(completions, **kwargs):
        return [None, 2]

    rewards = resolve(plugin_manager, [as_tensor, with_none])
    assert call(rewards[0], ["a", "b"]) == [0.5, 1.5]
    assert call(rewards[1], ["a", "b"]) == [None, 2]


def test_an_async_reward_stays_async_and_guarded(plugin_manager):
    import asyncio

    async def slow(completions, **kwargs):
        return [1.0] * len(completions)

    [reward] = resolve(plugin_manager, [slow])
    assert isinstance(reward, AsyncGuardedReward)
    assert asyncio.run(call(reward, ["a"])) == [1.0]


def test_a_bad_reward_name_fails_before_any_model_is_loaded(plugin_manager, tmp_path):
    with pytest.raises(UnknownComponentError, match="Unknown reward function 'acuracy'"):
        GRPOTrainer(
            model=str(tmp_path / "no-such-model"),  # loading it would fail with a different error
            reward_funcs=["acuracy"],
            args=tiny_grpo_config(tmp_path),
            train_dataset=tiny_prompt_dataset(),
            plugin_manager=plugin_manager,
        )


def test_a_raising_reward_stops_training_with_the_reward_named(plugin_manager, tmp_path):
    def broken_reward(completions, **kwargs):
        return [1 / 0 for _ in completions]

    tokenizer = tiny_tokenizer()
    trainer = GRPOTrainer(
        model=tiny_model(tokenizer),
        reward_funcs=[broken_reward],
        args=tiny_grpo_config(tmp_path),
        train_dataset=tiny_prompt_dataset(),
        processing_class=tokenizer,
        plugin_manager=plugin_manager,
    )
    with pytest.raises(RewardFunctionError, match="'broken_reward' raised ZeroDivisionError"):
        trainer.train()


def test_plugin_rewards_by_name_train_and_log_under_their_names(plugin_manager, tmp_path):
    tokenizer = tiny_tokenizer()
    trainer = GRPOTrainer(
        model=tiny_model(tokenizer),
        reward_funcs=["accuracy"],
        args=tiny_grpo_config(
            tmp_path,
            reward_plugins=["overlong_penalty"],
            reward_weights=[1.0, 0.5],
            reward_kwargs={"overlong_penalty": {"max_length": 8, "cache_length": 4}},
        ),
        train_dataset=tiny_prompt_dataset(),
        processing_class=tokenizer,
        plugin_manager=plugin_manager,
    )
    trainer.train()
    first_log = trainer.state.log_history[0]
    assert trainer.reward_func_names == ["accuracy", "overlong_penalty"]
    assert {"rewards/accuracy/mean", "rewards/overlong_penalty/mean"} <= first_log.keys()
    assert "accuracy [rewards]" in trainer.describe_plugins()
