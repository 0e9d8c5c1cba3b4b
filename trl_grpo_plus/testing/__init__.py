"""Test kit for trl_grpo_plus and its plugin authors: offline tiny models, and pytest fixtures.

Use the fixtures from a ``conftest.py``::

    pytest_plugins = ["trl_grpo_plus.testing"]

Then ``plugin_manager`` is a fresh manager with the built-in plugins only (installed plugins are not loaded, so the
test sees exactly what it registers), and ``register_plugin(obj)`` adds a plugin to it for the test.
"""

from __future__ import annotations

import pytest

from ..plugins import PluginInfo, PluginManager, build_plugin_manager
from .loss_inputs import TrainingRecorder
from .models import save_tiny_checkpoint, tiny_model, tiny_prompt_dataset, tiny_tokenizer

__all__ = [
    "TrainingRecorder",
    "save_tiny_checkpoint",
    "tiny_grpo_config",
    "tiny_grpo_settings",
    "tiny_model",
    "tiny_prompt_dataset",
    "tiny_tokenizer",
]


def tiny_grpo_settings(output_dir, **overrides) -> dict:
    """GRPO config fields for seconds-long CPU runs on `tiny_model`, for any config class (ours or TRL's)."""
    settings = dict(
        output_dir=str(output_dir),
        per_device_train_batch_size=4,
        num_generations=4,
        max_completion_length=8,
        max_steps=2,
        learning_rate=1e-2,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
        seed=0,
    )
    settings.update(overrides)
    return settings


def tiny_grpo_config(output_dir, **overrides):
    """A `trl_grpo_plus.GRPOConfig` from `tiny_grpo_settings`; any field can be overridden."""
    from ..config import GRPOConfig

    return GRPOConfig(**tiny_grpo_settings(output_dir, **overrides))


@pytest.fixture
def plugin_manager() -> PluginManager:
    """A fresh plugin manager with only the built-in plugins."""
    return build_plugin_manager(load_entrypoints=False)


@pytest.fixture
def register_plugin(plugin_manager):
    """``register_plugin(plugin, name=None)`` registers a plugin object on the test's ``plugin_manager``."""

    def register(plugin: object, name: str | None = None) -> object:
        name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
        if not plugin_manager.register_plugin(plugin, PluginInfo(name)):
            raise plugin_manager.load_failures[-1].error
        return plugin

    return register
