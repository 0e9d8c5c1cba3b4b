"""The drop-in promise: with no extension option set, our trainer trains exactly like TRL's."""

import json
import re
import sys
from pathlib import Path

import launching
import pytest
import torch
import trl

import trl_grpo_plus

sys.path.insert(0, str(Path(__file__).parent / "scripts"))
from train_parity import text_hash, train  # noqa: E402  (the script the 2-process test launches, run in-process)

TIMING_KEYS = ("step_time", "train_runtime", "train_samples_per_second", "train_steps_per_second")
# Ours logs each reward function's health beside TRL's metrics; every value TRL logs is logged the same.
REWARD_HEALTH = re.compile(r"rewards/.+/(failures|timeouts|seconds)")


def without_reward_health(log: dict) -> dict:
    return {key: value for key, value in log.items() if not REWARD_HEALTH.fullmatch(key)}


def assert_same_training(reference, ours):
    assert len(reference.state.log_history) == len(ours.state.log_history)
    for ref_log, our_log in zip(reference.state.log_history, ours.state.log_history):
        our_log = without_reward_health(our_log)
        assert ref_log.keys() == our_log.keys()
        for key in ref_log.keys() - set(TIMING_KEYS):
            assert our_log[key] == pytest.approx(ref_log[key], abs=1e-6, rel=0), key
    for (name, ref_param), our_param in zip(reference.model.named_parameters(), ours.model.parameters()):
        torch.testing.assert_close(our_param, ref_param, atol=1e-6, rtol=0, msg=name)


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({}, id="defaults"),
        pytest.param(
            {"beta": 0.1, "num_iterations": 2, "gradient_accumulation_steps": 2}, id="kl-iterations-accumulation"
        ),
        # TRL's advantage settings keep their meaning (each maps onto an estimator plugin).
        pytest.param({"scale_rewards": "batch"}, id="scale-rewards-batch"),
        pytest.param({"scale_rewards": "none"}, id="scale-rewards-none"),
        pytest.param({"multi_objective_aggregation": "normalize_then_sum"}, id="normalize-then-sum"),
    ],
)
def test_defaults_train_identically_to_trl(tmp_path, overrides):
    reference = train(trl.GRPOTrainer, trl.GRPOConfig, tmp_path / "trl", **overrides)
    ours = train(trl_grpo_plus.GRPOTrainer, trl_grpo_plus.GRPOConfig, tmp_path / "ours", **overrides)
    assert reference.state.global_step == ours.state.global_step == 5
    # The run must have learned something, or the comparison would be vacuous.
    assert any(log.get("grad_norm", 0) > 0 for log in reference.state.log_history)
    assert_same_training(reference, ours)


@pytest.mark.parametrize(
    ("trl_settings", "estimator"),
    [({"scale_rewards": "batch"}, "batch_std"), ({"multi_objective_aggregation": "normalize_then_sum"}, "gdpo")],
)
def test_naming_the_estimator_trains_like_trls_setting(tmp_path, trl_settings, estimator):
    reference = train(trl.GRPOTrainer, trl.GRPOConfig, tmp_path / "trl", max_steps=3, **trl_settings)
    ours = train(
        trl_grpo_plus.GRPOTrainer,
        trl_grpo_plus.GRPOConfig,
        tmp_path / "ours",
        max_steps=3,
        advantage_estimator=estimator,
    )
    assert_same_training(reference, ours)


def test_a_trl_config_is_accepted_unchanged(tmp_path):
    reference = train(trl.GRPOTrainer, trl.GRPOConfig, tmp_path / "trl", max_steps=2)
    ours = train(trl_grpo_plus.GRPOTrainer, trl.GRPOConfig, tmp_path / "ours", max_steps=2)
    assert_same_training(reference, ours)


def test_logged_reward_names_are_trls(tmp_path):
    ours = train(trl_grpo_plus.GRPOTrainer, trl_grpo_plus.GRPOConfig, tmp_path, max_steps=1)
    assert {"rewards/digit_share/mean", "rewards/length_bonus/mean"} <= ours.state.log_history[0].keys()


def test_public_classes_subclass_trls():
    assert issubclass(trl_grpo_plus.GRPOTrainer, trl.GRPOTrainer)
    assert issubclass(trl_grpo_plus.GRPOConfig, trl.GRPOConfig)


def test_naming_the_constant_schedule_trains_like_trl(tmp_path):
    reference = train(trl.GRPOTrainer, trl.GRPOConfig, tmp_path / "trl", max_steps=3)
    ours = train(
        trl_grpo_plus.GRPOTrainer,
        trl_grpo_plus.GRPOConfig,
        tmp_path / "ours",
        max_steps=3,
        group_size_schedule="constant",
        group_size_kwargs={"size": 4},  # = num_generations
    )
    assert_same_training(reference, ours)


def test_scale_rewards_settings_train_differently(tmp_path):
    # Guards the parity tests above: with one group per batch, group and batch scaling would be the same run.
    group = train(trl.GRPOTrainer, trl.GRPOConfig, tmp_path / "group", max_steps=2)
    batch = train(trl.GRPOTrainer, trl.GRPOConfig, tmp_path / "batch", max_steps=2, scale_rewards="batch")
    assert group.state.log_history[1]["loss"] != pytest.approx(batch.state.log_history[1]["loss"], abs=1e-6)


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param({}, id="defaults"),
        pytest.param({"scale_rewards": "batch", "gradient_accumulation_steps": 2, "num_iterations": 2}, id="batch"),
    ],
)
def test_two_processes_train_identically_to_trls_two_processes(tmp_path, settings):
    settings = {"per_device_train_batch_size": 6, "max_steps": 4, **settings}  # 12 completions a batch: 3 groups
    runs = {}
    for name in ("trl", "ours"):
        folder = tmp_path / name
        _, records = launching.run_script(
            "train_parity.py", folder, "--trainer", name, "--settings", json.dumps(settings), processes=2
        )
        runs[name] = (records, torch.load(folder / "parameters.pt"))
    (trl_records, trl_parameters), (our_records, our_parameters) = runs["trl"], runs["ours"]
    for trl_record, our_record in zip(trl_records, our_records, strict=True):
        assert len(trl_record["log_history"]) == len(our_record["log_history"]) > 0
        for trl_log, our_log in zip(trl_record["log_history"], our_record["log_history"], strict=True):
            our_log = without_reward_health(our_log)
            assert trl_log.keys() == our_log.keys()
            for key in trl_log.keys() - set(TIMING_KEYS):
                assert our_log[key] == pytest.approx(trl_log[key], abs=1e-6, rel=0), key
    assert trl_parameters.keys() == our_parameters.keys()
    for name, parameter in trl_parameters.items():
        torch.testing.assert_close(our_parameters[name], parameter, atol=1e-6, rtol=0, msg=name)
    assert any(log.get("grad_norm", 0) > 0 for log in trl_records[0]["log_history"])


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param({}, id="defaults"),
        pytest.param(
            {"per_device_train_batch_size": 4, "gradient_accumulation_steps": 3, "num_iterations": 2, "beta": 0.1},
            id="accumulation-iterations-kl",
        ),
        pytest.param(
            {"per_device_train_batch_size": 4, "steps_per_generation": 3, "loss_type": "grpo"}, id="grpo-loss"
        ),
    ],
)
def test_filtering_that_drops_nothing_trains_identically_to_trl(tmp_path, settings):
    # The replay path (scoring kept rows again, shuffling and splitting them into micro-batches, the loss
    # normalizer, old and reference log-probs) must then be TRL's own, exactly.
    settings = {"reward_funcs": [text_hash], "reward_weights": None, "max_steps": 6, **settings}
    reference = train(trl.GRPOTrainer, trl.GRPOConfig, tmp_path / "trl", **settings)
    ours = train(
        trl_grpo_plus.GRPOTrainer,
        trl_grpo_plus.GRPOConfig,
        tmp_path / "ours",
        filter_zero_variance_groups=True,
        **settings,
    )
    dropped = [log["filter/frac_groups_dropped"] for log in ours.state.log_history if "filter/kept_sequences" in log]
    assert dropped and not any(dropped), "a group was dropped, so the runs may rightly differ"
    for log in ours.state.log_history:
        for key in [key for key in log if key.startswith("filter/")]:
            del log[key]
    assert_same_training(reference, ours)


def test_a_plain_trl_config_trains_our_trainer_exactly_like_trl(tmp_path):
    reference = train(trl.GRPOTrainer, trl.GRPOConfig, tmp_path / "trl")
    ours = train(trl_grpo_plus.GRPOTrainer, trl.GRPOConfig, tmp_path / "ours")
    assert isinstance(ours.args, trl_grpo_plus.GRPOConfig)
    assert_same_training(reference, ours)
