"""`GRPOConfig`: TRL's config plus the extension options. With none set, it is TRL's config exactly."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import trl


@dataclass
class GRPOConfig(trl.GRPOConfig):
    """TRL's [`trl.GRPOConfig`] with the trl-grpo-plus options. Every TRL field keeps its meaning and default.

    Parameters:
        reward_plugins (`list[str]`, *optional*):
            Names of registered reward functions to use, appended after the trainer's `reward_funcs`. Lets a YAML or
            CLI config pick rewards (`trl-grpo-plus plugins` lists them).
        reward_kwargs (`dict[str, dict]`, *optional*):
            Options per plugin reward, by reward name, e.g. `{"overlong_penalty": {"max_length": 512,
            "cache_length": 128}}`.
    """

    _VALID_DICT_FIELDS = trl.GRPOConfig._VALID_DICT_FIELDS + ["reward_kwargs"]

    reward_plugins: list[str] | None = field(
        default=None,
        metadata={
            "help": "Names of registered reward functions (from installed trl_grpo_plus plugins) to use, appended "
            "after the trainer's `reward_funcs`. `trl-grpo-plus plugins` lists the available names."
        },
    )
    reward_kwargs: dict[str, Any] | str | None = field(
        default=None,
        metadata={
            "help": "Options for plugin reward functions, by reward name, e.g. "
            '`{"overlong_penalty": {"max_length": 512, "cache_length": 128}}`. A JSON string on the command line.'
        },
    )

    def __post_init__(self):
        super().__post_init__()
        if self.reward_plugins is not None:
            if isinstance(self.reward_plugins, str):  # a single name from a YAML scalar or a CLI string
                self.reward_plugins = [name.strip() for name in self.reward_plugins.split(",") if name.strip()]
            if not all(isinstance(name, str) and name for name in self.reward_plugins):
                raise ValueError(
                    f"reward_plugins must be a list of reward names (strings), got {self.reward_plugins!r}."
                )
        if self.reward_kwargs is not None and not (
            isinstance(self.reward_kwargs, dict) and all(isinstance(v, dict) for v in self.reward_kwargs.values())
        ):
            raise ValueError(
                "reward_kwargs must map each reward name to a dict of its options, e.g. "
                f'{{"overlong_penalty": {{"max_length": 512, "cache_length": 128}}}}; got {self.reward_kwargs!r}.'
            )
