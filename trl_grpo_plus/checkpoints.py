"""Checkpoints that resume exactly: what a checkpoint holds beyond TRL's, and the checks before resuming from one.

TRL's checkpoint (weights, optimizer, scheduler, RNG states, trainer state) resumes exactly at a generation
boundary. Inside a generation's reuse window (`steps_per_generation` > gradient accumulation steps, or
`num_iterations` > 1) TRL regenerates on resume, from the updated policy and another RNG state, and restarts its
micro-step counter, so the resumed run trains on other completions, sliced from the start. We also save:

- `generation_buffer_rank<k>.pt`: each process's buffered generation (what the next micro-steps train on) and the
  micro-step counter, restored as they were, so the reuse window continues exactly;
- each stateful feature's own file (the group-size planner's history and prompt stream, the dynamic-sampling
  refill stream's position), written and read by the feature;
- `trl_grpo_plus_state.json`, written last: the settings the run was trained with, and the size of every file in
  the checkpoint. A checkpoint without it, or whose files do not match it, was cut short (a kill while saving, a
  full disk, a partial copy): resuming from it is refused with the reason, never silently started afresh.

On resume, settings that differ from the checkpoint's are refused when the saved state cannot mean the same thing
under the new value, and otherwise continued with a warning that says what changes (`SETTINGS` below).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from accelerate.utils import send_to_device
from torch.utils.data import Sampler
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint

logger = logging.getLogger(__name__)

STATE_FILE = "trl_grpo_plus_state.json"
SAVING_MARKER = "trl_grpo_plus_saving"  # present from before transformers saves until our state file is written
BUFFER_FILE = "generation_buffer_rank{rank}.pt"
FORMAT_VERSION = 1
TRAINER_STATE = "trainer_state.json"  # transformers writes it last of its own files


@dataclass(frozen=True)
class Setting:
    """A setting compared on resume: how to read it from a trainer, and what a different value does."""

    read: Callable[[Any], Any]
    refuse: str | None  # why resuming under another value is refused; None: continue with a warning
    changes: str  # what continuing under another value changes
    refuse_in_reuse_window: bool = False  # refused only when a buffered generation must be restored


def _layout(field: str) -> Setting:
    return Setting(
        read=lambda trainer: getattr(trainer.args, field),
        refuse=None,
        refuse_in_reuse_window=True,
        changes="the batches after the resume are laid out differently from the uninterrupted run's",
    )


SETTINGS: dict[str, Setting] = {
    "group_size_schedule": Setting(
        read=lambda trainer: (trainer.group_size_schedule.name, trainer.group_size_schedule.options),
        refuse="the saved schedule history and prompt-stream position belong to the schedule that wrote them",
        changes="",
    ),
    "group_size_budget": Setting(
        read=lambda trainer: trainer.args.group_size_budget if trainer.group_size_planner is not None else None,
        refuse="the saved prompt-stream position counts batches of the budget that wrote it",
        changes="",
    ),
    "advantage_estimator": Setting(
        read=lambda trainer: (trainer.advantage_estimator.name, trainer.advantage_estimator.options),
        refuse=None,
        changes="advantages are computed by the new estimator from the next generation on",
    ),
    "filter_zero_variance_groups": Setting(
        read=lambda trainer: (trainer.args.filter_zero_variance_groups, trainer.args.zero_variance_tolerance),
        refuse=None,
        changes="which groups train changes from the next generation on",
    ),
    "dynamic_sampling": Setting(
        read=lambda trainer: (trainer.args.dynamic_sampling, trainer.args.max_sampling_rounds),
        refuse=None,
        changes="refills follow the new setting; a refill stream the checkpoint does not hold starts from its "
        "beginning",
    ),
    "reward_funcs": Setting(
        read=lambda trainer: (list(trainer.reward_func_names), trainer.reward_weights.tolist()),
        refuse=None,
        changes="completions are scored by the new rewards and weights from the next generation on",
    ),
    "use_liger_loss": Setting(
        read=lambda trainer: trainer.args.use_liger_loss,
        refuse=None,
        changes="the loss is computed by the other kernel (equal up to float rounding)",
    ),
    "seed": Setting(
        read=lambda trainer: trainer.args.seed,
        refuse=None,
        changes="the refill stream is shuffled with the new seed (the RNG states themselves come from the checkpoint)",
    ),
    "num_generations": _layout("num_generations"),
    "generation_batch_size": _layout("generation_batch_size"),
    "steps_per_generation": _layout("steps_per_generation"),
    "num_iterations": _layout("num_iterations"),
    "gradient_accumulation_steps": _layout("gradient_accumulation_steps"),
    "num_processes": Setting(
        read=lambda trainer: trainer.accelerator.num_processes,
        refuse=None,
        refuse_in_reuse_window=True,
        changes="the batches after the resume are laid out differently from the uninterrupted run's",
    ),
}


class EpochSeekingSampler(Sampler):
    """TRL's `RepeatSampler`, whose shuffle follows the epoch on resume.

    `RepeatSampler` draws one shuffle per epoch from a generator seeded once, so a run resumed in epoch e > 0
    (transformers skips the finished epochs without iterating the sampler) replays epoch 0's order. transformers
    calls `set_epoch(e)` before each epoch; it puts the generator where an uninterrupted run has it: seeded, with e
    shuffles drawn. An uninterrupted run gets the very same orders as under TRL's sampler."""

    def __init__(self, sampler: Any) -> None:
        self.sampler = sampler

    def set_epoch(self, epoch: int) -> None:
        sampler = self.sampler
        if sampler.shuffle and sampler.seed is not None:
            sampler.generator.manual_seed(sampler.seed)
            for _ in range(epoch):
                torch.randperm(sampler.num_samples, generator=sampler.generator)

    def __iter__(self):
        return iter(self.sampler)

    def __len__(self) -> int:
        return len(self.sampler)


class CorruptCheckpointError(ValueError):
    """A checkpoint that cannot be resumed from as it is on disk."""


def check_config(args: Any) -> None:
    """Refuse a `resume_from_checkpoint` path that does not exist, before any model is loaded."""
    path = args.resume_from_checkpoint
    if isinstance(path, str) and path.lower() not in ("true", "false", "") and not os.path.isdir(path):
        raise ValueError(
            f"resume_from_checkpoint={path!r} does not exist. Give a checkpoint folder (e.g. "
            f"{os.path.join(args.output_dir, PREFIX_CHECKPOINT_DIR)}-500), or True for the last checkpoint in "
            f"output_dir."
        )


class CheckpointState:
    """The trainer's side of checkpoints: save the extra state, validate a checkpoint, restore from it."""

    def __init__(self, features: dict[str, Any]) -> None:
        # Stateful features by name: each has save(folder) and load(folder, trainer), and owns its files.
        self.features = {name: feature for name, feature in features.items() if feature is not None}

    # --- saving ---------------------------------------------------------------------------------------------

    def begin_save(self, trainer: Any, folder: str) -> None:
        """Mark `folder` as being saved, before transformers writes anything into it: a kill before `save` ends
        leaves the mark, so the checkpoint is known as cut short (not taken for one of TRL's)."""
        if trainer.args.should_save:
            os.makedirs(folder, exist_ok=True)
            open(os.path.join(folder, SAVING_MARKER), "w").close()

    def save(self, trainer: Any, folder: str) -> None:
        """Write the extra state into `folder` (on every process), then the settings and file manifest, last."""
        accelerator = trainer.accelerator
        in_window = _in_reuse_window(trainer)
        if in_window:
            torch.save(
                trainer._buffered_inputs,
                os.path.join(folder, BUFFER_FILE.format(rank=accelerator.process_index)),
            )
        if trainer.args.should_save:
            for feature in self.features.values():
                feature.save(folder)
        accelerator.wait_for_everyone()  # every process's files are on disk before the manifest lists them
        if trainer.args.should_save:
            state = {
                "format": FORMAT_VERSION,
                "step": trainer._step,
                "buffered_generation": in_window,
                "settings": {name: _jsonable(setting.read(trainer)) for name, setting in SETTINGS.items()},
                "files": _file_sizes(folder),
            }
            temporary = os.path.join(folder, STATE_FILE + ".tmp")
            with open(temporary, "w") as file:
                json.dump(state, file, indent=1)
            os.replace(temporary, os.path.join(folder, STATE_FILE))  # a kill leaves no half-written manifest
            os.remove(os.path.join(folder, SAVING_MARKER))
        accelerator.wait_for_everyone()

    # --- before resuming ------------------------------------------------------------------------------------

    def check_resume(self, trainer: Any, resume_from_checkpoint: str | bool | None) -> str | None:
        """The checkpoint to resume from (`True`: the last one in `output_dir`), validated before anything is
        loaded from it; refuses a missing, cut-short or corrupt checkpoint, and settings it cannot continue."""
        if isinstance(resume_from_checkpoint, str) and resume_from_checkpoint.lower() in ("true", "false"):
            resume_from_checkpoint = resume_from_checkpoint.lower() == "true"  # as typed on a command line
        if resume_from_checkpoint is None or resume_from_checkpoint is False:
            return None
        output_dir = trainer.args.output_dir
        if resume_from_checkpoint is True:
            checkpoint = get_last_checkpoint(output_dir) if os.path.isdir(output_dir) else None
            if checkpoint is None:
                raise ValueError(
                    f"resume_from_checkpoint=True, but output_dir {output_dir!r} holds no checkpoint-<step> folder. "
                    f"Train without resume_from_checkpoint to start a new run, or set output_dir to the run's folder."
                )
        else:
            checkpoint = str(resume_from_checkpoint)
            if not os.path.isdir(checkpoint):
                raise ValueError(
                    f"resume_from_checkpoint={checkpoint!r} does not exist. Give a checkpoint folder, or True for "
                    f"the last checkpoint in output_dir."
                )
        try:
            state = read_state(checkpoint)
        except CorruptCheckpointError as error:
            earlier = _earlier_complete_checkpoint(checkpoint)
            hint = (
                f"Resume from the last complete one, {earlier!r} (resume_from_checkpoint={earlier!r}), or delete "
                f"{checkpoint!r} and resume with True."
                if earlier
                else "No earlier complete checkpoint exists in that folder: start the run again."
            )
            raise CorruptCheckpointError(f"{error} {hint}") from None
        if state is None:
            self._check_trl_checkpoint(checkpoint)
        else:
            self._check_settings(trainer, checkpoint, state)
        return checkpoint

    def _check_trl_checkpoint(self, checkpoint: str) -> None:
        if self.features:
            raise CorruptCheckpointError(
                f"Checkpoint {checkpoint!r} holds no {STATE_FILE}: it was written by another trainer (such as "
                f"trl.GRPOTrainer), or its run was stopped while saving it. This run's "
                f"{' and '.join(self.features)} state cannot be restored from it. Resume from a checkpoint this "
                f"trainer wrote."
            )
        logger.warning(
            "Checkpoint %s holds no %s (written by trl.GRPOTrainer?): resuming as TRL does, which regenerates a "
            "generation reused across steps instead of restoring it.",
            checkpoint,
            STATE_FILE,
        )

    def _check_settings(self, trainer: Any, checkpoint: str, state: dict[str, Any]) -> None:
        for name, setting in SETTINGS.items():
            if name not in state["settings"]:
                continue
            saved, now = state["settings"][name], _jsonable(setting.read(trainer))
            if saved == now:
                continue
            refuse = setting.refuse or (
                "the checkpoint holds a generation buffered in a reuse window, laid out for the saved value"
                if setting.refuse_in_reuse_window and state["buffered_generation"]
                else None
            )
            if refuse:
                raise ValueError(
                    f"Checkpoint {checkpoint!r} was trained with {name}={saved!r}; this run has {now!r}, and "
                    f"{refuse}. Resume with {name}={saved!r}, or start a new run."
                )
            logger.warning(
                "Resuming checkpoint %s, trained with %s=%r, under %r: %s.",
                checkpoint,
                name,
                saved,
                now,
                setting.changes,
            )

    # --- resuming -------------------------------------------------------------------------------------------

    def load(self, trainer: Any, checkpoint: str) -> None:
        """Restore the extra state from a checkpoint `check_resume` accepted."""
        state = read_state(checkpoint)
        if state is None:  # TRL's checkpoint, accepted with a warning: resume as TRL does
            return
        if state["buffered_generation"]:  # at a generation boundary TRL's fresh counter is exact (and any layout)
            trainer._step = state["step"]
            path = os.path.join(checkpoint, BUFFER_FILE.format(rank=trainer.accelerator.process_index))
            buffered = torch.load(path, map_location="cpu", weights_only=True)
            trainer._buffered_inputs = send_to_device(buffered, trainer.accelerator.device)
        for feature in self.features.values():
            feature.load(checkpoint, trainer)


def read_state(checkpoint: str) -> dict[str, Any] | None:
    """The checkpoint's `STATE_FILE`, after checking every file it lists is whole; None for a checkpoint with TRL's
    files only. Raises `CorruptCheckpointError` for a checkpoint cut short or damaged."""
    path = os.path.join(checkpoint, STATE_FILE)
    if os.path.exists(os.path.join(checkpoint, SAVING_MARKER)):
        raise CorruptCheckpointError(
            f"Checkpoint {checkpoint!r} is incomplete: the run was stopped while saving it ({SAVING_MARKER} is still "
            f"there)."
        )
    if not os.path.exists(path):
        if not os.path.exists(os.path.join(checkpoint, TRAINER_STATE)):
            raise CorruptCheckpointError(
                f"Checkpoint {checkpoint!r} is incomplete: it has no {TRAINER_STATE} (the run was most likely "
                f"stopped while saving it)."
            )
        return None
    try:
        with open(path) as file:
            state = json.load(file)
        files, version = state["files"], state["format"]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise CorruptCheckpointError(f"Checkpoint {checkpoint!r} has a damaged {STATE_FILE} ({error}).") from None
    if version != FORMAT_VERSION:
        raise CorruptCheckpointError(
            f"Checkpoint {checkpoint!r} was written in state format {version}; this version of trl-grpo-plus reads "
            f"format {FORMAT_VERSION}. Resume with the trl-grpo-plus version that wrote it."
        )
    on_disk = _file_sizes(checkpoint)
    missing = sorted(set(files) - set(on_disk))
    cut = sorted(name for name, size in files.items() if name in on_disk and on_disk[name] != size)
    if missing or cut:
        problems = [f"missing: {', '.join(missing)}"] if missing else []
        problems += [f"{name} has {on_disk[name]} bytes, {files[name]} were written" for name in cut]
        raise CorruptCheckpointError(f"Checkpoint {checkpoint!r} is damaged ({'; '.join(problems)}).")
    return state


def _in_reuse_window(trainer: Any) -> bool:
    # The next micro-step reuses the buffered generation rather than generating: TRL would regenerate on resume.
    generate_every = trainer.args.steps_per_generation * trainer.num_iterations
    return trainer._buffered_inputs is not None and trainer._step % generate_every != 0


def _file_sizes(folder: str) -> dict[str, int]:
    sizes = {}
    for root, _, names in os.walk(folder):
        for name in names:
            if name in (STATE_FILE, STATE_FILE + ".tmp", SAVING_MARKER):
                continue
            path = os.path.join(root, name)
            sizes[os.path.relpath(path, folder)] = os.path.getsize(path)
    return sizes


def _earlier_complete_checkpoint(checkpoint: str) -> str | None:
    folder, name = os.path.split(os.path.normpath(checkpoint))
    match = re.fullmatch(rf"{PREFIX_CHECKPOINT_DIR}-(\d+)", name)
    if match is None or not os.path.isdir(folder):
        return None
    earlier = []
    for other in os.listdir(folder):
        found = re.fullmatch(rf"{PREFIX_CHECKPOINT_DIR}-(\d+)", other)
        if found and int(found.group(1)) < int(match.group(1)):
            earlier.append((int(found.group(1)), os.path.join(folder, other)))
    for _, path in sorted(earlier, reverse=True):
        try:
            read_state(path)
        except CorruptCheckpointError:
            continue
        return path
    return None


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=repr))
