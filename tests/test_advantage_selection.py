"""Choosing the advantage estimator by name, its options, TRL's settings, and the errors for bad choices."""

import pytest
import torch
from readme_examples import readme_plugin

from trl_grpo_plus import GRPOConfig, GRPOTrainer, PluginError, UnknownComponentError, get_registry, hookimpl
from trl_grpo_plus.advantage_estimation import AdvantageEstimator
from trl_grpo_plus.default_plugins import advantages as builtin
from trl_grpo_plus.testing import tiny_grpo_config, tiny_grpo_settings, tiny_model, tiny_prompt_dataset, tiny_tokenizer

BUILTINS = ["grpo", "dr_grpo", "batch_std", "rloo", "reinforce_pp", "gdpo", "rank"]


def digit_share(completions, **kwargs):
    return [sum(ch.isdigit() for ch in c) / max(len(c), 1) for c in completions]


def length(completions, **kwargs):
    return [len(c) / 8 if len(c) % 3 else None for c in completions]  # None: some rows unscored by this reward


def make_trainer(tmp_path, plugin_manager=None, model=None, **overrides):
    tokenizer = tiny_tokenizer()
    return GRPOTrainer(
        model=model if model is not None else tiny_model(tokenizer),
        reward_funcs=[digit_share, length],
        args=tiny_grpo_config(tmp_path, **overrides),
        train_dataset=tiny_prompt_dataset(16),
        processing_class=tokenizer,
        plugin_manager=plugin_manager,
    )


def logged_rewards_and_advantages(trainer):
    logs = trainer._logs
    rewards = torch.tensor([logs["rewards"][name] for name in trainer.reward_func_names], dtype=torch.float32).T
    return rewards, torch.tensor(list(logs["advantages"]))


@pytest.mark.parametrize("name", BUILTINS)
def test_each_builtin_estimator_trains_and_sets_the_advantages(tmp_path, name, plugin_manager):
    trainer = make_trainer(tmp_path, plugin_manager, advantage_estimator=name, max_steps=1)
    trainer.train()
    rewards, advantages = logged_rewards_and_advantages(trainer)
    expected = getattr(builtin, name)(rewards, trainer.reward_weights, torch.arange(len(rewards)) // 4)
    torch.testing.assert_close(advantages, expected, atol=1e-5, rtol=0)
    assert advantages.abs().sum() > 0
    assert trainer.args.to_dict()["advantage/estimator"] == name


def test_a_plugin_estimator_is_used_by_name_with_its_options(tmp_path, plugin_manager, register_plugin):
    calls = []

    class SignPlugin:
        @hookimpl
        def register_advantage_estimators(self, register):
            def sign(rewards_per_func, reward_weights, group_ids, *, scale=1.0):
                calls.append(group_ids.tolist())
                return scale * torch.sign(builtin.dr_grpo(rewards_per_func, reward_weights, group_ids))

            register(sign)

    register_plugin(SignPlugin())
    trainer = make_trainer(tmp_path, plugin_manager, advantage_estimator="sign", advantage_kwargs={"scale": 0.5})
    trainer.train()
    _, advantages = logged_rewards_and_advantages(trainer)
    assert set(advantages.tolist()) <= {-0.5, 0.0, 0.5}
    assert calls[-1] == [0, 0, 0, 0] and calls[0] != calls[-1]  # the start-up check, then one group of 4 per batch
    assert "advantage estimator: sign {'scale': 0.5} [SignPlugin]" in trainer.describe_plugins()


@pytest.mark.parametrize(
    ("trl_settings", "name"),
    [
        ({"scale_rewards": "group"}, "grpo"),
        ({"scale_rewards": True}, "grpo"),
        ({"scale_rewards": "none"}, "dr_grpo"),
        ({"scale_rewards": False}, "dr_grpo"),
        ({"scale_rewards": "batch"}, "batch_std"),
        ({"multi_objective_aggregation": "normalize_then_sum"}, "gdpo"),
    ],
)
def test_trls_settings_select_the_equivalent_estimator(tmp_path, trl_settings, name):
    config = GRPOConfig(**tiny_grpo_settings(tmp_path, **trl_settings))
    assert config.resolved_advantage_estimator == name
    # Restating the same choice is fine; contradicting it is not.
    GRPOConfig(**tiny_grpo_settings(tmp_path, advantage_estimator=name, **trl_settings))


def test_an_estimator_contradicting_trls_settings_is_refused(tmp_path):
    with pytest.raises(ValueError, match="advantage_estimator='rloo' contradicts TRL's .* scale_rewards='batch'"):
        GRPOConfig(**tiny_grpo_settings(tmp_path, advantage_estimator="rloo", scale_rewards="batch"))


def test_an_unknown_estimator_lists_the_available_ones_before_loading_the_model(tmp_path):
    with pytest.raises(UnknownComponentError, match="Unknown advantage estimator 'rlo'. Did you mean 'rloo'?.*grpo"):
        make_trainer(tmp_path, model="no-such-model-is-loaded", advantage_estimator="rlo")


def test_bad_estimator_options_are_refused(tmp_path):
    with pytest.raises(PluginError, match="Bad options for advantage estimator 'grpo'.*ddof must be 0 .* or 1"):
        make_trainer(tmp_path, model="unloaded", advantage_estimator="grpo", advantage_kwargs={"ddof": 2})
    with pytest.raises(PluginError, match="'rank' .* has no option 'eps'. Its options are: \\(none\\)"):
        make_trainer(tmp_path, model="unloaded", advantage_estimator="rank", advantage_kwargs={"eps": 1e-3})


def test_advantage_kwargs_must_be_a_dict(tmp_path):
    with pytest.raises(ValueError, match="advantage_kwargs must be a dict of the estimator's options"):
        GRPOConfig(**tiny_grpo_settings(tmp_path, advantage_kwargs="ddof=0"))


@hookimpl
def register_advantage_estimators(register):
    register(lambda rewards_per_func, reward_weights, group_ids: torch.zeros(3), name="wrong_shape")
    register(
        lambda rewards_per_func, reward_weights, group_ids: torch.full_like(group_ids, torch.nan, dtype=torch.float32),
        name="nan",
    )
    register(lambda rewards_per_func, reward_weights, group_ids: 1 / 0, name="raises")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("wrong_shape", "returned \\(3,\\) for 7 completions; it must return a tensor of shape \\(7,\\)"),
        ("nan", "returned NaN or infinite advantages"),
        ("raises", "raised ZeroDivisionError"),
    ],
)
def test_a_broken_estimator_fails_at_start_up_naming_itself_and_its_plugin(
    tmp_path, plugin_manager, register_plugin, name, message
):
    register_plugin(__import__(__name__, fromlist=["_"]), name="broken_estimators")
    with pytest.raises(
        PluginError, match=f"Advantage estimator '{name}' \\(from plugin 'broken_estimators'\\) {message}"
    ):
        make_trainer(tmp_path, plugin_manager, model="unloaded", advantage_estimator=name)


def test_the_estimator_output_is_checked_on_every_call(plugin_manager):
    estimator = AdvantageEstimator.resolve("grpo", get_registry(plugin_manager).advantage_estimators)
    estimator.func = lambda rewards_per_func, reward_weights, group_ids: torch.zeros(len(group_ids) + 1)
    with pytest.raises(PluginError, match="returned \\(5,\\) for 4 completions"):
        estimator(torch.zeros(4, 1), torch.ones(1), torch.zeros(4, dtype=torch.long))


def test_the_readme_estimator_example_trains(tmp_path, plugin_manager, register_plugin):
    register_plugin(readme_plugin("median_baseline", "readme_estimator"))
    trainer = make_trainer(
        tmp_path, plugin_manager, advantage_estimator="median_baseline", advantage_kwargs={"scale": 0.5}
    )
    trainer.train()
    assert trainer.advantage_estimator.plugin == "readme_estimator"


def test_evaluation_uses_the_estimator_and_is_never_filtered(tmp_path, plugin_manager):
    tokenizer = tiny_tokenizer()
    trainer = GRPOTrainer(
        model=tiny_model(tokenizer),
        reward_funcs=[digit_share, length],
        args=tiny_grpo_config(
            tmp_path,
            max_steps=1,
            eval_strategy="steps",
            eval_steps=1,
            per_device_eval_batch_size=4,
            advantage_estimator="rank",
            filter_zero_variance_groups=True,
        ),
        train_dataset=tiny_prompt_dataset(8),
        eval_dataset=tiny_prompt_dataset(4),
        processing_class=tokenizer,
        plugin_manager=plugin_manager,
    )
    trainer.train()
    [evaluation] = [log for log in trainer.state.log_history if "eval_loss" in log]
    assert "eval_filter/kept_sequences" not in evaluation
    rewards, advantages = logged_rewards_and_advantages(trainer)  # the evaluation batch was logged last
    expected = builtin.rank(rewards[-4:], trainer.reward_weights, torch.zeros(4, dtype=torch.long))
    torch.testing.assert_close(advantages[-4:], expected)
