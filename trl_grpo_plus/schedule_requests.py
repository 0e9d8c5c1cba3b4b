"""What a group-size schedule is asked, and the history it reads: the public API for schedule authors.

A schedule (`trl_grpo_plus.hookspecs.GroupSizeScheduleFunction`) decides, for each generation batch, how many
completions each prompt gets. The number of completions per batch is fixed (the *budget*, `generation_batch_size`),
so a bigger group means fewer prompts; with `GRPOConfig.group_size_budget="prompts"` the number of prompts is fixed
instead and the completions vary. `trl_grpo_plus.group_size_planning` asks the schedule for each generation batch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from .ragged_groups import GroupLayout, group_spread

MIN_GROUP_SIZE = 2  # one completion has nothing to be compared with
PROMPT_HISTORY_LENGTH = 64  # rewards kept per prompt, the most recent ones
BATCH_HISTORY_LENGTH = 1000  # batch records kept, the most recent ones (checkpoints stay small on long runs)


def even_sizes(completions: int, size: int) -> list[int]:
    """Groups of (about) `size` filling exactly `completions`: `completions // size` groups whose sizes differ by
    at most one, none below `size` (16 at size 3 -> [3, 3, 3, 3, 4]).

    Raises `ValueError` when `size` is below 2 or larger than `completions`.
    """
    _check_group_size(size)
    if size > completions:
        raise ValueError(
            f"group size {size} does not fit a generation batch of {completions} completions; raise "
            f"generation_batch_size (or per_device_train_batch_size) to at least {size}, or lower the group size"
        )
    num_groups = completions // size
    base, extra = divmod(completions, num_groups)
    return [base] * (num_groups - extra) + [base + 1] * extra


def _check_group_size(size: int) -> None:
    if size < MIN_GROUP_SIZE:
        raise ValueError(f"group size {size} is below {MIN_GROUP_SIZE}; a group needs two completions to compare")


@dataclass
class PromptRecord:
    """What one prompt's groups scored so far: the weighted total reward of its most recent completions."""

    rewards: list[float] = field(default_factory=list)
    groups: int = 0

    def pass_rate(self, threshold: float, prior: float = 1.0) -> float:
        """Share of completions with reward >= `threshold`, smoothed toward 1/2 by `prior` pseudo-counts each side
        (0.5 for an unseen prompt)."""
        passes = sum(reward >= threshold for reward in self.rewards)
        return (passes + prior) / (len(self.rewards) + 2 * prior)


@dataclass
class BatchRecord:
    """One generation batch: its step, group sizes and share of zero-variance groups."""

    step: int
    sizes: list[int]
    zero_variance_share: float


@dataclass
class ScheduleHistory:
    """Outcomes of the generation batches so far, for schedules to adapt to; saved in checkpoints.

    `prompts` maps a dataset index to its `PromptRecord`; `batches` lists the last 1,000 batches in order; `state`
    is free JSON-serializable room for a plugin schedule's own bookkeeping.
    """

    prompts: dict[int, PromptRecord] = field(default_factory=dict)
    batches: list[BatchRecord] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)

    def record(
        self, step: int, prompt_indices: Sequence[int], sizes: Sequence[int], rewards: torch.Tensor, tolerance: float
    ) -> None:
        """Add a batch: `rewards` holds each completion's weighted total reward (NaN if unscorable), grouped in
        order by `sizes`, group g belonging to dataset prompt `prompt_indices[g]`."""
        group_ids = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(list(sizes)))
        spread = group_spread(rewards.float().cpu(), group_ids)
        layout = GroupLayout.of(group_ids)
        dead = ~(layout.table(spread)[:, 0] > tolerance)  # as filtering counts it: too few scorable rows is dead
        for group, index in enumerate(prompt_indices):
            record = self.prompts.setdefault(int(index), PromptRecord())
            values = rewards[group_ids == group]
            record.rewards = (record.rewards + [float(v) for v in values if not math.isnan(v)])[
                -PROMPT_HISTORY_LENGTH:
            ]
            record.groups += 1
        share = float(dead.float().mean()) if len(sizes) else 0.0
        self.batches.append(BatchRecord(int(step), [int(s) for s in sizes], share))
        del self.batches[:-BATCH_HISTORY_LENGTH]

    def recent_zero_variance_share(self, window: int) -> float | None:
        """Mean zero-variance share of the last `window` batches; None before the first batch."""
        recent = self.batches[-window:]
        return sum(batch.zero_variance_share for batch in recent) / len(recent) if recent else None

    def state_dict(self) -> dict[str, Any]:
        return {
            "prompts": {str(i): {"rewards": r.rewards, "groups": r.groups} for i, r in self.prompts.items()},
            "batches": [[b.step, b.sizes, b.zero_variance_share] for b in self.batches],
            "state": self.state,
        }

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> ScheduleHistory:
        return cls(
            prompts={int(i): PromptRecord(**record) for i, record in state["prompts"].items()},
            batches=[BatchRecord(step, sizes, share) for step, sizes, share in state["batches"]],
            state=dict(state["state"]),
        )


@dataclass(frozen=True)
class GroupSizeRequest:
    """What a schedule is asked for one generation batch.

    - `step`: the optimizer step at which the batch is generated (`trainer.state.global_step`).
    - `prompts`: dataset indices of the candidate prompts, in data order. The schedule sizes a prefix of them;
      the rest come first in the next batch, so no prompt is skipped.
    - `examples`: the dataset rows of `prompts`, read on access.
    - `completions`: the budget the sizes must sum to; None when the number of prompts is fixed instead.
    - `num_prompts`: with a fixed number of prompts, exactly this many sizes are expected; else None.
    - `num_generations`: `GRPOConfig.num_generations`, the configured (base) group size.
    - `history`: outcomes of the earlier batches.
    """

    step: int
    prompts: Sequence[int]
    examples: Sequence[Mapping[str, Any]]
    completions: int | None
    num_prompts: int | None
    num_generations: int
    history: ScheduleHistory

    def uniform(self, size: int) -> list[int]:
        """Every group of (about) `size`: the budget split evenly, or `size` for each of the fixed prompts."""
        if self.num_prompts is not None:
            _check_group_size(size)
            return [size] * self.num_prompts
        return even_sizes(self.completions, size)

    @property
    def prompt_count(self) -> int:
        """How many prompts a per-prompt schedule sizes: the fixed count, or the budget at `num_generations`."""
        return self.num_prompts if self.num_prompts is not None else self.completions // self.num_generations
