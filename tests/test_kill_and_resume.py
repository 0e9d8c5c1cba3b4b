"""A run SIGKILLed mid-step and resumed from its last checkpoint ends exactly as the uninterrupted run: the same
parameters, and the same metrics logged after the checkpoint (timings aside), with every feature.

Each case trains 6 steps with a checkpoint every 3, and kills the run in step 5, so it resumes from checkpoint-3.
The slowest cases are marked `slow` (`make test-slow`).
"""

import json

import pytest
from resuming import assert_resumed_exactly, kill_and_resume

# steps_per_generation=2 and num_iterations=2: one generation trains steps 1-4, so checkpoint-3 falls inside its reuse
# window. TRL regenerates there on resume (from the updated policy) and restarts its slicing; we restore the buffer.
REUSE_WINDOW = {"steps_per_generation": 2, "num_iterations": 2}
# Two of every three prompts make zero-variance groups, so every batch needs refills, before and after the checkpoint.
DYNAMIC_SAMPLING = {"filter_zero_variance_groups": True, "dynamic_sampling": True, "max_sampling_rounds": 3}
PER_PROMPT_ADAPTIVE = {"group_size_schedule": "per_prompt_adaptive", "group_size_kwargs": {"min_size": 2}}


def test_a_run_killed_mid_generation_resumes_exactly(tmp_path):
    assert_resumed_exactly(*kill_and_resume(tmp_path, {}, during="generation"))


def test_a_run_resumed_in_a_later_epoch_shuffles_as_the_uninterrupted_run(tmp_path):
    # 6 prompts: 3 steps an epoch, so checkpoint-3 ends epoch 0 and the resumed steps shuffle epoch 1's order
    assert_resumed_exactly(*kill_and_resume(tmp_path, {}, script_args=("--num_prompts", "6")))


@pytest.mark.slow
def test_a_run_killed_mid_backward_resumes_exactly(tmp_path):
    assert_resumed_exactly(*kill_and_resume(tmp_path, {}, during="backward"))


def test_a_run_killed_inside_a_generations_reuse_window_resumes_exactly(tmp_path):
    uninterrupted, resumed, resumed_from = kill_and_resume(tmp_path, REUSE_WINDOW)
    assert resumed_from == 3
    assert (tmp_path / "killed" / "checkpoint-3" / "generation_buffer_rank0.pt").exists()
    assert_resumed_exactly(uninterrupted, resumed, resumed_from)


@pytest.mark.slow
def test_gradient_accumulation_inside_a_reuse_window_resumes_exactly(tmp_path):
    settings = {"gradient_accumulation_steps": 2, "steps_per_generation": 4, "num_iterations": 2}
    assert_resumed_exactly(*kill_and_resume(tmp_path, settings, during="backward"))


def test_dynamic_sampling_resumes_its_refill_stream_exactly(tmp_path):
    uninterrupted, resumed, resumed_from = kill_and_resume(tmp_path, DYNAMIC_SAMPLING)
    state = json.loads((tmp_path / "killed" / "checkpoint-3" / "dynamic_sampling.json").read_text())
    assert state["refill_batches_drawn"] > 0  # refills happened before the checkpoint, so its position matters
    refills_after = [entry["filter/sampling_rounds"] for entry in resumed.metrics_after(resumed_from)]
    assert any(rounds > 1 for rounds in refills_after)  # ... and after it
    assert_resumed_exactly(uninterrupted, resumed, resumed_from)


@pytest.mark.slow
def test_a_per_prompt_adaptive_schedule_resumes_exactly(tmp_path):
    assert_resumed_exactly(*kill_and_resume(tmp_path, PER_PROMPT_ADAPTIVE))


@pytest.mark.slow
def test_the_liger_loss_resumes_exactly(tmp_path):
    pytest.importorskip("liger_kernel")
    assert_resumed_exactly(*kill_and_resume(tmp_path, {"use_liger_loss": True, **REUSE_WINDOW}, during="backward"))


@pytest.mark.slow
@pytest.mark.parametrize(
    "settings",
    [REUSE_WINDOW, {**DYNAMIC_SAMPLING, **REUSE_WINDOW}, PER_PROMPT_ADAPTIVE],
    ids=["reuse-window", "dynamic-sampling", "per-prompt-adaptive"],
)
def test_two_processes_killed_and_resumed_end_exactly_as_the_uninterrupted_run(tmp_path, settings):
    uninterrupted, resumed, resumed_from = kill_and_resume(tmp_path, settings, processes=2)
    assert_resumed_exactly(uninterrupted, resumed, resumed_from, processes=2)
