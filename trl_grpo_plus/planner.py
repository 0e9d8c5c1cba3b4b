"""Planning each generation batch under a group-size schedule: which prompts, how many completions each.

A batch is planned when it is generated, not when the dataloader prefetches it, so an adaptive schedule sees the
outcome of every earlier batch, and a resumed run plans exactly as an uninterrupted one. Every process plans the
same batch (same prompt stream, same history from the gathered rewards) and takes its contiguous share of the
completions, as TRL lays them out: a group may span processes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .group_sizes import GroupSizeRequest, GroupSizeSchedule, ScheduleHistory

STATE_FILE = "group_size_schedule.json"


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
