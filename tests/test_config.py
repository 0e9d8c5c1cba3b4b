"""GRPOConfig: every TRL field, plus the extension options with their validation."""

import dataclasses
from pathlib import Path

import pytest
import trl

from trl_grpo_plus import GRPOConfig

CPU = dict(use_cpu=True, bf16=False, report_to="none")


def test_every_trl_field_is_kept_with_its_default(tmp_path):
    ours, theirs = GRPOConfig(str(tmp_path), **CPU), trl.GRPOConfig(str(tmp_path), **CPU)
    for field in dataclasses.fields(trl.GRPOConfig):
        assert getattr(ours, field.name) == getattr(theirs, field.name), field.name


def test_every_extension_field_has_help_text():
    extension = {f.name for f in dataclasses.fields(GRPOConfig)} - {f.name for f in dataclasses.fields(trl.GRPOConfig)}
    assert extension == {
        "reward_plugins",
        "reward_kwargs",
        "reward_timeout",
        "reward_on_error",
        "reward_max_failure_share",
        "reward_max_workers",
        "reward_policies",
        "advantage_estimator",
        "advantage_kwargs",
        "filter_zero_variance_groups",
        "zero_variance_tolerance",
        "dynamic_sampling",
        "max_sampling_rounds",
        "group_size_schedule",
        "group_size_kwargs",
        "group_size_budget",
        "use_liger_loss",
        "liger_chunk_size",
        "liger_compile",
        "audit_rewards",
        "rollout_monitors",
        "monitor_kwargs",
        "monitor_alert_action",
    }
    for field in dataclasses.fields(GRPOConfig):
        if field.name in extension:
            assert len(field.metadata["help"]) > 40, field.name


def test_group_size_kwargs_is_parsed_from_json_on_the_command_line(tmp_path):
    config = GRPOConfig(str(tmp_path), group_size_kwargs='{"start": 4, "end": 8, "steps": 10}', **CPU)
    assert config.group_size_kwargs == {"start": 4, "end": 8, "steps": 10}


def test_the_run_config_names_the_group_size_schedule(tmp_path):
    assert GRPOConfig(str(tmp_path), **CPU).to_dict()["group_size/schedule"] == "constant"


def test_reward_kwargs_is_parsed_from_json_on_the_command_line(tmp_path):
    config = GRPOConfig(str(tmp_path), reward_kwargs='{"format": {"answer_tag": "a"}}', **CPU)
    assert config.reward_kwargs == {"format": {"answer_tag": "a"}}


def test_reward_kwargs_must_map_names_to_option_dicts(tmp_path):
    with pytest.raises(ValueError, match="reward_kwargs must map each reward name to a dict of its options"):
        GRPOConfig(str(tmp_path), reward_kwargs={"format": "answer"}, **CPU)


def test_reward_plugins_must_be_names(tmp_path):
    with pytest.raises(ValueError, match="reward_plugins must be a list of reward names"):
        GRPOConfig(str(tmp_path), reward_plugins=["accuracy", 3], **CPU)


@pytest.mark.parametrize(
    "given", [["accuracy,format", "overlong_penalty"], "accuracy, format,overlong_penalty"], ids=["list", "string"]
)
def test_reward_plugins_may_be_comma_separated(tmp_path, given):
    config = GRPOConfig(str(tmp_path), reward_plugins=given, **CPU)
    assert config.reward_plugins == ["accuracy", "format", "overlong_penalty"]


def test_command_line_flags_set_the_extension_options(tmp_path):
    from trl import TrlParser

    (config,) = TrlParser((GRPOConfig,)).parse_args_and_config(
        [
            "--output_dir",
            str(tmp_path),
            "--use_cpu",
            "--bf16",
            "false",
            "--reward_plugins",
            "accuracy",
            "format",
            "--reward_kwargs",
            '{"format": {"reasoning_tag": ""}}',
        ]
    )
    assert config.reward_plugins == ["accuracy", "format"]
    assert config.reward_kwargs == {"format": {"reasoning_tag": ""}}


def test_every_extension_field_is_documented_in_the_class_docstring_and_the_readme():
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    extension = {f.name for f in dataclasses.fields(GRPOConfig)} - {f.name for f in dataclasses.fields(trl.GRPOConfig)}
    for name in extension:
        assert f"    {name} (" in GRPOConfig.__doc__, name
        assert f"`{name}" in readme, name


def test_the_run_config_names_the_advantage_estimator_in_effect(tmp_path):
    assert GRPOConfig(str(tmp_path), **CPU).to_dict()["advantage/estimator"] == "grpo"
    assert GRPOConfig(str(tmp_path), scale_rewards="none", **CPU).to_dict()["advantage/estimator"] == "dr_grpo"


def test_a_generation_batch_that_does_not_split_into_groups_names_the_settings_and_a_fix(tmp_path):
    with pytest.raises(ValueError) as error:
        GRPOConfig(str(tmp_path), per_device_train_batch_size=6, num_generations=4, use_cpu=True, bf16=False)
    message = str(error.value)
    assert "holds 6 completions" in message and "num_generations=4" in message
    assert "per_device_train_batch_size=8" in message


def test_a_trl_config_becomes_ours_with_every_value_kept_and_the_extensions_off(tmp_path):
    theirs = trl.GRPOConfig(str(tmp_path), num_generations=4, beta=0.1, **CPU)
    ours = GRPOConfig.from_trl(theirs)
    assert isinstance(ours, GRPOConfig)
    for field in dataclasses.fields(trl.GRPOConfig):
        assert getattr(ours, field.name) == getattr(theirs, field.name), field.name
    assert (ours.advantage_estimator, ours.filter_zero_variance_groups, ours.use_liger_loss) == (None, False, False)
    assert ours.resolved_advantage_estimator == "grpo"


@dataclasses.dataclass
class TeamConfig(trl.GRPOConfig):
    team: str = "post-training"

    @property
    def tag(self) -> str:
        return f"{self.team}/{self.loss_type}"


def test_a_users_subclass_of_trls_config_keeps_its_fields_and_methods(tmp_path):
    ours = GRPOConfig.from_trl(TeamConfig(str(tmp_path), team="rl", **CPU))
    assert isinstance(ours, TeamConfig) and isinstance(ours, GRPOConfig)
    assert ours.tag == "rl/dapo" and ours.to_dict()["team"] == "rl"
    assert ours.group_size_schedule == "constant"


def test_command_line_flags_set_the_monitor_options(tmp_path):
    from trl import TrlParser

    (config,) = TrlParser((GRPOConfig,)).parse_args_and_config(
        ["--output_dir", str(tmp_path), "--use_cpu", "--bf16", "false", "--reward_plugins", "accuracy",
         "--audit_rewards", "format", "--rollout_monitors", "length_drift,diversity", "--monitor_kwargs",
         '{"length_drift": {"factor": 2.0}}', "--monitor_alert_action", "stop"]
    )  # fmt: skip
    assert config.audit_rewards == ["format"]
    assert config.rollout_monitors == ["length_drift", "diversity"]
    assert config.monitor_kwargs == {"length_drift": {"factor": 2.0}}
    assert config.monitor_alert_action == "stop"
