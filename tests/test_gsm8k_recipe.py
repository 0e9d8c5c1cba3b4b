"""recipes/gsm8k.py end to end: 2 training steps on a tiny offline model and GSM8K files, 1 and 2 processes, and
its early, clear errors for bad inputs."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from trl_grpo_plus.demo.word_problems import word_problems
from trl_grpo_plus.testing import save_tiny_checkpoint

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "gsm8k.py"
SHARED_GSM8K = ROOT.parent / "shared" / "data" / "gsm8k"
OFFLINE = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


@pytest.fixture(scope="module")
def gsm8k_dir(tmp_path_factory) -> Path:
    """The real GSM8K files from ../shared; without them, GSM8K-format files of synthetic problems."""
    if SHARED_GSM8K.is_dir():
        return SHARED_GSM8K
    folder = tmp_path_factory.mktemp("gsm8k")
    for split, seed in (("train", 0), ("test", 1)):
        rows = word_problems(64, seed=seed)
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return folder


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    # GSM8K questions run to ~900 characters and the tokenizer is character-level.
    return Path(save_tiny_checkpoint(tmp_path_factory.mktemp("model") / "tiny", max_position_embeddings=2048))


def recipe_arguments(data: Path, model: Path, output: Path, *extra: str) -> list[str]:
    return [
        "--config", str(ROOT / "recipes" / "configs" / "gsm8k_cpu.yaml"),
        "--dataset_path", str(data),
        "--model_name_or_path", str(model),
        "--output_dir", str(output),
        "--system_prompt", "Solve it.",
        "--max_steps", "2",
        "--save_steps", "2",
        "--max_completion_length", "16",
        "--train_limit", "32",
        "--eval_limit", "4",
        # The tiny random model earns no accuracy or format reward; the length penalty varies, so steps update it.
        "--reward_plugins", "accuracy", "format", "overlong_penalty",
        "--reward_weights", "1.0", "0.2", "1.0",
        "--reward_kwargs", '{"overlong_penalty": {"max_length": 16, "cache_length": 12}}',
        *extra,
    ]  # fmt: skip


def run_recipe(*arguments: str, processes: int = 1, env: dict[str, str] = OFFLINE) -> subprocess.CompletedProcess:
    if processes == 1:
        command = [sys.executable, str(RECIPE), *arguments]
    else:
        accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent))
        config = ROOT / "recipes" / "accelerate" / "cpu.yaml"
        command = [accelerate, "launch", "--config_file", str(config), "--num_processes", str(processes)]
        command += [str(RECIPE), *arguments]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)


def assert_succeeded(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"


def weights(folder: Path) -> dict[str, torch.Tensor]:
    from transformers import AutoModelForCausalLM

    return {name: p.detach().clone() for name, p in AutoModelForCausalLM.from_pretrained(folder).named_parameters()}


def assert_trained(output: Path, model_dir: Path) -> None:
    from transformers import AutoTokenizer

    checkpoint = output / "checkpoint-2"
    reloaded = weights(checkpoint)
    AutoTokenizer.from_pretrained(checkpoint)
    initial = weights(model_dir)
    assert any(not torch.equal(reloaded[name], initial[name]) for name in initial), "no parameter changed"
    assert all(torch.equal(reloaded[name], p) for name, p in weights(output).items()), "final save != checkpoint-2"
    logs = json.loads((checkpoint / "trainer_state.json").read_text())["log_history"]
    steps = [log for log in logs if "rewards/accuracy/mean" in log]
    assert [log["step"] for log in steps] == [1, 2]
    assert all(
        {"loss", "rewards/format/mean", "rewards/overlong_penalty/mean", "reward_std"} <= set(log) for log in steps
    )
    report = json.loads((output / "eval_results.json").read_text())
    assert report["before"]["total"] == report["after"]["total"] == 4
    assert report["delta"] == report["after"]["accuracy"] - report["before"]["accuracy"]


def test_recipe_trains_saves_and_evaluates_in_one_process(gsm8k_dir, model_dir, tmp_path):
    result = run_recipe(*recipe_arguments(gsm8k_dir, model_dir, tmp_path / "out"))
    assert_succeeded(result)
    assert_trained(tmp_path / "out", model_dir)
    assert "rewards: accuracy [rewards], format [rewards], overlong_penalty [rewards]" in result.stdout
    assert "advantage estimator: grpo" in result.stdout and "group-size schedule: constant" in result.stdout
    assert "before" in result.stdout and "after" in result.stdout and "delta" in result.stdout


def test_recipe_trains_with_two_cpu_processes_from_the_cpu_launcher_config(gsm8k_dir, model_dir, tmp_path):
    result = run_recipe(*recipe_arguments(gsm8k_dir, model_dir, tmp_path / "out"), processes=2)
    assert_succeeded(result)
    assert_trained(tmp_path / "out", model_dir)
    assert result.stdout.count("trl_grpo_plus: plugins:") == 1, "the active plugins are logged once, by rank 0"
    state = json.loads((tmp_path / "out" / "checkpoint-2" / "trainer_state.json").read_text())
    # 2 processes x 4 per device = 8 completions per step: two groups of 4, one prompt per process
    assert state["train_batch_size"] == 4 and state["global_step"] == 2


def test_eval_only_reports_one_evaluation_without_training(gsm8k_dir, model_dir, tmp_path):
    result = run_recipe(*recipe_arguments(gsm8k_dir, model_dir, tmp_path / "out", "--eval_only"))
    assert_succeeded(result)
    report = json.loads((tmp_path / "out" / "eval_results.json").read_text())
    assert set(report) == {"before"} and report["before"]["total"] == 4
    assert not (tmp_path / "out" / "checkpoint-2").exists()


# Bad inputs fail before the model is loaded: these runs point at a model folder that does not exist, so any error
# other than the expected one would be about the model.


def assert_fails_with(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    for fragment in fragments:
        assert fragment in last_line, last_line


def test_a_missing_dataset_path_is_named(model_dir, tmp_path):
    arguments = recipe_arguments(tmp_path / "no-such-folder", tmp_path / "no-model", tmp_path / "out")
    assert_fails_with(run_recipe(*arguments), "is not a folder", "GSM8K JSONL files")


def test_a_dataset_without_question_and_answer_columns_is_named(tmp_path):
    for split in ("train", "test"):
        (tmp_path / f"{split}.jsonl").write_text(json.dumps({"problem": "1+1?", "solution": "2"}) + "\n")
    arguments = recipe_arguments(tmp_path, tmp_path / "no-model", tmp_path / "out")
    assert_fails_with(run_recipe(*arguments), "no 'question' or 'answer' column", "problem, solution")


def test_batch_sizes_that_do_not_divide_into_groups_are_explained(gsm8k_dir, tmp_path):
    arguments = recipe_arguments(
        gsm8k_dir, tmp_path / "no-model", tmp_path / "out", "--per_device_train_batch_size", "3"
    )
    assert_fails_with(run_recipe(*arguments), "num_generations=4", "per_device_train_batch_size=4")


def test_a_reward_whose_plugin_is_not_installed_names_the_plugin(gsm8k_dir, model_dir, tmp_path):
    arguments = recipe_arguments(gsm8k_dir, model_dir, tmp_path / "out", "--reward_plugins", "math_verify")
    arguments[arguments.index("--reward_weights") : arguments.index("--reward_weights") + 4] = []
    arguments[arguments.index("--reward_kwargs") : arguments.index("--reward_kwargs") + 2] = []
    # as if trl-grpo-plus-math were not installed
    result = run_recipe(*arguments, env={**OFFLINE, "TRL_GRPO_PLUS_BLOCK_PLUGINS": "math"})
    assert_fails_with(result, "Unknown reward function 'math_verify'", "pip install ./plugins/trl-grpo-plus-math")
    assert "Loading weights" not in result.stderr, "the reward name must be checked before the model is loaded"


def test_recipe_trains_a_real_base_checkpoint_with_plain_text_prompts(shared_dir, tmp_path):
    # stories260K is a pretrained Llama without a chat template: the recipe frames questions as plain text
    model = shared_dir / "models" / "stories260K"
    # its stories never stop within 16 tokens, so the length penalty is flat; "has punctuation" has spread
    options = {"overlong_penalty": {"max_length": 16, "cache_length": 12}, "format": {"pattern": r'(?s).*["!?,.].*'}}
    arguments = recipe_arguments(shared_dir / "data" / "gsm8k", model, tmp_path / "out")
    result = run_recipe(*arguments, "--reward_kwargs", json.dumps(options))
    assert_succeeded(result)
    assert_trained(tmp_path / "out", model)
    prompt = json.loads((tmp_path / "out" / "eval_results.json").read_text())["before"]["samples"][0]["prompt"]
    assert prompt.startswith("Solve it.\n\nQuestion: ") and prompt.endswith("\nAnswer: ")


def test_eval_limit_zero_needs_no_test_split(gsm8k_dir, model_dir, tmp_path):
    train_only = tmp_path / "train-only"
    train_only.mkdir()
    shutil.copy(gsm8k_dir / "train.jsonl", train_only / "train.jsonl")
    arguments = recipe_arguments(train_only, model_dir, tmp_path / "out", "--eval_limit", "0", "--max_steps", "1")
    result = run_recipe(*arguments)
    assert_succeeded(result)
    assert not (tmp_path / "out" / "eval_results.json").exists()


def test_an_invalid_choice_is_the_last_short_thing_printed(model_dir, tmp_path):
    result = run_recipe("--model_name_or_path", str(model_dir), "--group_size_budget", "prompt")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) <= 3, lines  # not argparse's 200-line usage
    assert "invalid choice: 'prompt' (choose from 'completions', 'prompts')" in lines[-2]
    assert "--help" in lines[-1]


def test_reward_plugins_may_be_comma_separated_on_the_command_line(gsm8k_dir, model_dir, tmp_path):
    arguments = recipe_arguments(gsm8k_dir, model_dir, tmp_path / "out", "--max_steps", "1")
    at = arguments.index("--reward_plugins")
    arguments[at + 1 : at + 4] = ["accuracy,format", "overlong_penalty"]
    result = run_recipe(*arguments, "--eval_limit", "0")
    assert_succeeded(result)
    assert "rewards: accuracy [rewards], format [rewards], overlong_penalty [rewards]" in result.stdout
