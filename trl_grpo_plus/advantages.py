"""Choosing and calling the advantage estimator: by name from the registry, with options, with its output checked.

TRL's own settings map onto estimator names (`estimator_for_trl_settings`), so a TRL config keeps its meaning.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from .errors import PluginError
from .options import check_options
from .registry import ComponentRegistry

_CONTRACT_ARGS = ("rewards_per_func", "reward_weights", "group_ids")

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


def estimator_for_trl_settings(multi_objective_aggregation: str, scale_rewards: str) -> str:
    """The estimator that reproduces TRL's advantage under its `multi_objective_aggregation` / `scale_rewards`."""
    return TRL_EQUIVALENTS[(multi_objective_aggregation, scale_rewards)]


class AdvantageEstimator:
    """A registered estimator bound to its options; calls are checked for the contract (shape, finite values)."""

    def __init__(self, name: str, estimators: ComponentRegistry, options: Mapping[str, Any] | None = None) -> None:
        self.name = name
        self.func: Callable[..., torch.Tensor] = estimators.resolve(name)
        self.plugin = estimators.plugin_of(name)
        self.options = check_options(
            self.func,
            options,
            contract_args=_CONTRACT_ARGS,
            describe=self._describe(),
            config_field="GRPOConfig.advantage_kwargs",
        )

    def _describe(self) -> str:
        return f"Advantage estimator '{self.name}' (from plugin '{self.plugin}')"

    def __call__(
        self, rewards_per_func: torch.Tensor, reward_weights: torch.Tensor, group_ids: torch.Tensor
    ) -> torch.Tensor:
        """Advantages `[N]` for `rewards_per_func` `[N, R]`; rows no reward function scored get 0."""
        try:
            advantages = self.func(rewards_per_func, reward_weights, group_ids, **self.options)
        except Exception as error:
            raise PluginError(
                f"{self._describe()} raised {type(error).__name__}: {error}. Fix the estimator or its options "
                f"(GRPOConfig.advantage_kwargs); the original traceback is chained above."
            ) from error
        expected = (rewards_per_func.size(0),)
        if not isinstance(advantages, torch.Tensor) or tuple(advantages.shape) != expected:
            got = tuple(advantages.shape) if isinstance(advantages, torch.Tensor) else type(advantages).__name__
            raise PluginError(
                f"{self._describe()} returned {got} for {expected[0]} completions; it must return a tensor of shape "
                f"{expected}, one advantage per completion."
            )
        if not torch.isfinite(advantages).all():
            raise PluginError(
                f"{self._describe()} returned NaN or infinite advantages for rewards {rewards_per_func.tolist()} "
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

    def __repr__(self) -> str:
        return f"<AdvantageEstimator {self.name} options={self.options}>"
