"""The learning-efficiency benchmark's smoke mode: every configuration of every task, with its ratios to TRL's."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "learning.py"


@pytest.fixture(scope="module")
def learning():
    spec = importlib.util.spec_from_file_location("learning_benchmark", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


@pytest.fixture(scope="module")
def smoke_results(learning, tmp_path_factory):
    output = tmp_path_factory.mktemp("learning") / "learning.json"
    assert learning.main(["--smoke", "--output", str(output)]) == 0
    return json.loads(output.read_text()), output


def test_smoke_run_reports_every_configuration_with_its_ratios_to_the_baseline(learning, smoke_results):
    results, _ = smoke_results
    task = results["tasks"]["word_problems"]
    assert set(task["summaries"]) == set(learning.CONFIG_NAMES)
    for summary in task["summaries"].values():
        assert set(summary["ratios_to_baseline"]) == {
            "completions_to_accuracy",
            "completions_to_reward",
            "accuracy_at_budget",
            "accuracy_at_budget_points",
            "train_seconds",
            "train_seconds_to_accuracy",
        }
    assert task["summaries"]["baseline"]["options"] == {}
    assert task["combination"]["reason"]


def test_every_run_generates_at_least_the_budget_and_is_evaluated_at_start_and_end(smoke_results):
    results, _ = smoke_results
    for task in results["tasks"].values():
        if "skipped" in task:
            continue
        for runs in task["runs"].values():
            for run in runs:
                assert run["completions"] >= task["settings"]["budget"]
                assert run["accuracy_curve"][0]["completions"] == 0
                assert run["accuracy_curve"][-1]["completions"] == run["completions"]


def test_dynamic_sampling_counts_every_generation_round(smoke_results):
    results, _ = smoke_results
    task = results["tasks"]["word_problems"]
    per_step = task["settings"]["completions_per_step"]
    baseline_steps = task["runs"]["baseline"][0]["steps"]
    assert all(step["generated"] == per_step for step in baseline_steps)
    rounds = [step["generated"] // per_step for step in task["runs"]["filter+dynamic_sampling"][0]["steps"]]
    assert all(1 <= r <= 3 for r in rounds)


def test_the_stories_task_runs_on_the_pretrained_checkpoint_or_says_why_not(shared_dir, smoke_results):
    results, _ = smoke_results
    assert set(results["tasks"]["stories_object"]["summaries"]) >= {"baseline", "filter", "rloo"}


def test_the_plot_is_written_beside_the_json(smoke_results):
    _, output = smoke_results
    assert output.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_object_reward_accepts_the_object_or_its_plural_as_a_word(learning):
    completions = ["She threw the kite up.", "Two kites flew.", "A kitten sat.", "no object here"]
    assert learning.names_object(completions, answer=["kite"] * 4) == [1.0, 1.0, 0.0, 0.0]


def test_the_combination_takes_the_best_of_each_family_that_beats_the_baseline(learning):
    accuracy = {"baseline": 0.5, "filter": 0.55, "filter+dynamic_sampling": 0.6, "per_prompt_adaptive": 0.58,
                "adaptive_zero_variance": 0.4, "rloo": 0.45, "rank": 0.49, "dr_grpo": 0.3}  # fmt: skip
    summaries = {name: {"accuracy_at_budget": value} for name, value in accuracy.items()}
    options, parts, _ = learning.choose_combination(summaries)
    # dynamic sampling beats the schedule and the trainer refuses both together; no estimator beats grpo
    assert parts == ["filter+dynamic_sampling"]
    assert options == learning.SINGLE_CONFIGS["filter+dynamic_sampling"]
