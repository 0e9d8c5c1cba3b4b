"""Turning what the user passed as `reward_funcs` (callables, plugin names, model ids) into what TRL calls.

Plugin names are resolved through the registry and bound to their options from `GRPOConfig.reward_kwargs`; every
reward callable is wrapped in a guard that names the reward (and its plugin) when it raises or breaks the reward
contract. Reward models (`nn.Module`) and model ids pass through to TRL unchanged.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn
from trl.trainer.utils import get_callable_name, is_async_callable

from .errors import PluginError, RewardFunctionError, UnknownComponentError
from .options import check_options
from .registry import ComponentRegistry

# Arguments TRL passes itself; a reward's other keyword parameters with defaults are its options.
_CONTRACT_ARGS = {"prompts", "completions", "completion_ids", "trainer_state", "log_extra", "log_metric"}
_FLOAT32_MAX = float(torch.finfo(torch.float32).max)


class GuardedReward:
    """A reward function with bound options, whose failures and contract violations raise one clear error."""

    def __init__(
        self, func: Callable[..., Any], name: str, plugin: str | None = None, options: Mapping[str, Any] | None = None
    ) -> None:
        self.func = func
        self.__name__ = name
        self.__wrapped__ = func
        self.plugin = plugin
        self.options = dict(options or {})

    def _describe(self) -> str:
        origin = f" (from plugin '{self.plugin}')" if self.plugin else ""
        return f"Reward function '{self.__name__}'{origin}"

    def _call_failed(self, error: Exception) -> RewardFunctionError:
        if self.plugin:
            fix = f"Fix the reward function or its options (GRPOConfig.reward_kwargs['{self.__name__}'])"
        else:  # a callable the user passed: reward_kwargs configures plugin rewards only
            fix = "Fix the reward function, or the arguments bound to it (e.g. with functools.partial)"
        return RewardFunctionError(
            f"{self._describe()} raised {type(error).__name__}: {error}. {fix}; the original traceback is chained "
            f"above."
        )

    def _checked(self, rewards: Any, completions: Sequence[Any]) -> list[float | None]:
        expected = len(completions)
        if hasattr(rewards, "tolist"):  # tensors and arrays
            rewards = rewards.tolist()
        if not isinstance(rewards, Sequence) or isinstance(rewards, (str, bytes)):
            raise RewardFunctionError(
                f"{self._describe()} returned {type(rewards).__name__}; it must return a list with one float (or "
                f"None) per completion."
            )
        if len(rewards) != expected:
            raise RewardFunctionError(
                f"{self._describe()} returned {len(rewards)} rewards for {expected} completions; it must return "
                f"exactly one reward (a float, or None when not applicable) per completion."
            )
        for index, value in enumerate(rewards):
            if value is not None and not isinstance(value, numbers.Real):
                raise RewardFunctionError(
                    f"{self._describe()} returned {value!r} ({type(value).__name__}); each reward must be a float, "
                    f"or None when the reward does not apply to that completion."
                )
            # TRL stores rewards as float32: beyond its range a finite float becomes inf, and an infinite reward
            # turns its group's (or, for batch-level estimators, the whole batch's) advantages into 0 or NaN.
            if value is not None and not math.isnan(value) and not abs(value) <= _FLOAT32_MAX:
                completion = str(completions[index])
                completion = completion if len(completion) <= 80 else completion[:77] + "..."
                raise RewardFunctionError(
                    f"{self._describe()} returned {value!r} for the completion {completion!r}; rewards must be "
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

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.__name__} options={self.options}>"


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
    options = check_options(
        func,
        options,
        contract_args=_CONTRACT_ARGS,
        describe=f"Reward function '{name}'",
        config_field=f"GRPOConfig.reward_kwargs['{name}']",
    )
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
