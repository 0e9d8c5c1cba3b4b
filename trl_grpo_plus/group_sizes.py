"""Group-size schedules: the request a schedule answers, the history it reads, and the checked call.

A schedule decides, for each generation batch, how many completions each prompt gets. The number of completions
per batch is fixed (the *budget*, `generation_batch_size`), so a bigger group means fewer prompts; with
`GRPOConfig.group_size_budget="prompts"` the number of prompts is fixed instead and the completions vary.
Schedules are registered by name through `register_group_size_schedules`; `trl_grpo_plus.planner` plans batches
with them, and the trainer asks it for each generation batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from .errors import PluginError
from .groups import GroupLayout, group_spread
from .options import check_options, declared_options
from .registry import ComponentRegistry

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


class GroupSizeSchedule:
    """A registered schedule bound to its options; every answer is checked against the request."""

    CONTRACT_ARGS = ("request",)

    def __init__(self, name: str, schedules: ComponentRegistry, options: Mapping[str, Any] | None = None) -> None:
        self.name = name
        self.func: Callable[..., Sequence[int]] = schedules.resolve(name)
        self.plugin = schedules.plugin_of(name)
        if name == "constant" and set(options or {}) - {"size"}:
            raise PluginError(_options_without_a_schedule(sorted(options), schedules, self.CONTRACT_ARGS))
        self.options = check_options(
            self.func,
            options,
            contract_args=self.CONTRACT_ARGS,
            describe=self._describe(),
            config_field="GRPOConfig.group_size_kwargs",
        )

    def _describe(self) -> str:
        return f"Group-size schedule '{self.name}' (from plugin '{self.plugin}')"

    def __call__(self, request: GroupSizeRequest) -> list[int]:
        """The group size of each of the first `len(result)` prompts of `request`."""
        try:
            sizes = self.func(request, **self.options)
        except ValueError as error:  # the schedule's way of saying its options don't fit this run
            raise PluginError(
                f"{self._describe()} cannot size the batch at step {request.step}: {error}. Fix "
                f"GRPOConfig.group_size_kwargs or the batch size."
            ) from None
        except Exception as error:
            raise PluginError(
                f"{self._describe()} raised {type(error).__name__}: {error}. Fix the schedule or its options "
                f"(GRPOConfig.group_size_kwargs); the original traceback is chained above."
            ) from error
        return self._checked(list(sizes) if isinstance(sizes, Sequence) else sizes, request)

    def _checked(self, sizes: Any, request: GroupSizeRequest) -> list[int]:
        where = f"{self._describe()} returned {sizes!r} at step {request.step}"
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

    def __repr__(self) -> str:
        return f"<GroupSizeSchedule {self.name} options={self.options}>"


def _options_without_a_schedule(given: list[str], schedules: ComponentRegistry, contract_args) -> str:
    """The error for schedule options given to 'constant', the schedule in effect when none is chosen."""
    takers = [name for name in schedules if set(given) <= declared_options(schedules.resolve(name), contract_args)[0]]
    advice = (
        f"Choose the schedule they belong to with group_size_schedule: {', '.join(map(repr, takers))} "
        f"take{'s' if len(takers) == 1 else ''} {', '.join(given)}"
        if takers
        else "No installed schedule takes all of them; `trl-grpo-plus plugins` lists the schedules and their options"
    )
    return (
        f"GRPOConfig.group_size_kwargs sets {', '.join(map(repr, given))}, but group_size_schedule is 'constant' "
        f"(the default when no schedule is chosen), which takes only 'size'. {advice}, e.g. "
        f"group_size_schedule='{takers[0] if takers else 'linear'}'."
    )
