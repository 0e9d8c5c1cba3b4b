"""recipes/code.py end to end: 2 training steps on a tiny offline model, MBPP-format and HumanEval-format files, the
unit-test reward running every program in a sandbox, and HumanEval pass@1 before and after."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from trl_grpo_plus.testing import save_tiny_checkpoint

pytest.importorskip("trl_grpo_plus_code", reason="needs pip install ./plugins/trl-grpo-plus-code")

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "code.py"
MBPP_ROWS = [
    {"task_id": i, "text": f"Write a function add_{i}(a) that returns a + {i}.", "test_list": tests}
    for i, tests in enumerate([[f"assert add_{i}(1) == {1 + i}", f"assert add_{i}(0) == {i}"] for i in range(8)])
]
HUMANEVAL_ROWS = [
    {
        "task_id": "Tiny/0",
        "prompt": 'def double(x):\n    """Twice x."""\n',
        "test": "def check(candidate):\n    assert candidate(2) == 4\n",
        "entry_point": "double",
        "canonical_solution": "    return 2 * x\n",
    },
    {
        "task_id": "Tiny/1",
        "prompt": 'def negate(x):\n    """Minus x."""\n',
        "test": "def check(candidate):\n    assert candidate(2) == -2\n",
        "entry_point": "negate",
        "canonical_solution": "    return -x\n",
    },
]


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_the_code_recipe_trains_on_mbpp_files_and_reports_humaneval_pass_at_1(tmp_path):
    data = tmp_path / "mbpp"
    data.mkdir()
    write_jsonl(data / "train.jsonl", MBPP_ROWS)
    humaneval = write_jsonl(tmp_path / "humaneval.jsonl", HUMANEVAL_ROWS)
    model = save_tiny_checkpoint(tmp_path / "model", max_position_embeddings=1024)
    output = tmp_path / "out"
    command = [
        sys.executable, str(RECIPE),
        "--config", str(ROOT / "recipes" / "configs" / "code.yaml"),
        "--model_name_or_path", model,
        "--dataset_path", str(data),
        "--eval_dataset_path", str(humaneval),
        "--output_dir", str(output),
        "--use_cpu", "--bf16", "false", "--gradient_checkpointing", "false", "--dtype", "float32",
        "--per_device_train_batch_size", "8", "--num_generations", "4", "--gradient_accumulation_steps", "1",
        "--max_completion_length", "24", "--max_steps", "2", "--save_strategy", "no", "--learning_rate", "0.01",
        "--reward_kwargs", '{"code_tests": {"timeout_seconds": 5, "max_workers": 2}}',
    ]  # fmt: skip
    env = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600, check=False)
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    assert "code_tests [code]" in result.stdout  # the plugin reward trained
    report = json.loads((output / "eval_results.json").read_text())
    for stage in ("before", "after"):
        assert report[stage]["total"] == 2 and len(report[stage]["samples"]) == 2
    assert "HumanEval, greedy pass@1" in result.stdout
    assert "'rewards/code_tests/mean'" in result.stdout and "'rewards/code_tests/failures': '0'" in result.stdout
    assert (output / "model.safetensors").exists()


def test_the_humaneval_reward_scores_canonical_solutions_as_passing():
    from trl_grpo_plus_code import code_tests

    completions = [f"```python\n{row['prompt']}{row['canonical_solution']}```" for row in HUMANEVAL_ROWS]
    tests = [row["test"] for row in HUMANEVAL_ROWS]
    entry_points = [row["entry_point"] for row in HUMANEVAL_ROWS]
    assert code_tests(completions, tests=tests, entry_point=entry_points, scoring="all") == [1.0, 1.0]
