"""The advantage-estimator feature: the estimator chosen by name, its checked calls, and what TRL's settings mean.

TRL's own settings map onto estimator names (`TRL_EQUIVALENTS`), so a TRL config keeps its meaning.

TRL seam (see `trainer.py`): `_generate_and_score_completions` keeps TRL's scoring and replaces only its
`advantages` (`set_advantages`), computed from the rewards `_calculate_rewards` produced.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from .components import BoundComponent
from .errors import PluginError

# TRL's (multi_objective_aggregation, scale_rewards) -> the estimator that computes the same advantages.
TRL_EQUIVALENTS = {
    ("sum_then_normalize", "group"): "grpo",
    ("sum_then_normalize", "none"): "dr_grpo",
    ("sum_then_normalize", "batch"): "batch_std",
    ("normalize_then_sum", "group"): "gdpo",
    ("normalize_then_sum", "none"): "gdpo",
    ("normalize_then_sum", "batch"): "gdpo",
}
TRL_DEFAULT_SETTINGS = ("sum_then_normalize", "group")


class AdvantageEstimator(BoundComponent):
    """A registered estimator bound to its options; calls are checked for the contract (shape, finite values)."""

    kind = "Advantage estimator"
    contract_args = ("rewards_per_func", "reward_weights", "group_ids")
    config_field = "GRPOConfig.advantage_kwargs"

    def __call__(
        self, rewards_per_func: torch.Tensor, reward_weights: torch.Tensor, group_ids: torch.Tensor
    ) -> torch.Tensor:
        """Advantages `[N]` for `rewards_per_func` `[N, R]`; rows no reward function scored get 0."""
        try:
            advantages = self.func(rewards_per_func, reward_weights, group_ids, **self.options)
        except Exception as error:
            raise PluginError(self.failed(error)) from error
        expected = (rewards_per_func.size(0),)
        if not isinstance(advantages, torch.Tensor) or tuple(advantages.shape) != expected:
            got = tuple(advantages.shape) if isinstance(advantages, torch.Tensor) else type(advantages).__name__
            raise PluginError(
                f"{self.describe()} returned {got} for {expected[0]} completions; it must return a tensor of shape "
                f"{expected}, one advantage per completion."
            )
        if not torch.isfinite(advantages).all():
            raise PluginError(
                f"{self.describe()} returned NaN or infinite advantages for rewards {rewards_per_func.tolist()} "
                f"(groups {group_ids.tolist()}); it must return finite values (0 for completions it cannot score)."
            )
        unscorable = torch.isnan(rewards_per_func).all(dim=1)
        return advantages.to(rewards_per_func.dtype).masked_fill(unscorable, 0.0)

    def check(self, num_reward_funcs: int) -> None:
        """Call the estimator once on a small ragged batch with an unscorable row, so a broken estimator fails at
        start-up rather than after the first generation."""
        rewards = torch.tensor([[0.1 * (i + 1) * (-1) ** i] * num_reward_funcs for i in range(7)])
        rewards[3] = torch.nan  # a completion no reward function could score
        group_ids = torch.tensor([0, 0, 0, 1, 1, 2, 2])
        self(rewards, torch.ones(num_reward_funcs), group_ids)


def resolve_estimator_name(args: Any) -> str:
    """The advantage estimator `args` selects: `advantage_estimator`, or the one TRL's own settings amount to."""
    if args.advantage_estimator is not None:
        return args.advantage_estimator
    settings = (args.multi_objective_aggregation, args.scale_rewards)
    if settings not in TRL_EQUIVALENTS:
        raise ValueError(
            f"Unknown TRL advantage settings multi_objective_aggregation={settings[0]!r}, scale_rewards={settings[1]!r}. "
            f"multi_objective_aggregation must be 'sum_then_normalize' or 'normalize_then_sum'; scale_rewards 'group', "
            f"'batch' or 'none'."
        )
    return TRL_EQUIVALENTS[settings]


def check_config(args: Any) -> None:
    """Refuse bad estimator settings of a `GRPOConfig`, before any model is loaded."""
    if args.advantage_kwargs is not None and not isinstance(args.advantage_kwargs, dict):
        raise ValueError(
            f'advantage_kwargs must be a dict of the estimator\'s options, e.g. {{"ddof": 0}}; got '
            f"{args.advantage_kwargs!r}."
        )
    if args.advantage_estimator is not None and not (
        isinstance(args.advantage_estimator, str) and args.advantage_estimator
    ):
        raise ValueError(f"advantage_estimator must be an estimator name, got {args.advantage_estimator!r}.")
    settings = (args.multi_objective_aggregation, args.scale_rewards)
    if settings not in TRL_EQUIVALENTS:
        return  # TRL's own validation reports invalid values of its fields
    trl_choice = TRL_EQUIVALENTS[settings]
    if args.advantage_estimator is not None and settings != TRL_DEFAULT_SETTINGS:
        if args.advantage_estimator != trl_choice:
            raise ValueError(
                f"advantage_estimator={args.advantage_estimator!r} contradicts TRL's "
                f"multi_objective_aggregation={settings[0]!r} with scale_rewards={settings[1]!r}, which selects "
                f"'{trl_choice}'. Set only one of them: drop scale_rewards / multi_objective_aggregation, or "
                f"advantage_estimator."
            )


def contiguous_group_ids(num_rows: int, group_size: int, device: torch.device | str, first: int = 0) -> torch.Tensor:
    """TRL's layout: contiguous groups of `group_size` completions, numbered from `first`."""
    return first + torch.arange(num_rows, device=device) // group_size


def set_advantages(output: dict[str, Any], advantages: torch.Tensor, process_index: int, logs: Mapping) -> None:
    """Put this process's share of `advantages` (all processes' rows) in place of TRL's in `output`, and in the
    completions table TRL logs (`logs["advantages"]`, where TRL appended its own values last)."""
    local = output["advantages"]
    start = process_index * len(local)
    output["advantages"] = advantages[start : start + len(local)].to(local)
    logged = logs["advantages"]
    for _ in range(min(len(advantages), len(logged))):
        logged.pop()
    logged.extend(advantages.tolist())
