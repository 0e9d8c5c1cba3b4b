"""`trl-grpo-plus grpo` is `trl grpo` with our trainer: same options and YAML keys, same training, plus ours."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from trl.scripts.grpo import make_parser as trl_make_parser

from trl_grpo_plus.scripts.grpo import make_parser
from trl_grpo_plus.testing import save_tiny_checkpoint

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = Path(__file__).parent / "scripts"
BIN = Path(sys.executable).parent
TIMING = re.compile(r"step_time|train_runtime|train_samples_per_second|train_steps_per_second")
REWARD_HEALTH = re.compile(r"rewards/.+/(failures|timeouts|seconds)")
EXTENSION_OPTIONS = {
    "--reward_plugins", "--reward_kwargs", "--reward_timeout", "--reward_on_error", "--reward_max_failure_share",
    "--reward_max_workers", "--reward_policies", "--advantage_estimator", "--advantage_kwargs",
    "--filter_zero_variance_groups", "--zero_variance_tolerance", "--dynamic_sampling", "--max_sampling_rounds",
    "--group_size_schedule", "--group_size_kwargs", "--group_size_budget", "--use_liger_loss", "--liger_chunk_size",
    "--liger_compile", "--audit_rewards", "--rollout_monitors", "--monitor_kwargs", "--monitor_alert_action",
}  # fmt: skip


def option_strings(parser) -> set[str]:
    options = (option for action in parser._actions for option in action.option_strings if option.startswith("--"))
    return {option.replace("-", "_").replace("__", "--", 1) for option in options}


def help_options(command: list[str]) -> set[str]:
    result = subprocess.run([*command, "--help"], capture_output=True, text=True, timeout=300, env=_env())
    assert result.returncode == 0, result.stderr[-2000:]
    # HfArgumentParser lists `--a_b` and its alias `--a-b`: one option
    return {
        option.replace("-", "_").replace("__", "--", 1)
        for option in re.findall(r"(?<![\w-])--[a-z][a-z0-9_-]*", result.stdout)
    }


def _env() -> dict:
    # the checkout under test first (not an installed copy), then the dotted-path reward module
    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": f"{ROOT}:{SCRIPTS}"}


def test_help_lists_every_option_of_trl_grpo_plus_ours():
    theirs = help_options([str(BIN / "trl"), "grpo"])
    ours = help_options([str(BIN / "trl-grpo-plus"), "grpo"])
    assert theirs and theirs <= ours
    assert ours - theirs == EXTENSION_OPTIONS


def test_the_parser_takes_trls_options_and_ours():
    assert option_strings(trl_make_parser()) <= option_strings(make_parser())
    assert option_strings(make_parser()) - option_strings(trl_make_parser()) == EXTENSION_OPTIONS


@pytest.fixture(scope="module")
def run_inputs(tmp_path_factory):
    """A tiny model folder and a local dataset folder, as a user would point `trl grpo` at them."""
    base = tmp_path_factory.mktemp("inputs")
    model = save_tiny_checkpoint(base / "model")
    data = base / "data"
    data.mkdir()
    # conversational, as TRL's think_format_reward reads completions
    rows = [
        {"prompt": [{"role": "user", "content": f"{a}+{b}="}], "solution": str(a + b)}
        for a in range(1, 7)
        for b in range(1, 5)
    ]
    (data / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return model, str(data)


def write_config(path: Path, model: str, data: str, **extra) -> Path:
    config = {
        "model_name_or_path": model,
        "dataset_name": data,
        "reward_funcs": ["think_format_reward", "cli_rewards.text_hash"],
        "output_dir": str(path.parent / "out"),
        "per_device_train_batch_size": 8,
        "num_generations": 4,
        "max_completion_length": 8,
        "max_steps": 3,
        "learning_rate": 0.01,
        "logging_steps": 1,
        "save_strategy": "steps",
        "save_steps": 3,
        "report_to": "none",
        "use_cpu": True,
        "bf16": False,
        "seed": 0,
        **extra,
    }
    path.write_text(yaml.safe_dump(config))
    return path


def launch(command: str, config: Path, *args: str) -> tuple[dict, list[dict]]:
    """Run `<command> grpo --config <config>` from the scripts folder (so the dotted reward imports); returns the
    final parameters and the log history."""
    result = subprocess.run(
        [str(BIN / command), "grpo", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=SCRIPTS,
        env=_env(),
    )
    assert result.returncode == 0, result.stderr[-4000:]
    output = config.parent / "out"
    history = json.loads((output / "checkpoint-3" / "trainer_state.json").read_text())["log_history"]
    return load_file(output / "model.safetensors"), history


@pytest.mark.skipif(shutil.which("trl", path=str(BIN)) is None, reason="TRL's `trl` command is not installed")
def test_one_yaml_trains_the_same_through_trl_grpo_and_ours(tmp_path, run_inputs):
    model, data = run_inputs
    (tmp_path / "trl").mkdir()
    (tmp_path / "ours").mkdir()
    trl_parameters, trl_history = launch("trl", write_config(tmp_path / "trl" / "run.yaml", model, data))
    our_parameters, our_history = launch("trl-grpo-plus", write_config(tmp_path / "ours" / "run.yaml", model, data))
    assert len(trl_history) == len(our_history) == 3  # one log per step (the checkpoint precedes the summary)
    for trl_log, our_log in zip(trl_history, our_history, strict=True):
        our_log = {key: value for key, value in our_log.items() if not REWARD_HEALTH.fullmatch(key)}
        assert trl_log.keys() == our_log.keys()
        for key in trl_log.keys():
            if not TIMING.fullmatch(key):
                assert our_log[key] == pytest.approx(trl_log[key], abs=1e-6), key
    assert trl_parameters.keys() == our_parameters.keys()
    for name, value in trl_parameters.items():
        torch.testing.assert_close(our_parameters[name], value, atol=1e-6, rtol=0, msg=name)
    assert any(
        not torch.equal(value, load_file(Path(model) / "model.safetensors")[name])
        for name, value in trl_parameters.items()
    )


def test_the_same_yaml_takes_our_options_and_plugin_rewards(tmp_path, run_inputs):
    model, data = run_inputs
    config = write_config(
        tmp_path / "run.yaml",
        model,
        data,
        advantage_estimator="rloo",
        filter_zero_variance_groups=True,
        reward_plugins=["format"],  # a plugin reward, after TRL's
        reward_kwargs={"format": {"reasoning_tag": ""}},
    )
    _, history = launch("trl-grpo-plus", config)
    first = history[0]
    assert {"rewards/think_format_reward/mean", "rewards/text_hash/mean", "rewards/format/mean"} <= first.keys()
    assert "filter/frac_groups_dropped" in first


def test_two_processes_launch_through_accelerate_config(tmp_path, run_inputs):
    model, data = run_inputs
    config = write_config(tmp_path / "run.yaml", model, data, per_device_train_batch_size=4)
    cpu_config = str(ROOT / "recipes" / "accelerate" / "cpu.yaml")
    _, history = launch("trl-grpo-plus", config, "--accelerate_config", cpu_config, "--num_processes", "2")
    assert len(history) == 3 and all("loss" in log for log in history)


def test_a_bad_option_fails_before_anything_is_launched(tmp_path, run_inputs):
    model, data = run_inputs
    config = write_config(tmp_path / "run.yaml", model, data, advantage_estimator="")
    result = subprocess.run(
        [str(BIN / "trl-grpo-plus"), "grpo", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=300,
        env=_env(),
    )
    assert result.returncode != 0
    assert "advantage_estimator must be an estimator name" in result.stderr
    assert not (tmp_path / "out").exists()  # refused by the launcher's parser: no training process ever started
