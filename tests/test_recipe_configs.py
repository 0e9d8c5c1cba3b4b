"""Every recipe YAML parses into the recipe's options, and every launcher config into accelerate's."""

from pathlib import Path

import pytest
import yaml

from trl_grpo_plus import GRPOConfig
from trl_grpo_plus.gsm8k import GSM8KScriptArguments

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


def script_arguments(config: Path):
    """The recipe's own options class: configs are named after their recipe (gsm8k*.yaml, code.yaml)."""
    if config.name.startswith("code"):
        return pytest.importorskip("trl_grpo_plus_code.tasks").CodeScriptArguments
    return GSM8KScriptArguments


@pytest.mark.parametrize("config", sorted((RECIPES / "configs").glob("*.yaml")), ids=lambda path: path.name)
def test_recipe_configs_parse_with_no_unknown_keys(config, tmp_path):
    from trl import ModelConfig, TrlParser

    parser = TrlParser((script_arguments(config), GRPOConfig, ModelConfig))
    # GPU configs ask for bf16; this machine has none, so the check runs them as CPU configs.
    arguments = ["--config", str(config), "--output_dir", str(tmp_path), "--use_cpu", "true", "--bf16", "false"]
    script, training, model = parser.parse_args_and_config(arguments)
    assert training.reward_plugins
    assert training.reward_weights is None or len(training.reward_weights) == len(training.reward_plugins)
    assert training.generation_batch_size % training.num_generations == 0


@pytest.mark.parametrize("config", sorted((RECIPES / "accelerate").glob("*.yaml")), ids=lambda path: path.name)
def test_launcher_configs_are_accelerate_configs(config):
    from accelerate.commands.config.config_args import ClusterConfig

    settings = ClusterConfig(**yaml.safe_load(config.read_text()))
    assert settings.num_processes >= 1 and settings.num_machines >= 1


def test_the_cpu_launcher_config_runs_torchrun_without_mixed_precision():
    settings = yaml.safe_load((RECIPES / "accelerate" / "cpu.yaml").read_text())
    # accelerate's MULTI_CPU type only spawns processes through mpirun; torchrun (MULTI_GPU) falls back to gloo
    assert settings["distributed_type"] == "MULTI_GPU" and settings["mixed_precision"] == "no"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--eval_limit", "-1"], "--eval_limit must be at least 0"),
        (["--train_limit", "0"], "--train_limit must be at least 1"),
        (["--eval_batch_size", "0"], "--eval_batch_size must be at least 1"),
        (["--eval_only", "--eval_limit", "0"], "nothing to do"),
    ],
)
def test_bad_recipe_options_are_refused_when_parsed(arguments, message):
    from trl import TrlParser

    with pytest.raises(ValueError, match=message):
        TrlParser((GSM8KScriptArguments,)).parse_args_and_config(arguments)
