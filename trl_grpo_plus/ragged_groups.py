"""Per-group statistics over completions whose groups are given by id, so groups may differ in size.

Rows are scattered into a dense NaN-padded `[groups, max_group_size]` table and reduced with NaN-aware ops. For
contiguous equal-sized groups the table is exactly TRL's `view(-1, num_generations)`, so results match TRL bit for
bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def nanstd(values: torch.Tensor, dim: int | None = None, *, ddof: int = 1, keepdim: bool = False) -> torch.Tensor:
    """Standard deviation ignoring NaNs, with `ddof` degrees of freedom removed; NaN where too few values remain.

    The operations are those of `trl.trainer.utils.nanstd`, which is the `ddof=1` case.
    """
    dims = dim if dim is not None else tuple(range(values.dim()))
    mean = torch.nanmean(values, dim=dims, keepdim=True)
    variance = torch.nanmean((values - mean) ** 2, dim=dims, keepdim=True)
    count = torch.sum(~torch.isnan(values), dim=dims, keepdim=True)
    if ddof:
        correction = count / (count - ddof)
        correction = torch.where(count > ddof, correction, torch.full_like(correction, float("nan")))
        variance = variance * correction
    std = torch.sqrt(variance)
    return std if keepdim else std.squeeze(dims) if dim is not None else std.reshape(())


@dataclass(frozen=True)
class GroupLayout:
    """Where each row sits in the dense group table: `table[group_index[i], position[i]] = row i`."""

    group_index: torch.Tensor  # [N] dense group number, 0..num_groups-1, in order of first appearance by id value
    position: torch.Tensor  # [N] slot of the row inside its group, in row order
    sizes: torch.Tensor  # [num_groups] rows per group

    @classmethod
    def of(cls, group_ids: torch.Tensor) -> GroupLayout:
        if group_ids.dim() != 1:
            raise ValueError(f"group_ids must be a 1-D tensor of group ids, got shape {tuple(group_ids.shape)}.")
        _, group_index = torch.unique(group_ids, return_inverse=True)
        sizes = torch.bincount(group_index) if group_ids.numel() else group_index.new_zeros(0)
        order = torch.argsort(group_index, stable=True)
        starts = torch.cumsum(sizes, 0) - sizes
        position = torch.empty_like(group_index)
        position[order] = torch.arange(group_ids.numel(), device=group_ids.device) - starts[group_index[order]]
        return cls(group_index, position, sizes)

    @property
    def num_groups(self) -> int:
        return self.sizes.numel()

    def table(self, values: torch.Tensor) -> torch.Tensor:
        """`values` ([N] or [N, R]) as a NaN-padded `[num_groups, max_size]` (or `[..., R]`) table."""
        width = int(self.sizes.max()) if self.num_groups else 0
        table = values.new_full((self.num_groups, width, *values.shape[1:]), float("nan"))
        table[self.group_index, self.position] = values
        return table

    def rows(self, table: torch.Tensor) -> torch.Tensor:
        """The inverse of `table`: one entry per row, in row order."""
        return table[self.group_index, self.position]

    def broadcast(self, per_group: torch.Tensor) -> torch.Tensor:
        """A per-group value repeated for each row of the group."""
        return per_group[self.group_index]


def total_reward(rewards_per_func: torch.Tensor, reward_weights: torch.Tensor) -> torch.Tensor:
    """The weighted sum of each row's rewards, skipping NaN ones; NaN where every reward is NaN (unscorable)."""
    rewards = (rewards_per_func * reward_weights.to(rewards_per_func).unsqueeze(0)).nansum(dim=1)
    rewards[torch.isnan(rewards_per_func).all(dim=1)] = torch.nan
    return rewards


def group_spread(rewards: torch.Tensor, group_ids: torch.Tensor) -> torch.Tensor:
    """Per-row max - min of the scorable rewards in its group; NaN for groups with fewer than two scorable rows."""
    layout = GroupLayout.of(group_ids)
    table = layout.table(rewards)
    scorable = ~torch.isnan(table)
    high = torch.where(scorable, table, -torch.inf).amax(dim=1)
    low = torch.where(scorable, table, torch.inf).amin(dim=1)
    spread = torch.where(scorable.sum(dim=1) >= 2, high - low, torch.nan)
    return layout.broadcast(spread)


def zero_variance_rows(
    rewards_per_func: torch.Tensor, reward_weights: torch.Tensor, group_ids: torch.Tensor, tolerance: float
) -> torch.Tensor:
    """True for each row whose group's weighted rewards spread (max - min) by at most `tolerance`.

    Groups with fewer than two scorable rows count as zero-variance too: there is nothing to compare.
    """
    spread = group_spread(total_reward(rewards_per_func, reward_weights), group_ids)
    return ~(spread > tolerance)  # NaN spread (too few scorable rows) compares False, so it is dropped
