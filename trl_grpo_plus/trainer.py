"""`GRPOTrainer`: TRL's trainer with plugin-resolved components. With no extension option set it is TRL's trainer."""

from __future__ import annotations

import logging
from typing import Any

import trl
from trl.trainer.utils import get_config_model_id

from .config import GRPOConfig
from .plugins import PluginManager, build_plugin_manager
from .registry import get_registry
from .reward_functions import GuardedReward, resolve_reward_funcs

logger = logging.getLogger(__name__)


class GRPOTrainer(trl.GRPOTrainer):
    """Drop-in replacement for [`trl.GRPOTrainer`].

    Takes the same arguments, plus `plugin_manager` (default: a fresh one with the built-in and installed
    plugins). `reward_funcs` may also name registered reward functions (strings); a registered name wins over
    TRL's reading of a string as a reward model id.
    """

    def __init__(
        self,
        model: Any,
        reward_funcs: Any = None,
        args: trl.GRPOConfig | None = None,
        *trl_args: Any,
        plugin_manager: PluginManager | None = None,
        **trl_kwargs: Any,
    ) -> None:
        if args is None:  # as TRL does, but with our config class
            model_name = model if isinstance(model, str) else get_config_model_id(model.config)
            args = GRPOConfig(f"{model_name.split('/')[-1]}-GRPO")
        # Resolve plugins before TRL loads any model, so a bad name fails in seconds, not after a download.
        self.plugin_manager = plugin_manager if plugin_manager is not None else build_plugin_manager()
        self.registry = get_registry(self.plugin_manager)
        reward_funcs = resolve_reward_funcs(
            reward_funcs,
            getattr(args, "reward_plugins", None),  # a plain trl.GRPOConfig has no extension fields
            getattr(args, "reward_kwargs", None),
            self.registry.reward_functions,
        )
        super().__init__(model, reward_funcs, args, *trl_args, **trl_kwargs)
        if self.accelerator.is_main_process:
            logger.info(self.describe_plugins())

    def describe_plugins(self) -> str:
        """One line on the active plugins and components, as logged at start-up."""
        manager = self.plugin_manager
        plugins = ", ".join(manager.info(name).describe() for name, _ in manager.list_name_plugin())
        rewards = ", ".join(
            f"{name} [{func.plugin}]" if isinstance(func, GuardedReward) and func.plugin else name
            for name, func in zip(self.reward_func_names, self.reward_funcs, strict=True)
        )
        return f"trl_grpo_plus: plugins: {plugins}; rewards: {rewards}"
