"""Every feature trains exactly the completions its rewards scored, with the advantage the estimator gives them.

Each run records, with `TrainingRecorder`, every completion a reward function scored and every row `_compute_loss`
received; `invariants.check_trained_on_scored` then checks the rows against the scored completions and against the
estimators' formulas re-implemented in plain Python. The reward is a hash of the completion's text (one prompt in
three scores a constant, so its group has zero variance): a regenerated or swapped completion cannot pass.
"""

import json
import math
import statistics
import sys
from pathlib import Path

import launching
import pytest
from invariants import check_trained_on_scored, kept_groups, scored_groups

sys.path.insert(0, str(Path(__file__).parent / "scripts"))
from train_recorded import train  # noqa: E402  (the script the 2-process tests launch, run in-process)

FILTER = {"filter_zero_variance_groups": True}
DYNAMIC = {**FILTER, "dynamic_sampling": True, "max_sampling_rounds": 4}
RAMP = {"group_size_schedule": "linear", "group_size_kwargs": {"start": 2, "end": 6, "steps": 2}}
# Runs end on a generation batch's last micro-step (max_steps), so every batch is trained whole.
# 6 prompts: each is seen again within a few steps, so the adaptive schedule has a history to allocate by.
PER_PROMPT = {"group_size_schedule": "per_prompt_adaptive", "num_prompts": 6, "max_steps": 5}
MICRO_BATCHES = {"per_device_train_batch_size": 4}  # generation batch 12 = 4 x steps_per_generation (3)

CASES = {
    "defaults": ({}, "grpo"),
    **{
        f"estimator-{name}": ({"advantage_estimator": name}, name)
        for name in ("dr_grpo", "batch_std", "rloo", "reinforce_pp", "gdpo", "rank")
    },
    "trl-scale-rewards-batch": ({"scale_rewards": "batch"}, "batch_std"),
    "trl-scale-rewards-none": ({"scale_rewards": "none"}, "dr_grpo"),
    "filtering": (FILTER, "grpo"),
    "filtering-batch-level-estimator": ({**FILTER, "advantage_estimator": "reinforce_pp"}, "reinforce_pp"),
    "filtering-dynamic-sampling": (DYNAMIC, "grpo"),
    "filtering-dynamic-sampling-rloo": ({**DYNAMIC, "advantage_estimator": "rloo"}, "rloo"),
    "schedule-constant": ({"group_size_schedule": "constant", "group_size_kwargs": {"size": 6}}, "grpo"),
    "schedule-linear": (RAMP, "grpo"),
    "schedule-cosine": ({**RAMP, "group_size_schedule": "cosine"}, "grpo"),
    "schedule-step": (
        {"group_size_schedule": "step", "group_size_kwargs": {"milestones": [1, 2], "sizes": [3, 2, 6]}},
        "grpo",
    ),
    "schedule-adaptive-zero-variance": (
        {"group_size_schedule": "adaptive_zero_variance", "group_size_kwargs": {"raise_above": 0.2}, "max_steps": 4},
        "grpo",
    ),
    "schedule-per-prompt-adaptive": (PER_PROMPT, "grpo"),
    "schedule-per-prompt-adaptive-batch-std": ({**PER_PROMPT, "advantage_estimator": "batch_std"}, "batch_std"),
    "schedule-fixed-prompt-budget": ({**RAMP, "group_size_budget": "prompts"}, "grpo"),
    "schedule-linear-filtering": ({**RAMP, **FILTER}, "grpo"),
    # 3 prompts x up to 6 completions: batches larger than generation_batch_size, every kept group trained
    "schedule-fixed-prompt-budget-filtering": ({**RAMP, "group_size_budget": "prompts", **FILTER}, "grpo"),
    # long enough for the prompt stream to wrap, where one prompt can lead two adjacent groups
    "schedule-per-prompt-adaptive-long": ({**PER_PROMPT, "max_steps": 14}, "grpo"),
    "schedule-per-prompt-adaptive-filtering": ({**PER_PROMPT, **FILTER}, "grpo"),
    "mask-truncated-completions-filtering": ({"mask_truncated_completions": True, **FILTER}, "grpo"),
    "liger-loss": ({"use_liger_loss": True}, "grpo"),
    "liger-loss-filtering-rank": ({"use_liger_loss": True, **FILTER, "advantage_estimator": "rank"}, "rank"),
    "gradient-accumulation": ({**MICRO_BATCHES, "gradient_accumulation_steps": 3}, "grpo"),
    "steps-per-generation": ({**MICRO_BATCHES, "steps_per_generation": 3, "max_steps": 6}, "grpo"),
    "num-iterations": ({"num_iterations": 2, "max_steps": 4}, "grpo"),
    "accumulation-iterations-filtering": (
        {**MICRO_BATCHES, "gradient_accumulation_steps": 3, "num_iterations": 2, "max_steps": 4, **FILTER},
        "grpo",
    ),
    "steps-per-generation-dynamic-sampling": (
        {**MICRO_BATCHES, "steps_per_generation": 3, "max_steps": 6, **DYNAMIC},
        "grpo",
    ),
    "schedule-linear-accumulation-iterations": (
        {**RAMP, **MICRO_BATCHES, "gradient_accumulation_steps": 3, "num_iterations": 2, "max_steps": 4},
        "grpo",
    ),
}


def assert_trained_on_scored(records, settings, estimator):
    filtered = settings.get("filter_zero_variance_groups", False)
    num_iterations = settings.get("num_iterations", 1)
    assert check_trained_on_scored(records, estimator, filtered=filtered, num_iterations=num_iterations) > 0
    if filtered:
        assert_filtering_was_exercised(records)


def assert_filtering_was_exercised(records):
    """A filtering case proves nothing unless some generated group had zero variance."""
    groups = [group for index in range(len(records[0]["generations"])) for group in groups_of(records, index)]
    assert any(not kept_groups([group], math.inf) for group in groups), "no group was ever dropped"


def groups_of(records, index):
    generations = [record["generations"][index] for record in records]
    return scored_groups([g["rounds"] for g in generations], generations[0].get("group_sizes"))


@pytest.mark.parametrize(("settings", "estimator"), list(CASES.values()), ids=list(CASES))
def test_the_loss_trains_exactly_the_scored_completions_with_their_advantages(tmp_path, settings, estimator):
    _, recorder = train(tmp_path, **settings)
    assert_trained_on_scored([{"generations": recorder.generations}], settings, estimator)


def test_trls_own_trainer_meets_the_same_invariants(tmp_path):
    # The checker itself is held to the reference: TRL's trainer, recorded the same way, passes it.
    import trl
    from train_recorded import prompt_dataset, text_hash

    from trl_grpo_plus.testing import TrainingRecorder, tiny_grpo_settings, tiny_model, tiny_tokenizer

    tokenizer = tiny_tokenizer()
    recorder = TrainingRecorder(tokenizer)
    settings = tiny_grpo_settings(tmp_path, per_device_train_batch_size=12, max_steps=2, scale_rewards="batch")
    trainer = trl.GRPOTrainer(
        model=tiny_model(tokenizer),
        reward_funcs=[recorder.reward(text_hash)],
        args=trl.GRPOConfig(**settings),
        train_dataset=prompt_dataset(60),
        processing_class=tokenizer,
    )
    recorder.attach(trainer)
    trainer.train()
    assert check_trained_on_scored([{"generations": recorder.generations}], "batch_std") == 24


def test_ragged_groups_reach_the_loss_under_an_adaptive_schedule(tmp_path):
    # Otherwise the schedule cases could pass on TRL's fixed groups alone.
    _, recorder = train(tmp_path, **PER_PROMPT)
    records = [{"generations": recorder.generations}]
    sizes = {len(group) for index in range(len(recorder.generations)) for group in groups_of(records, index)}
    assert len(sizes) > 1, sizes


def test_dynamic_sampling_trains_refilled_completions(tmp_path):
    _, recorder = train(tmp_path, **DYNAMIC, max_steps=4)
    refilled = [g for g in recorder.generations if len(g["rounds"]) > 1]
    assert refilled, "no batch needed a refill round"
    check_trained_on_scored([{"generations": refilled}], filtered=True)
    first_prompts = {row["prompt"] for g in refilled for row in g["rounds"][0]}
    assert {row["prompt"] for g in refilled for row in g["rounds"][1]} - first_prompts, "refills drew no new prompt"
    later_rounds = {(row["prompt"], tuple(row["completion_ids"])) for g in refilled for row in g["rounds"][1]}
    trained = {(row["prompt"], tuple(row["completion_ids"])) for g in refilled for loss in g["losses"] for row in loss}
    assert later_rounds & trained, "no refilled completion was trained"


def test_reward_metrics_under_filtering_cover_every_generated_completion(tmp_path):
    trainer, recorder = train(tmp_path, **DYNAMIC, max_steps=4)
    logs = [log for log in trainer.state.log_history if "reward" in log]
    assert len(logs) == len(recorder.generations) == 4
    for log, generation in zip(logs, recorder.generations, strict=True):
        rewards = [row["reward"] for scored in generation["rounds"] for row in scored]
        groups = scored_groups([generation["rounds"]])
        zero = sum(len(group) for group in groups if not kept_groups([group], math.inf))
        assert log["rewards/text_hash/mean"] == pytest.approx(statistics.fmean(rewards), abs=1e-6)
        assert log["rewards/text_hash/std"] == pytest.approx(statistics.stdev(rewards), abs=1e-6)
        assert log["reward"] == pytest.approx(statistics.fmean(rewards), abs=1e-6)
        assert log["reward_std"] == pytest.approx(statistics.stdev(rewards), abs=1e-6)
        assert log["frac_reward_zero_std"] == pytest.approx(zero / len(rewards), abs=1e-6)
        assert log["filter/sampling_rounds"] == len(generation["rounds"])
        assert log["filter/kept_sequences"] == sum(len(loss) for loss in generation["losses"])


TWO_PROCESS_CASES = {
    "defaults": ({}, "grpo"),
    "filtering-dynamic-sampling-accumulation": (
        {**MICRO_BATCHES, "gradient_accumulation_steps": 3, **DYNAMIC, "max_steps": 4},
        "grpo",
    ),
    "per-prompt-adaptive-filtering": ({**PER_PROMPT, **FILTER}, "grpo"),
    # groups of 3 over 2 processes: an equal share of the kept rows can cut a group
    "filtering-cut-group": (
        {"num_generations": 3, "per_device_train_batch_size": 3, "max_steps": 6, **FILTER},
        "grpo",
    ),
    "steps-per-generation-iterations-rloo": (
        {
            **MICRO_BATCHES,
            "steps_per_generation": 3,
            "num_iterations": 2,
            "max_steps": 6,
            "advantage_estimator": "rloo",
        },
        "rloo",
    ),
}


@pytest.mark.parametrize(("settings", "estimator"), list(TWO_PROCESS_CASES.values()), ids=list(TWO_PROCESS_CASES))
def test_each_of_two_processes_trains_its_own_scored_rows(tmp_path, settings, estimator):
    _, records = launching.run_script("train_recorded.py", tmp_path, "--settings", json.dumps(settings), processes=2)
    assert_trained_on_scored(records, settings, estimator)
    for record in records:  # both ranks trained rows (their own share), not one rank all of them
        assert any(loss for generation in record["generations"] for loss in generation["losses"])
    if settings.get("num_generations", 4) % 2:  # the equal shares did cut a kept group somewhere
        kept = [
            sum(map(len, kept_groups(groups_of(records, i), math.inf))) for i in range(len(records[0]["generations"]))
        ]
        trained = [sum(len(loss) for r in records for loss in r["generations"][i]["losses"]) for i in range(len(kept))]
        assert any(t < k for t, k in zip(trained, kept, strict=True)), (kept, trained)
