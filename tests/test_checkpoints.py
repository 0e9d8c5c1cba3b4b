"""Resuming refuses a checkpoint it cannot continue exactly from, before anything is loaded from it: a missing
path, a checkpoint cut short or damaged, one without our state when the run needs it, and settings that the saved
state cannot mean under. Other changed settings continue, with a warning that says what changes."""

import hashlib
import json
import logging
import shutil

import pytest
from datasets import Dataset

from trl_grpo_plus import GRPOConfig, GRPOTrainer
from trl_grpo_plus.checkpoints import SAVING_MARKER, STATE_FILE, CorruptCheckpointError
from trl_grpo_plus.testing import tiny_grpo_settings, tiny_model, tiny_tokenizer

# One generation trains 4 steps (steps_per_generation=2, num_iterations=2): checkpoints 2 and 6 fall inside a
# generation's reuse window and hold its buffer; checkpoint-4 is at a boundary.
RUN = {"steps_per_generation": 2, "num_iterations": 2, "filter_zero_variance_groups": True, "dynamic_sampling": True}


def half_solved(completions, prompts, **kwargs):
    return [
        float(p.startswith("1") or int(hashlib.sha256(c.encode()).hexdigest(), 16) % 2)
        for p, c in zip(prompts, completions)
    ]


def trainer_for(output_dir, **overrides):
    tokenizer = tiny_tokenizer()
    settings = tiny_grpo_settings(
        output_dir, per_device_train_batch_size=8, max_steps=6, save_strategy="steps", save_steps=2
    )
    settings.update(RUN)
    settings.update(overrides)
    return GRPOTrainer(
        model=tiny_model(tokenizer),
        reward_funcs=[half_solved],
        args=GRPOConfig(**settings),
        train_dataset=Dataset.from_list([{"prompt": f"{i // 10}+{i % 10}="} for i in range(24)]),
        processing_class=tokenizer,
    )


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    trainer_for(folder).train()
    return folder


@pytest.fixture
def run(trained_run, tmp_path):
    """A fresh copy of the trained run's folder (checkpoint-2, -4, -6), for a test to damage."""
    folder = tmp_path / "run"
    shutil.copytree(trained_run, folder)
    return folder


def resume(folder, checkpoint=True, **overrides):
    """Resume a trainer whose loading of weights fails the test: every refusal must come before it."""
    trainer = trainer_for(folder, **overrides)

    def loaded(*args, **kwargs):
        raise AssertionError("the checkpoint was loaded")

    trainer._load_from_checkpoint = loaded
    trainer.train(resume_from_checkpoint=checkpoint)


def test_a_checkpoint_holds_the_buffered_generation_and_the_refill_position_inside_a_reuse_window(run):
    state = json.loads((run / "checkpoint-2" / STATE_FILE).read_text())
    assert state["buffered_generation"] and state["step"] == 2
    assert (run / "checkpoint-2" / "generation_buffer_rank0.pt").exists()
    assert (run / "checkpoint-2" / "dynamic_sampling.json").exists()
    assert set(state["files"]) >= {"model.safetensors", "optimizer.pt", "trainer_state.json", "dynamic_sampling.json"}


def test_a_checkpoint_at_a_generation_boundary_holds_no_buffer(run):
    assert not json.loads((run / "checkpoint-4" / STATE_FILE).read_text())["buffered_generation"]
    assert not (run / "checkpoint-4" / "generation_buffer_rank0.pt").exists()


def test_a_checkpoint_path_that_does_not_exist_is_refused_by_the_config(tmp_path):
    with pytest.raises(ValueError, match=r"resume_from_checkpoint='.*nowhere' does not exist\. Give a checkpoint"):
        GRPOConfig(**tiny_grpo_settings(tmp_path, resume_from_checkpoint=str(tmp_path / "nowhere")))


def test_a_checkpoint_path_that_does_not_exist_is_refused_by_train(run):
    with pytest.raises(ValueError, match=r"does not exist\. Give a checkpoint folder, or True"):
        resume(run, str(run / "checkpoint-5"))


def test_resuming_a_folder_without_checkpoints_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"holds no checkpoint-<step> folder\. Train without resume_from_checkpoint"):
        resume(tmp_path)


def test_a_truncated_weights_file_is_refused_naming_the_last_complete_checkpoint(run):
    weights = run / "checkpoint-6" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(CorruptCheckpointError, match=r"checkpoint-6' is damaged \(model.safetensors has 1000 bytes, "):
        resume(run)
    with pytest.raises(CorruptCheckpointError, match=r"Resume from the last complete one, '.*checkpoint-4'"):
        resume(run)


def test_a_missing_state_file_is_refused(run):
    (run / "checkpoint-2" / "dynamic_sampling.json").unlink()
    with pytest.raises(CorruptCheckpointError, match=r"is damaged \(missing: dynamic_sampling.json\)"):
        resume(run, str(run / "checkpoint-2"))


def test_a_damaged_state_file_is_refused(run):
    (run / "checkpoint-6" / STATE_FILE).write_text('{"files": {"model.saf')
    with pytest.raises(CorruptCheckpointError, match=r"has a damaged trl_grpo_plus_state.json"):
        resume(run)


def test_a_checkpoint_cut_short_while_transformers_saved_it_is_refused(run):
    for name in (STATE_FILE, "trainer_state.json"):
        (run / "checkpoint-6" / name).unlink()
    with pytest.raises(CorruptCheckpointError, match=r"is incomplete: it has no trainer_state.json .*checkpoint-4'"):
        resume(run)


def test_a_checkpoint_whose_save_was_cut_short_before_our_state_is_refused_not_taken_for_trls(run):
    (run / "checkpoint-4" / STATE_FILE).unlink()
    (run / "checkpoint-4" / SAVING_MARKER).touch()  # as a kill leaves it after transformers saved, before we did
    with pytest.raises(CorruptCheckpointError, match=r"is incomplete: the run was stopped while saving it"):
        resume(run, str(run / "checkpoint-4"), filter_zero_variance_groups=False, dynamic_sampling=False)


def test_resume_from_checkpoint_typed_as_the_string_true_resumes_the_last_checkpoint(run):
    with pytest.raises(AssertionError, match="the checkpoint was loaded"):
        resume(run, "True")


def test_dynamic_sampling_turned_on_at_a_resume_starts_its_refill_stream_from_the_beginning(run, caplog):
    (run / "checkpoint-4" / "dynamic_sampling.json").unlink()  # as written by a run without dynamic sampling
    state = json.loads((run / "checkpoint-4" / STATE_FILE).read_text())
    del state["files"]["dynamic_sampling.json"]
    state["settings"]["dynamic_sampling"] = [False, 4]
    (run / "checkpoint-4" / STATE_FILE).write_text(json.dumps(state))
    trainer = trainer_for(run)
    with caplog.at_level(logging.WARNING):
        trainer.train(resume_from_checkpoint=str(run / "checkpoint-4"))
    assert "a refill stream the checkpoint does not hold starts from its beginning" in caplog.text
    assert trainer.state.global_step == 6


def test_a_checkpoint_without_our_state_is_refused_when_the_run_has_state_to_restore(run):
    (run / "checkpoint-6" / STATE_FILE).unlink()
    with pytest.raises(CorruptCheckpointError, match=r"holds no trl_grpo_plus_state.json.*dynamic sampling state"):
        resume(run)


def test_a_trl_checkpoint_resumes_as_trl_does_with_a_warning_when_nothing_else_needs_restoring(run, caplog):
    (run / "checkpoint-4" / STATE_FILE).unlink()
    with caplog.at_level(logging.WARNING), pytest.raises(AssertionError, match="the checkpoint was loaded"):
        resume(run, str(run / "checkpoint-4"), filter_zero_variance_groups=False, dynamic_sampling=False)
    assert "resuming as TRL does" in caplog.text


def test_another_group_size_schedule_is_refused(run):
    overrides = {
        "dynamic_sampling": False,
        "group_size_schedule": "linear",
        "group_size_kwargs": {"start": 2, "end": 4, "steps": 6},
    }
    with pytest.raises(
        ValueError, match=r"trained with group_size_schedule=\['constant', \{\}\]; this run has \['linear'"
    ):
        resume(run, **overrides)


def test_another_generation_layout_is_refused_inside_a_reuse_window(run):
    with pytest.raises(ValueError, match=r"num_iterations=2; this run has 1, and the checkpoint holds a generation"):
        resume(run, str(run / "checkpoint-2"), num_iterations=1)


def test_another_generation_layout_continues_with_a_warning_at_a_generation_boundary(run, caplog):
    with caplog.at_level(logging.WARNING), pytest.raises(AssertionError, match="the checkpoint was loaded"):
        resume(run, str(run / "checkpoint-4"), num_iterations=1)
    assert "num_iterations=2, under 1: the batches after the resume are laid out differently" in caplog.text


def test_another_advantage_estimator_continues_with_a_warning(run, caplog):
    with caplog.at_level(logging.WARNING), pytest.raises(AssertionError, match="the checkpoint was loaded"):
        resume(run, advantage_estimator="rloo")
    assert "advantages are computed by the new estimator from the next generation on" in caplog.text
