"""The reward feature: what the user passed as `reward_funcs` (callables, plugin names, model ids) turned into
what TRL calls, each reward guarded.

Plugin names are resolved through the registry and bound to their options from `GRPOConfig.reward_kwargs`; every
reward callable is wrapped in a guard that names the reward (and its plugin) when it raises or breaks the reward
contract. Reward models (`nn.Module`) and model ids pass through to TRL unchanged.

TRL seam (see `trainer.py`): `__init__` resolves the rewards before TRL's own `__init__`, so a bad name fails before
any model loads; TRL then calls the guarded rewards in `_calculate_rewards` as it calls any reward function.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from trl.trainer.utils import get_callable_name, is_async_callable

from .components import BoundComponent
from .errors import PluginError, RewardFunctionError, UnknownComponentError

if TYPE_CHECKING:
    from .registry import ComponentRegistry

# Arguments TRL passes itself; a reward's other keyword parameters with defaults are its options.
_CONTRACT_ARGS = {"prompts", "completions", "completion_ids", "trainer_state", "log_extra", "log_metric"}
_FLOAT32_MAX = float(torch.finfo(torch.float32).max)


class GuardedReward(BoundComponent):
    """A reward function with bound options, whose failures and contract violations raise one clear error.

    Plugin rewards have their options checked against what the function declares; a callable the user passed
    (`plugin=None`) is called as it is.
    """

    kind = "Reward function"
    contract_args = _CONTRACT_ARGS

    def __init__(
        self, func: Callable[..., Any], name: str, plugin: str | None = None, options: Mapping[str, Any] | None = None
    ) -> None:
        self.__name__ = name  # TRL names rewards (in metrics) by __name__
        self.__wrapped__ = func
        if plugin is None:  # a callable the user passed: its arguments are its own business
            self.func, self.name, self.plugin, self.options = func, name, None, dict(options or {})
        else:
            super().__init__(func, name, plugin, options)

    @property
    def config_field(self) -> str:
        return f"GRPOConfig.reward_kwargs['{self.name}']"

    def _call_failed(self, error: Exception) -> RewardFunctionError:
        if self.plugin:
            return RewardFunctionError(self.failed(error))
        # a callable the user passed: reward_kwargs configures plugin rewards only
        return RewardFunctionError(
            self.failed(error, "Fix the reward function, or the arguments bound to it (e.g. with functools.partial)")
        )

    def _checked(self, rewards: Any, completions: Sequence[Any]) -> list[float | None]:
        expected = len(completions)
        if hasattr(rewards, "tolist"):  # tensors and arrays
            rewards = rewards.tolist()
        if not isinstance(rewards, Sequence) or isinstance(rewards, (str, bytes)):
            raise RewardFunctionError(
                f"{self.describe()} returned {type(rewards).__name__}; it must return a list with one float (or "
                f"None) per completion."
            )
        if len(rewards) != expected:
            raise RewardFunctionError(
                f"{self.describe()} returned {len(rewards)} rewards for {expected} completions; it must return "
                f"exactly one reward (a float, or None when not applicable) per completion."
            )
        for index, value in enumerate(rewards):
            if value is not None and not isinstance(value, numbers.Real):
                raise RewardFunctionError(
                    f"{self.describe()} returned {value!r} ({type(value).__name__}); each reward must be a float, "
                    f"or None when the reward does not apply to that completion."
                )
            # TRL stores rewards as float32: beyond its range a finite float becomes inf, and an infinite reward
            # turns its group's (or, for batch-level estimators, the whole batch's) advantages into 0 or NaN.
            if value is not None and not math.isnan(value) and not abs(value) <= _FLOAT32_MAX:
                completion = str(completions[index])
                completion = completion if len(completion) <= 80 else completion[:77] + "..."
                raise RewardFunctionError(
                    f"{self.describe()} returned {value!r} for the completion {completion!r}; rewards must be "
                    f"finite numbers within float32 range (about ±3.4e38), or None (or NaN) for a completion the "
                    f"reward does not apply to. Fix or clamp the reward."
                )
        return list(rewards)

    def __call__(self, **kwargs: Any) -> list[float | None]:
        try:
            rewards = self.func(**{**kwargs, **self.options})
        except Exception as error:
            raise self._call_failed(error) from error
        return self._checked(rewards, kwargs["completions"])


class AsyncGuardedReward(GuardedReward):
    """`GuardedReward` for `async` reward functions; TRL runs it on its event loop like any async reward."""

    async def __call__(self, **kwargs: Any) -> list[float | None]:
        try:
            rewards = await self.func(**{**kwargs, **self.options})
        except Exception as error:
            raise self._call_failed(error) from error
        return self._checked(rewards, kwargs["completions"])


def guard(func: Callable[..., Any], name: str, plugin: str | None = None, options=None) -> GuardedReward:
    cls = AsyncGuardedReward if is_async_callable(func) else GuardedReward
    return cls(func, name, plugin, options)


def bind_plugin_reward(name: str, rewards: ComponentRegistry, options: Mapping[str, Any] | None) -> GuardedReward:
    """The registered reward `name` with its `options`, checked against what the function declares."""
    func = rewards.resolve(name)
    return guard(func, name, rewards.plugin_of(name), options)


def _looks_like_model(name: str) -> bool:
    # TRL reads any other string as a reward model: a local directory, or a Hub id, which is "org/name" in practice.
    return os.path.isdir(name) or "/" in name


def resolve_reward_funcs(
    reward_funcs: Any,
    reward_plugins: Sequence[str] | None,
    reward_kwargs: Mapping[str, Mapping[str, Any]] | None,
    rewards: ComponentRegistry,
) -> list[Any]:
    """The reward list to hand to TRL: plugin names bound and guarded, callables guarded, models as they are.

    `reward_plugins` are appended after `reward_funcs`, in order (so `reward_weights` follow that order).
    """
    if reward_funcs is None:
        reward_funcs = []
    elif not isinstance(reward_funcs, list):
        reward_funcs = [reward_funcs]
    reward_kwargs = dict(reward_kwargs or {})
    resolved, plugin_names, callable_names = [], [], []
    for index, item in enumerate(list(reward_funcs) + list(reward_plugins or [])):
        from_config = index >= len(reward_funcs)
        if isinstance(item, str) and (item in rewards or from_config or not _looks_like_model(item)):
            try:
                resolved.append(bind_plugin_reward(item, rewards, reward_kwargs.get(item)))
            except UnknownComponentError as error:
                hint = (
                    ""
                    if from_config
                    else " To use a reward model instead, pass its Hub id ('org/name') or a local directory."
                )
                raise UnknownComponentError(f"{error}{hint}") from None
            plugin_names.append(item)
        elif isinstance(item, (str, nn.Module)):
            resolved.append(item)  # TRL loads and runs reward models itself
        elif callable(item):
            resolved.append(item if isinstance(item, GuardedReward) else guard(item, get_callable_name(item)))
            callable_names.append(resolved[-1].__name__)
        else:
            raise TypeError(
                f"reward_funcs entries must be callables, reward models, or reward plugin names; got {item!r}."
            )
    stray = sorted(set(reward_kwargs) - set(plugin_names))
    callables = [name for name in stray if name in callable_names]
    if callables:
        name = callables[0]
        raise PluginError(
            f"GRPOConfig.reward_kwargs has options for {name!r}, a callable passed in reward_funcs, not a plugin "
            f"reward: reward_kwargs configures plugin rewards only. Bind the callable's arguments yourself, e.g. "
            f"reward_funcs=[functools.partial({name}, option=value)], and remove its reward_kwargs entry."
        )
    if stray:
        raise PluginError(
            f"GRPOConfig.reward_kwargs has options for {', '.join(map(repr, stray))}, which is not among the plugin "
            f"rewards in use ({', '.join(plugin_names) or 'none'}). Add it to reward_funcs / reward_plugins, or "
            f"remove its options."
        )
    return resolved


def check_config(args: Any) -> None:
    """Refuse bad reward settings of a `GRPOConfig` before any model is loaded; reads a comma-separated
    `reward_plugins` entry as several names."""
    if args.reward_plugins is not None:
        if isinstance(args.reward_plugins, str):  # a YAML scalar
            args.reward_plugins = [args.reward_plugins]
        if not all(isinstance(name, str) and name for name in args.reward_plugins):
            raise ValueError(f"reward_plugins must be a list of reward names (strings), got {args.reward_plugins!r}.")
        # Names never hold commas, so "accuracy,format" (as typed on a command line, which otherwise takes
        # "--reward_plugins accuracy format") means two of them.
        args.reward_plugins = [n.strip() for name in args.reward_plugins for n in name.split(",") if n.strip()]
    if args.reward_kwargs is not None and not (
        isinstance(args.reward_kwargs, dict) and all(isinstance(v, dict) for v in args.reward_kwargs.values())
    ):
        raise ValueError(
            "reward_kwargs must map each reward name to a dict of its options, e.g. "
            f'{{"overlong_penalty": {{"max_length": 512, "cache_length": 128}}}}; got {args.reward_kwargs!r}.'
        )
