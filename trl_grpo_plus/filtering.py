"""Zero-variance group filtering and DAPO-style dynamic sampling, as plain functions over rewards and rows.

A group whose rewards all (nearly) agree has zero advantage under every group-baseline estimator: it teaches
nothing, yet costs a full policy forward/backward and dilutes a token-normalized loss. `KeptPool` collects the
groups that do carry signal, over one or more generation rounds, until a batch is full (Yu et al., 2025, DAPO,
arXiv:2503.14476). The trainer glue lives in `trl_grpo_plus.trainer`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from .groups import group_spread, total_reward


def zero_variance_rows(
    rewards_per_func: torch.Tensor, reward_weights: torch.Tensor, group_ids: torch.Tensor, tolerance: float
) -> torch.Tensor:
    """True for each row whose group's weighted rewards spread (max - min) by at most `tolerance`.

    Groups with fewer than two scorable rows count as zero-variance too: there is nothing to compare.
    """
    spread = group_spread(total_reward(rewards_per_func, reward_weights), group_ids)
    return ~(spread > tolerance)  # NaN spread (too few scorable rows) compares False, so it is dropped


@dataclass
class Rollouts:
    """Completions of one or more generation rounds across all processes, in global order.

    `rows[i]` holds everything needed to replay completion i through TRL's scoring (its dataset row, prompt,
    token ids, ...); `rewards_per_func[i]` its rewards; `group_ids[i]` its group, unique across rounds.
    """

    rows: list[dict[str, Any]]
    rewards_per_func: torch.Tensor
    group_ids: torch.Tensor

    def __len__(self) -> int:
        return len(self.rows)

    def select(self, indices: Sequence[int] | torch.Tensor) -> Rollouts:
        index = torch.as_tensor(indices, dtype=torch.long)
        return Rollouts([self.rows[i] for i in index.tolist()], self.rewards_per_func[index], self.group_ids[index])

    @staticmethod
    def concat(parts: Sequence[Rollouts], num_reward_funcs: int) -> Rollouts:
        if not parts:
            return Rollouts([], torch.empty(0, num_reward_funcs), torch.empty(0, dtype=torch.long))
        return Rollouts(
            [row for part in parts for row in part.rows],
            torch.cat([part.rewards_per_func for part in parts]),
            torch.cat([part.group_ids for part in parts]),
        )


@dataclass
class KeptPool:
    """The groups with signal kept so far for one batch, at most `target_rows` completions in whole groups."""

    target_rows: int
    num_reward_funcs: int
    tolerance: float
    parts: list[Rollouts] = field(default_factory=list)
    kept_rows: int = 0
    generated_groups: int = 0
    dropped_groups: int = 0
    rounds: int = 0
    generated: list[Rollouts] = field(default_factory=list)

    @property
    def full(self) -> bool:
        return self.kept_rows >= self.target_rows

    def add(self, rollouts: Rollouts, reward_weights: torch.Tensor) -> None:
        """Keep the groups of `rollouts` that have signal, in order, while they fit in the batch."""
        self.rounds += 1
        self.generated.append(rollouts)
        dead = zero_variance_rows(rollouts.rewards_per_func, reward_weights, rollouts.group_ids, self.tolerance)
        groups = list(dict.fromkeys(rollouts.group_ids.tolist()))  # in order of appearance
        self.generated_groups += len(groups)
        keep = []
        for group in groups:
            members = (rollouts.group_ids == group).nonzero().flatten()
            if dead[members].all():
                self.dropped_groups += 1
            elif self.kept_rows + len(members) <= self.target_rows:  # whole groups only; DAPO trims the excess
                keep.append(members)
                self.kept_rows += len(members)
        if keep:
            self.parts.append(rollouts.select(torch.cat(keep)))

    def kept(self) -> Rollouts:
        return Rollouts.concat(self.parts, self.num_reward_funcs)

    def all_generated(self) -> Rollouts:
        return Rollouts.concat(self.generated, self.num_reward_funcs)


def process_share(num_rows: int, num_processes: int, process_index: int) -> slice:
    """This process's rows of `num_rows`: an equal share for every process, in order.

    Every rank must run the same forward/backward passes, so the `num_rows % num_processes` trailing rows (fewer
    than one per process) are left out.
    """
    share = num_rows // num_processes
    return slice(process_index * share, (process_index + 1) * share)


def split_rows(batch: Mapping[str, Any], num_chunks: int) -> list[dict[str, Any]]:
    """Split a batch's per-row values into `num_chunks` consecutive chunks whose sizes differ by at most one.

    Unlike TRL's `split_tensor_dict`, which needs the rows to divide evenly, no row is lost; chunks may be empty when
    there are fewer rows than chunks. Scalars (0-d tensors) and `None` are passed to every chunk.
    """
    num_rows = next(len(value) for value in batch.values() if _is_per_row(value))
    base, extra = divmod(num_rows, num_chunks)
    bounds = [0]
    for chunk in range(num_chunks):
        bounds.append(bounds[-1] + base + (1 if chunk < extra else 0))
    return [
        {key: value[start:stop] if _is_per_row(value) else value for key, value in batch.items()}
        for start, stop in zip(bounds, bounds[1:], strict=False)
    ]


def _is_per_row(value: Any) -> bool:
    return isinstance(value, list) or (isinstance(value, torch.Tensor) and value.dim() > 0)
