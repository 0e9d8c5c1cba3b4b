"""The audit-reward feature: rewards that are scored and logged on every batch, but never trained on.

An audit reward is a second opinion: a stricter verifier, a check of the working rather than the final answer, a
judge too slow or too noisy to train on. It runs with the trained rewards, under the same failure policies, and is
logged as `rewards/<name>/mean` like any reward; rollout monitors (`reward_divergence`) compare it with the trained
reward to catch a model that pleases the reward and not the verifier.

It does not touch training: TRL gets it with a reward weight of 0, and every consumer of the rewards that shapes
training (the advantage estimator, zero-variance filtering, the group-size schedule's history) sees only the trained
columns (`AuditRewards.trained`), so an audit reward cannot even make an otherwise unscorable completion scorable.

TRL seam (see `trainer.py`): `__init__` resolves the audit rewards after the trained ones (by name, as
`reward_plugins`), and hands TRL a copy of the config whose `reward_weights` end in a 0 for each.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from trl.trainer.utils import get_callable_name

from .components import name_list
from .errors import PluginError


def check_config(args: Any) -> None:
    """Refuse bad `audit_rewards` values of a `GRPOConfig` before any model is loaded; reads a comma-separated
    entry as several names, as `reward_plugins` does."""
    args.audit_rewards = name_list(
        args.audit_rewards, "audit_rewards", "reward names (registered names or dotted import paths)"
    )
    if args.audit_rewards is None:
        return
    repeated = sorted({name for name in args.audit_rewards if args.audit_rewards.count(name) > 1})
    if repeated:
        raise ValueError(f"audit_rewards names {', '.join(map(repr, repeated))} more than once; name each once.")
    trained_too = sorted(set(args.audit_rewards) & set(args.reward_plugins or ()))
    if trained_too:
        raise ValueError(_trained_and_audited(trained_too))


def _trained_and_audited(names: Sequence[str]) -> str:
    return (
        f"Reward {', '.join(map(repr, names))} is both trained (reward_funcs / reward_plugins) and in audit_rewards. "
        f"An audit reward is scored and logged but never trained on; remove it from one of the two."
    )


def _reward_name(reward: Any) -> str:
    if isinstance(reward, str):
        return reward.rstrip("/").split("/")[-1]  # a reward model's id, as TRL names it
    if isinstance(reward, nn.Module):
        return type(reward).__name__
    return get_callable_name(reward)


class AuditRewards:
    """Which columns of the rewards are audit rewards; `trained` leaves them out of what shapes training."""

    def __init__(self, names: Sequence[str] = (), columns: Sequence[int] = (), trained_names: Sequence[str] = ()):
        self.names = tuple(names)  # the audit rewards
        self.columns = tuple(columns)  # their columns in TRL's rewards
        self.trained_names = tuple(trained_names)  # the rewards that train, as resolved before TRL's __init__

    @classmethod
    def for_run(cls, reward_funcs: Sequence[Any], args: Any) -> tuple[AuditRewards, Any]:
        """Split resolved `reward_funcs` (the trained ones, then one per `args.audit_rewards` name) and return the
        audit rewards with the config TRL must get: `args` itself without audit rewards, else a copy whose
        `reward_weights` hold the trained weights (or 1s) then a 0 per audit reward."""
        count = len(args.audit_rewards or ())
        if not count:
            return cls(trained_names=[_reward_name(reward) for reward in reward_funcs]), args
        trained, audited = list(reward_funcs[:-count]), list(reward_funcs[-count:])
        names = [_reward_name(reward) for reward in audited]
        if not trained:
            raise PluginError(
                f"Every reward is an audit reward ({', '.join(names)}): nothing would train. Audit rewards are scored "
                f"and logged but never trained on; train on at least one reward (reward_funcs or reward_plugins)."
            )
        both = sorted(set(names) & {_reward_name(reward) for reward in trained})
        if both:
            raise PluginError(_trained_and_audited(both))
        weights = args.reward_weights
        if weights is not None and len(weights) != len(trained):
            raise PluginError(
                f"reward_weights has {len(weights)} values, but {len(trained)} rewards train "
                f"({', '.join(_reward_name(reward) for reward in trained)}); audit rewards ({', '.join(names)}) take "
                f"no weight (they get 0). Give one weight per trained reward, in order."
            )
        run_args = copy.copy(args)  # the user's config stays as they wrote it (one weight per trained reward)
        run_args.reward_weights = [float(w) for w in (weights or [1.0] * len(trained))] + [0.0] * count
        columns = range(len(trained), len(trained) + count)
        return cls(names, columns, [_reward_name(reward) for reward in trained]), run_args

    def trained(
        self, rewards_per_func: torch.Tensor, reward_weights: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The trained columns of `rewards_per_func` `[N, R]` and their weights `[R]`: what training may see."""
        if not self.columns:
            return rewards_per_func, reward_weights
        keep = [i for i in range(rewards_per_func.size(1)) if i not in self.columns]
        index = torch.tensor(keep, dtype=torch.long, device=rewards_per_func.device)
        return rewards_per_func.index_select(1, index), reward_weights.to(rewards_per_func.device)[index]

    def describe(self) -> str:
        return f"; audit rewards (scored, not trained): {', '.join(self.names)}" if self.names else ""
