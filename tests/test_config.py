"""GRPOConfig: every TRL field, plus the extension options with their validation."""

import dataclasses

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
    assert extension == {"reward_plugins", "reward_kwargs"}
    for field in dataclasses.fields(GRPOConfig):
        if field.name in extension:
            assert len(field.metadata["help"]) > 40, field.name


def test_reward_kwargs_is_parsed_from_json_on_the_command_line(tmp_path):
    config = GRPOConfig(str(tmp_path), reward_kwargs='{"format": {"answer_tag": "a"}}', **CPU)
    assert config.reward_kwargs == {"format": {"answer_tag": "a"}}


def test_reward_kwargs_must_map_names_to_option_dicts(tmp_path):
    with pytest.raises(ValueError, match="reward_kwargs must map each reward name to a dict of its options"):
        GRPOConfig(str(tmp_path), reward_kwargs={"format": "answer"}, **CPU)


def test_reward_plugins_must_be_names(tmp_path):
    with pytest.raises(ValueError, match="reward_plugins must be a list of reward names"):
        GRPOConfig(str(tmp_path), reward_plugins=["accuracy", 3], **CPU)


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
