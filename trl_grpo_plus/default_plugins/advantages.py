"""Built-in advantage estimators, registered through `register_advantage_estimators` like any plugin's.

All share one signature::

    estimator(rewards_per_func: Tensor[N, R], reward_weights: Tensor[R], group_ids: LongTensor[N], **options)
        -> Tensor[N]

NaN rewards mean "not scored by that function"; a row no function scored gets advantage 0. Groups are given by id
and may differ in size. Options are keyword-only parameters, set with `GRPOConfig.advantage_kwargs`.
"""

from __future__ import annotations

import torch

from ..hookspecs import hookimpl
from ..ragged_groups import GroupLayout, nanstd, total_reward


def _centered(rewards: torch.Tensor, layout: GroupLayout) -> torch.Tensor:
    table = layout.table(rewards)
    return layout.rows(table - torch.nanmean(table, dim=1, keepdim=True))


def _batch_normalized(values: torch.Tensor, eps: float) -> torch.Tensor:
    std = nanstd(values) if values.numel() > 1 else torch.zeros((), dtype=values.dtype, device=values.device)
    return (values - torch.nanmean(values)) / (std + eps)


def _finite(advantages: torch.Tensor) -> torch.Tensor:
    return torch.nan_to_num(advantages, nan=0.0)


def grpo(rewards_per_func, reward_weights, group_ids, *, ddof: int = 1, eps: float = 1e-4):
    """GRPO (Shao et al., 2024, arXiv:2402.03300): (r - group mean) / (group std + eps).

    `r` is the weighted sum of the rewards. The defaults (Bessel-corrected std, eps 1e-4) are TRL's
    `scale_rewards="group"`; a group with a single scorable row gets 0 (its std is undefined with `ddof=1`).
    """
    layout = GroupLayout.of(group_ids)
    table = layout.table(total_reward(rewards_per_func, reward_weights))
    mean = torch.nanmean(table, dim=1, keepdim=True)
    std = nanstd(table, dim=1, ddof=ddof, keepdim=True)
    return _finite(layout.rows((table - mean) / (std + eps)))


def dr_grpo(rewards_per_func, reward_weights, group_ids):
    """Dr. GRPO (Liu et al., 2025, arXiv:2503.20783): r - group mean, without std scaling (TRL's
    `scale_rewards="none"`), which removes GRPO's bias towards groups of low reward spread."""
    return _finite(_centered(total_reward(rewards_per_func, reward_weights), GroupLayout.of(group_ids)))


def batch_std(rewards_per_func, reward_weights, group_ids, *, eps: float = 1e-4):
    """(r - group mean) / (std of r over the batch + eps): TRL's `scale_rewards="batch"` (as in Hu et al.,
    arXiv:2501.03262, and Liu et al., 2025), robust to groups of near-zero spread."""
    rewards = total_reward(rewards_per_func, reward_weights)
    std = nanstd(rewards) if rewards.numel() > 1 else torch.zeros((), dtype=rewards.dtype, device=rewards.device)
    return _finite(_centered(rewards, GroupLayout.of(group_ids)) / (std + eps))


def rloo(rewards_per_func, reward_weights, group_ids):
    """RLOO (Ahmadian et al., 2024, arXiv:2402.14740): r minus the mean of the *other* rows of the group.

    Equals n / (n - 1) * (r - group mean) for a group of n scorable rows; a group with one scorable row gets 0.
    """
    layout = GroupLayout.of(group_ids)
    table = layout.table(total_reward(rewards_per_func, reward_weights))
    count = (~torch.isnan(table)).sum(dim=1, keepdim=True)
    baseline = (torch.nansum(table, dim=1, keepdim=True) - table) / (count - 1)
    return _finite(layout.rows(torch.where(count > 1, table - baseline, torch.nan)))


def reinforce_pp(rewards_per_func, reward_weights, group_ids, *, eps: float = 1e-4):
    """REINFORCE++ with group baseline (Hu et al., 2025, arXiv:2501.03262): r - group mean, then normalized over
    the batch ((a - batch mean) / (batch std + eps)), so the advantage scale does not depend on each group's spread."""
    centered = _centered(total_reward(rewards_per_func, reward_weights), GroupLayout.of(group_ids))
    return _finite(_batch_normalized(centered, eps))


def gdpo(rewards_per_func, reward_weights, group_ids, *, eps: float = 1e-4):
    """GDPO: each reward function normalized within the group, then the weighted sum, then normalized over the
    batch. TRL's `multi_objective_aggregation="normalize_then_sum"`: one reward of large scale cannot drown the
    others."""
    layout = GroupLayout.of(group_ids)
    table = layout.table(rewards_per_func)  # [groups, size, R]
    mean = torch.nanmean(table, dim=1, keepdim=True)
    std = nanstd(table, dim=1, keepdim=True) if table.size(1) > 1 else torch.zeros_like(mean)
    normalized = layout.rows((table - mean) / (std + eps))
    rewards = (normalized * reward_weights.to(normalized).unsqueeze(0)).nansum(dim=1)
    rewards[torch.isnan(rewards_per_func).all(dim=1)] = torch.nan
    return _finite(_batch_normalized(rewards, eps))


def rank(rewards_per_func, reward_weights, group_ids):
    """Within-group rank, centered and scaled to [-1, 1]: the worst row of a group gets -1, the best +1.

    Ties share their average rank, so an all-equal group gets 0. Only the order of rewards matters, which makes it
    robust to reward scale and outliers (e.g. a reward model's logits next to a 0/1 verifier).
    """
    layout = GroupLayout.of(group_ids)
    table = layout.table(total_reward(rewards_per_func, reward_weights))
    scorable = ~torch.isnan(table)
    # For each row: how many scorable rows of its group are below it, and how many tie with it.
    below = (table.unsqueeze(2) > table.unsqueeze(1)) & scorable.unsqueeze(1)
    ties = (table.unsqueeze(2) == table.unsqueeze(1)) & scorable.unsqueeze(1)
    average_rank = below.sum(dim=2) + (ties.sum(dim=2) - 1) / 2
    count = scorable.sum(dim=1, keepdim=True)
    scaled = torch.where(count > 1, 2 * average_rank / (count - 1).clamp(min=1) - 1, 0.0)
    return _finite(layout.rows(torch.where(scorable, scaled.to(table.dtype), torch.nan)))


def _check_options(ddof=1, eps=1e-4) -> None:
    """Checks the values of the options the estimators above share (each accepts only those in its signature)."""
    if ddof not in (0, 1):
        raise ValueError(f"ddof must be 0 (population std) or 1 (Bessel-corrected, TRL's), got {ddof!r}")
    if not isinstance(eps, (int, float)) or not eps > 0:
        raise ValueError(f"eps must be a positive number, got {eps!r}")


for _estimator in (grpo, batch_std, reinforce_pp, gdpo):
    _estimator.validate_options = _check_options


@hookimpl
def register_advantage_estimators(register):
    for estimator in (grpo, dr_grpo, batch_std, rloo, reinforce_pp, gdpo, rank):
        register(estimator)
