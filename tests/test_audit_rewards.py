"""Audit rewards: scored and logged on every batch, never trained on; checked at the loss's inputs.

The trained reward hashes each completion's text (`train_recorded.text_hash`), the audit reward another hash of it,
so an audit reward that leaked into the advantages would change the advantage of almost every trained row."""

import hashlib
import math
import sys
from pathlib import Path

import pytest
import torch
from invariants import check_trained_on_scored

from trl_grpo_plus import GRPOConfig, GRPOTrainer, PluginError, hookimpl
from trl_grpo_plus.audit_rewards import AuditRewards
from trl_grpo_plus.testing import TrainingRecorder, tiny_grpo_settings, tiny_model, tiny_tokenizer

sys.path.insert(0, str(Path(__file__).parent / "scripts"))
from train_recorded import prompt_dataset, text_hash


def second_opinion(completions, **kwargs):
    return [int(hashlib.md5(c.encode()).hexdigest()[:6], 16) / 16**6 for c in completions]


class AuditPlugin:
    @hookimpl
    def register_reward_functions(self, register):
        register(second_opinion)


def train(tmp_path, plugin_manager, register_plugin, trained_reward=text_hash, **fields):
    register_plugin(AuditPlugin(), name="audit_plugin")
    tokenizer = tiny_tokenizer()
    recorder = TrainingRecorder(tokenizer)
    settings = tiny_grpo_settings(tmp_path, per_device_train_batch_size=12, max_steps=3, learning_rate=5e-2)
    trainer = GRPOTrainer(
        model=tiny_model(tokenizer),
        reward_funcs=[recorder.reward(trained_reward)],
        args=GRPOConfig(**{**settings, **fields}),
        train_dataset=prompt_dataset(60),
        processing_class=tokenizer,
        plugin_manager=plugin_manager,
    )
    recorder.attach(trainer)
    trainer.train()
    return trainer, recorder


@pytest.mark.parametrize(
    ("fields", "estimator"),
    [
        ({}, "grpo"),
        ({"advantage_estimator": "reinforce_pp"}, "reinforce_pp"),
        ({"filter_zero_variance_groups": True}, "grpo"),
    ],
    ids=["grpo", "batch-level-estimator", "filtering"],
)
def test_an_audit_reward_does_not_move_the_advantages_the_loss_receives(
    tmp_path, plugin_manager, register_plugin, fields, estimator
):
    trainer, recorder = train(tmp_path, plugin_manager, register_plugin, audit_rewards=["second_opinion"], **fields)
    filtered = fields.get("filter_zero_variance_groups", False)
    # the advantages are the estimator's over the trained reward alone
    assert check_trained_on_scored([{"generations": recorder.generations}], estimator, filtered=filtered) > 0
    assert trainer.reward_func_names == ["text_hash", "second_opinion"]
    assert trainer.reward_weights.tolist() == [1.0, 0.0]


def test_an_audit_reward_is_scored_and_logged_on_every_batch(tmp_path, plugin_manager, register_plugin):
    trainer, _ = train(tmp_path, plugin_manager, register_plugin, audit_rewards=["second_opinion"], logging_steps=1)
    logged = [log["rewards/second_opinion/mean"] for log in trainer.state.log_history if "reward" in log]
    assert len(logged) == 3 and all(0 < value < 1 for value in logged)


def scored_half(completions, **kwargs):
    """Scores only the completions of even length; the others are unscorable (None)."""
    return [float(len(c) % 5) if len(c) % 2 == 0 else None for c in completions]


def test_an_audit_reward_cannot_make_an_unscorable_completion_train(tmp_path, plugin_manager, register_plugin):
    _, recorder = train(
        tmp_path, plugin_manager, register_plugin, trained_reward=scored_half, audit_rewards=["second_opinion"]
    )
    scored = {
        (row["prompt"], tuple(row["completion_ids"])): row["reward"]
        for generation in recorder.generations
        for rows in generation["rounds"]
        for row in rows
    }
    trained = [row for generation in recorder.generations for loss in generation["losses"] for row in loss]
    unscorable = [row for row in trained if math.isnan(scored[row["prompt"], tuple(row["completion_ids"])])]
    assert unscorable, "no completion was unscorable"
    assert all(row["advantage"] == 0.0 for row in unscorable)


def agreed_or_unscorable(completions, **kwargs):
    """1.0 for the completions of even length, unscorable (None) for the others: no group has signal."""
    return [1.0 if len(c) % 2 == 0 else None for c in completions]


def test_with_filtering_an_audit_reward_cannot_give_a_group_signal(tmp_path, plugin_manager, register_plugin):
    # Scored alone, an unscorable completion would count as 0 beside the 1.0s and make its group look informative
    trainer, recorder = train(
        tmp_path,
        plugin_manager,
        register_plugin,
        trained_reward=agreed_or_unscorable,
        audit_rewards=["second_opinion"],
        filter_zero_variance_groups=True,
    )
    dropped = [
        log["filter/frac_groups_dropped"] for log in trainer.state.log_history if "filter/frac_groups_dropped" in log
    ]
    assert dropped == [1.0, 1.0, 1.0]
    assert not [row for generation in recorder.generations for loss in generation["losses"] for row in loss]


def test_the_trained_view_leaves_out_the_audit_columns():
    audit = AuditRewards(["judge"], [1], ["accuracy", "format"])
    rewards, weights = audit.trained(torch.tensor([[1.0, 5.0, 2.0]]), torch.tensor([1.0, 0.0, 0.5]))
    assert rewards.tolist() == [[1.0, 2.0]] and weights.tolist() == [1.0, 0.5]
    nothing = AuditRewards()
    same = torch.ones(2, 2)
    assert nothing.trained(same, torch.ones(2))[0] is same  # without audit rewards: TRL's tensors, untouched


def build(tmp_path, plugin_manager, register_plugin, reward_funcs=None, **fields):
    register_plugin(AuditPlugin(), name="audit_plugin")
    tokenizer = tiny_tokenizer()
    return GRPOTrainer(
        model=tiny_model(tokenizer),
        reward_funcs=reward_funcs if reward_funcs is not None else [text_hash],
        args=GRPOConfig(**tiny_grpo_settings(tmp_path), **fields),
        train_dataset=prompt_dataset(8),
        processing_class=tokenizer,
        plugin_manager=plugin_manager,
    )


def test_reward_weights_list_the_trained_rewards_and_the_user_s_config_is_left_as_written(
    tmp_path, plugin_manager, register_plugin
):
    args = GRPOConfig(**tiny_grpo_settings(tmp_path), reward_weights=[2.0], audit_rewards=["second_opinion"])
    register_plugin(AuditPlugin(), name="audit_plugin")
    tokenizer = tiny_tokenizer()
    trainer = GRPOTrainer(
        model=tiny_model(tokenizer), reward_funcs=[text_hash], args=args, train_dataset=prompt_dataset(8),
        processing_class=tokenizer, plugin_manager=plugin_manager,
    )  # fmt: skip
    assert trainer.reward_weights.tolist() == [2.0, 0.0] and args.reward_weights == [2.0]


@pytest.mark.parametrize(
    ("reward_funcs", "fields", "message"),
    [
        ([second_opinion], {"audit_rewards": ["second_opinion"]}, "'second_opinion' is both trained .* audit_rew"),
        ([], {"audit_rewards": ["second_opinion"]}, "Every reward is an audit reward"),
        ([text_hash], {"audit_rewards": ["second_opinion"], "reward_weights": [1.0, 0.0]}, "audit rewards .* take no"),
        ([text_hash], {"audit_rewards": ["secnd_opinion"]}, "Unknown reward function 'secnd_opinion'"),
    ],
    ids=["trained-and-audited", "only-audit", "weights-for-audit", "unknown-name"],
)
def test_bad_audit_settings_are_refused_before_training(
    tmp_path, plugin_manager, register_plugin, reward_funcs, fields, message
):
    with pytest.raises(PluginError, match=message):
        build(tmp_path, plugin_manager, register_plugin, reward_funcs, **fields)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"audit_rewards": ["a", "a"]}, "more than once"),
        ({"audit_rewards": ["accuracy"], "reward_plugins": ["accuracy"]}, "both trained"),
        ({"audit_rewards": [3]}, "list of reward names"),
    ],
)
def test_bad_audit_rewards_are_refused_by_the_config(tmp_path, fields, message):
    with pytest.raises(ValueError, match=message):
        GRPOConfig(**tiny_grpo_settings(tmp_path), **fields)


def test_audit_rewards_reads_comma_separated_names(tmp_path):
    assert GRPOConfig(**tiny_grpo_settings(tmp_path), audit_rewards="a, b").audit_rewards == ["a", "b"]
