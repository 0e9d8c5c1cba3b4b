"""The group-size schedule feature: the bound schedule, the batch planner, its trainer glue, refusals and metrics.

A batch is planned when it is generated, not when the dataloader prefetches it, so an adaptive schedule sees the
outcome of every earlier batch, and a resumed run plans exactly as an uninterrupted one. Every process plans the
same batch (same prompt stream, same history from the gathered rewards) and takes its contiguous share of the
completions, as TRL lays them out: a group may span processes.

TRL seams (see `trainer.py`): `_generate_and_score_completions` takes `GroupSizePlanner.next_inputs` in place of the
dataloader's rows and hands the outcome to `record_outcome`; `_save_checkpoint` / `_load_optimizer_and_scheduler`
call `save` / `load`. When the schedule is TRL's own fixed group size, `GroupSizePlanner.for_run` returns None and
TRL's sampler lays out the data, untouched.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import datasets
import torch
from torch.utils.data import IterableDataset

from .batch_rows import process_share
from .components import BoundComponent, declared_options
from .errors import PluginError
from .ragged_groups import total_reward, zero_variance_rows
from .schedule_requests import MIN_GROUP_SIZE, GroupSizeRequest, ScheduleHistory

if TYPE_CHECKING:
    from .registry import ComponentRegistry

logger = logging.getLogger(__name__)

STATE_FILE = "group_size_schedule.json"
DEFAULT_SCHEDULE = "constant"  # GRPOConfig.group_size_schedule's default: TRL's fixed num_generations


def check_config(args: Any) -> None:
    """Refuse bad schedule settings of a `GRPOConfig`, before any model is loaded."""
    if not isinstance(args.group_size_schedule, str) or not args.group_size_schedule:
        raise ValueError(f"group_size_schedule must be a schedule name, got {args.group_size_schedule!r}.")
    if args.group_size_kwargs is not None and not isinstance(args.group_size_kwargs, dict):
        raise ValueError(
            f'group_size_kwargs must be a dict of the schedule\'s options, e.g. {{"start": 4, "end": 16, '
            f'"steps": 200}}; got {args.group_size_kwargs!r}.'
        )
    if args.group_size_budget not in ("completions", "prompts"):
        raise ValueError(
            f"group_size_budget must be 'completions' (fixed completions per batch) or 'prompts' (fixed prompts "
            f"per batch), got {args.group_size_budget!r}."
        )
    if args.dynamic_sampling and args.group_size_schedule != DEFAULT_SCHEDULE:
        raise ValueError(
            f"dynamic_sampling refills batches with groups of num_generations, which a group-size schedule "
            f"('{args.group_size_schedule}') does not keep. Use dynamic_sampling or a group-size schedule, not "
            f"both (filter_zero_variance_groups alone works with schedules)."
        )


class GroupSizeSchedule(BoundComponent):
    """A registered schedule bound to its options; every answer is checked against the request."""

    kind = "Group-size schedule"
    contract_args = ("request",)
    config_field = "GRPOConfig.group_size_kwargs"

    @classmethod
    def resolve(cls, name: str, registry: ComponentRegistry, options: Mapping[str, Any] | None = None):
        func = registry.resolve(name)
        if name == DEFAULT_SCHEDULE and options:
            # Options given with no schedule chosen most likely belong to the schedule the user forgot to name.
            undeclared = sorted(set(options) - declared_options(func, cls.contract_args)[0])
            if undeclared:
                raise PluginError(_options_without_a_schedule(sorted(options), registry, cls.contract_args))
        return cls(func, name, registry.plugin_of(name), options)

    def fixed_size(self, num_generations: int) -> int | None:
        """The one group size this schedule always answers, if it says so (`func.fixed_size(num_generations,
        **options)`); then, at `num_generations`, TRL's own sampler lays out the groups."""
        fixed = getattr(self.func, "fixed_size", None)
        if fixed is None:
            return None
        try:
            return fixed(num_generations, **self.options)
        except Exception as error:
            raise PluginError(self.failed(error, "Fix the schedule's `fixed_size`")) from error

    def __call__(self, request: GroupSizeRequest) -> list[int]:
        """The group size of each of the first `len(result)` prompts of `request`."""
        try:
            sizes = self.func(request, **self.options)
        except ValueError as error:  # the schedule's way of saying its options don't fit this run
            raise PluginError(
                f"{self.describe()} cannot size the batch at step {request.step}: {error}. Fix "
                f"GRPOConfig.group_size_kwargs or the batch size."
            ) from None
        except Exception as error:
            raise PluginError(self.failed(error)) from error
        return self._checked(list(sizes) if isinstance(sizes, Sequence) else sizes, request)

    def _checked(self, sizes: Any, request: GroupSizeRequest) -> list[int]:
        where = f"{self.describe()} returned {sizes!r} at step {request.step}"
        if not isinstance(sizes, list) or not all(isinstance(s, int) and not isinstance(s, bool) for s in sizes):
            raise PluginError(f"{where}; it must return a list of int group sizes, one per prompt it uses.")
        if not sizes:
            raise PluginError(f"{where}; it must size at least one prompt.")
        if min(sizes) < MIN_GROUP_SIZE:
            raise PluginError(f"{where}: group size {min(sizes)} is below {MIN_GROUP_SIZE}; every group needs two.")
        if request.num_prompts is not None:
            if len(sizes) != request.num_prompts:
                raise PluginError(
                    f"{where}: {len(sizes)} sizes, but the number of prompts per batch is fixed at "
                    f"{request.num_prompts} (group_size_budget='prompts'); return one size per prompt."
                )
        else:
            if len(sizes) > len(request.prompts):
                raise PluginError(f"{where}: {len(sizes)} sizes for {len(request.prompts)} candidate prompts.")
            if sum(sizes) != request.completions:
                raise PluginError(
                    f"{where}: the sizes sum to {sum(sizes)}, but a generation batch holds exactly "
                    f"{request.completions} completions (generation_batch_size); they must sum to it."
                )
        return sizes


def _options_without_a_schedule(given: list[str], schedules: ComponentRegistry, contract_args) -> str:
    """The error for schedule options given to the default schedule, in effect when none is chosen."""
    takers = [name for name in schedules if set(given) <= declared_options(schedules.resolve(name), contract_args)[0]]
    advice = (
        f"Choose the schedule they belong to with group_size_schedule: {', '.join(map(repr, takers))} "
        f"take{'s' if len(takers) == 1 else ''} {', '.join(given)}"
        if takers
        else "No installed schedule takes all of them; `trl-grpo-plus plugins` lists the schedules and their options"
    )
    own = sorted(declared_options(schedules.resolve(DEFAULT_SCHEDULE), contract_args)[0])
    takes = f"takes only {', '.join(map(repr, own))}" if own else "takes no options"
    return (
        f"GRPOConfig.group_size_kwargs sets {', '.join(map(repr, given))}, but group_size_schedule is "
        f"'{DEFAULT_SCHEDULE}' (the default when no schedule is chosen), which {takes}. {advice}, e.g. "
        f"group_size_schedule='{takers[0] if takers else 'linear'}'."
    )


class PromptStream:
    """Dataset indices in an endless sequence of seeded permutations (one per pass), read from a cursor.

    Index `j` of the stream depends only on (`seed`, `j`), so saving the cursor is enough to resume it.
    """

    def __init__(self, num_examples: int, seed: int, shuffle: bool = True) -> None:
        if num_examples < 1:
            raise ValueError("the training dataset is empty; a group-size schedule needs prompts to plan")
        self.num_examples = num_examples
        self.seed = seed
        self.shuffle = shuffle
        self.cursor = 0
        self._pass: tuple[int, list[int]] | None = None

    def _permutation(self, number: int) -> list[int]:
        if self._pass is None or self._pass[0] != number:
            if self.shuffle:
                generator = torch.Generator().manual_seed(self.seed + number)
                order = torch.randperm(self.num_examples, generator=generator).tolist()
            else:
                order = list(range(self.num_examples))
            self._pass = (number, order)
        return self._pass[1]

    def peek(self, count: int) -> list[int]:
        """The next `count` indices, without moving the cursor."""
        return [
            self._permutation(j // self.num_examples)[j % self.num_examples]
            for j in range(self.cursor, self.cursor + count)
        ]

    def advance(self, count: int) -> None:
        self.cursor += count


@dataclass(frozen=True)
class BatchPlan:
    """One generation batch: group g is `sizes[g]` completions of dataset prompt `prompts[g]`, in order."""

    step: int
    prompts: list[int]
    sizes: list[int]

    @property
    def rows(self) -> list[int]:
        """The dataset index of every completion, in global order."""
        return [index for index, size in zip(self.prompts, self.sizes, strict=True) for _ in range(size)]

    @property
    def group_ids(self) -> torch.Tensor:
        return torch.repeat_interleave(torch.arange(len(self.sizes)), torch.tensor(self.sizes))

    def metrics(self) -> dict[str, float]:
        sizes = torch.tensor(self.sizes, dtype=torch.float32)
        return {
            "group_size/mean": sizes.mean().item(),
            "group_size/min": sizes.min().item(),
            "group_size/max": sizes.max().item(),
            "group_size/prompts_per_batch": float(len(self.sizes)),
        }


class GroupSizePlanner:
    """Plans generation batches from a prompt stream with a schedule, and records their outcomes.

    Args:
        schedule: the bound schedule.
        dataset: the map-style training dataset.
        completions: completions per batch (the budget), or None when `num_prompts` is fixed instead.
        num_prompts: prompts per batch when fixed, else None.
        num_generations: the configured group size.
        num_processes: completions per batch are padded to a multiple of this (fixed-prompts mode only; a fixed
            budget already divides evenly), one more completion for the first groups.
    """

    def __init__(
        self,
        schedule: GroupSizeSchedule,
        dataset: Sequence[Mapping[str, Any]],
        *,
        completions: int | None,
        num_prompts: int | None,
        num_generations: int,
        num_processes: int,
        seed: int,
        shuffle: bool = True,
        zero_variance_tolerance: float = 1e-6,
    ) -> None:
        self.schedule = schedule
        self.dataset = dataset
        self.completions = completions
        self.num_prompts = num_prompts
        self.num_generations = num_generations
        self.num_processes = num_processes
        self.zero_variance_tolerance = zero_variance_tolerance
        self.stream = PromptStream(len(dataset), seed, shuffle)
        self.history = ScheduleHistory()
        self.current: BatchPlan | None = None  # the batch being trained

    @classmethod
    def for_run(
        cls, schedule: GroupSizeSchedule, args: Any, trl_arguments: Mapping[str, Any]
    ) -> GroupSizePlanner | None:
        """The planner for `schedule` in this run, checked against its first steps; None when the schedule is
        TRL's fixed group size. Refuses settings under which TRL lays out groups of `num_generations` itself."""
        if schedule.fixed_size(args.num_generations) == args.num_generations:
            return None
        dataset = trl_arguments.get("train_dataset")
        unsupported = []
        if args.use_vllm:
            unsupported.append("use_vllm (TRL's vLLM generation assumes num_generations completions per prompt)")
        if dataset is None or isinstance(dataset, IterableDataset | datasets.IterableDataset):
            unsupported.append("an iterable or missing train_dataset (planning reads prompts by index)")
        if args.dynamic_sampling:
            unsupported.append("dynamic_sampling (its refills are groups of num_generations)")
        fixed_prompts = args.group_size_budget == "prompts"
        if fixed_prompts and {"image", "images"} & set(getattr(dataset, "column_names", None) or ()):
            unsupported.append("image datasets with group_size_budget='prompts'")
        if unsupported:
            raise ValueError(
                f"group_size_schedule='{schedule.name}' is not supported with " + "; ".join(unsupported) + ". Use "
                f"group_size_schedule='{DEFAULT_SCHEDULE}', or drop that setting."
            )
        planner = cls(
            schedule,
            dataset,
            completions=None if fixed_prompts else args.generation_batch_size,
            num_prompts=args.generation_batch_size // args.num_generations if fixed_prompts else None,
            num_generations=args.num_generations,
            num_processes=max(args.world_size, 1),
            seed=args.seed,
            shuffle=args.shuffle_dataset,
            zero_variance_tolerance=args.zero_variance_tolerance,
        )
        planner.check(_steps_to_check(args, len(dataset)))
        return planner

    def attach(self, trainer: Any) -> None:
        """Read prompts as TRL's dataloader hands them over (it drops unused columns when asked to)."""
        if isinstance(trainer.train_dataset, datasets.Dataset):
            self.dataset = trainer._remove_unused_columns(trainer.train_dataset, description="training")

    @property
    def ragged_batches(self) -> bool:
        """Whether a batch's row count varies (a fixed number of prompts), so it need not split evenly."""
        return self.num_prompts is not None

    def next_inputs(self, step: int, process_index: int, num_processes: int) -> list[dict[str, Any]]:
        """Plan the generation batch at `step` and return this process's share of its rows (one per completion)."""
        self.current = self.plan(step)
        rows = self.current.rows
        share = process_share(len(rows), num_processes, process_index)
        return [self.dataset[index] for index in rows[share]]

    def record_outcome(
        self,
        rewards_per_func: torch.Tensor,
        reward_weights: torch.Tensor,
        metrics: Mapping[str, list[float]],
        *,
        replace_zero_std_share: bool,
    ) -> None:
        """Give the schedule the current batch's outcome (all processes' rewards, in plan order) and log its sizes.
        With `replace_zero_std_share`, also log the share of completions in zero-variance groups in place of TRL's,
        which assumed groups of num_generations (filtering logs its own, over every completion it generated)."""
        self.record(self.current, total_reward(rewards_per_func, reward_weights))
        for key, value in self.current.metrics().items():
            metrics[key].append(value)
        if replace_zero_std_share:
            group_ids = self.current.group_ids.to(rewards_per_func.device)
            zero = zero_variance_rows(rewards_per_func, reward_weights, group_ids, self.zero_variance_tolerance)
            metrics["frac_reward_zero_std"][-1] = zero.float().mean().item()

    def save(self, checkpoint_folder: str) -> None:
        with open(os.path.join(checkpoint_folder, STATE_FILE), "w") as file:
            json.dump(self.state_dict(), file)

    def load(self, checkpoint: str, trainer: Any = None) -> None:
        # A checkpoint without this file is refused before resuming (trl_grpo_plus.checkpoints), never started afresh
        with open(os.path.join(checkpoint, STATE_FILE)) as file:
            self.load_state_dict(json.load(file))

    def describe(self) -> str:
        return f", {self.completions} completions per batch" if self.completions else f", {self.num_prompts} prompts"

    def request(self, step: int, history: ScheduleHistory | None = None) -> GroupSizeRequest:
        """The question for the batch at `step`; candidates are read from the stream without consuming them."""
        count = self.num_prompts if self.num_prompts is not None else self.completions // 2
        prompts = self.stream.peek(count)
        return GroupSizeRequest(
            step=step,
            prompts=prompts,
            examples=_Rows(self.dataset, prompts),
            completions=self.completions,
            num_prompts=self.num_prompts,
            num_generations=self.num_generations,
            history=self.history if history is None else history,
        )

    def plan(self, step: int) -> BatchPlan:
        """Plan the next batch and consume its prompts from the stream."""
        request = self.request(step)
        sizes = self.schedule(request)
        if self.num_prompts is not None:
            sizes = _pad_to_multiple(sizes, self.num_processes)
        self.stream.advance(len(sizes))
        return BatchPlan(step, list(request.prompts[: len(sizes)]), sizes)

    def check(self, steps: range) -> None:
        """Ask the schedule for every step in `steps` against an empty history, so a size that the batch cannot
        hold fails before training rather than at that step. Consumes nothing."""
        for step in steps:
            self.schedule(self.request(step, history=ScheduleHistory()))

    def record(self, plan: BatchPlan, rewards: torch.Tensor) -> None:
        """Record the weighted total reward of each completion of `plan` (global order)."""
        self.history.record(plan.step, plan.prompts, plan.sizes, rewards, self.zero_variance_tolerance)

    def state_dict(self) -> dict[str, Any]:
        return {"schedule": self.schedule.name, "cursor": self.stream.cursor, "history": self.history.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state["schedule"] != self.schedule.name:
            raise ValueError(
                f"The checkpoint was trained with group-size schedule '{state['schedule']}', but this run uses "
                f"'{self.schedule.name}'. Resume with the same group_size_schedule, or start a new run."
            )
        self.stream.cursor = int(state["cursor"])
        self.history = ScheduleHistory.from_state_dict(state["history"])


def _pad_to_multiple(sizes: list[int], multiple: int) -> list[int]:
    # Every process must hold the same number of completions; the first groups take one more.
    sizes = list(sizes)
    for extra in range(-sum(sizes) % multiple):
        sizes[extra % len(sizes)] += 1
    return sizes


class _Rows(Sequence):
    """Dataset rows by index, read on access."""

    def __init__(self, dataset: Sequence[Mapping[str, Any]], indices: Sequence[int]) -> None:
        self._dataset = dataset
        self._indices = indices

    def __getitem__(self, position):
        if isinstance(position, slice):
            return [self._dataset[i] for i in self._indices[position]]
        return self._dataset[self._indices[position]]

    def __len__(self) -> int:
        return len(self._indices)


def _steps_to_check(args: Any, num_examples: int, most: int = 2000) -> list[int]:
    """The optimizer steps the run will generate at, or an even sample of `most` of them with the last."""
    if args.max_steps > 0:
        last = args.max_steps
    else:  # epochs, counted as TRL's sampler counts them (at the configured group size)
        batches = num_examples // (args.generation_batch_size // args.num_generations)
        micro_steps = batches * args.steps_per_generation * args.num_iterations
        last = math.ceil(args.num_train_epochs * micro_steps / args.gradient_accumulation_steps)
    if last <= most:
        return list(range(last + 1))
    return sorted({round(i * last / most) for i in range(most + 1)})
