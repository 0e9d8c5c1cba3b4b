"""Test kit for trl_grpo_plus and its plugin authors: offline tiny models (`models`, no pytest needed), the
`TrainingRecorder` of what reaches the loss, and pytest fixtures (`fixtures`).

Use the fixtures from a ``conftest.py``::

    pytest_plugins = ["trl_grpo_plus.testing.fixtures"]

Then ``plugin_manager`` is a fresh manager with the built-in plugins only (installed plugins are not loaded, so the
test sees exactly what it registers), and ``register_plugin(obj)`` adds a plugin to it for the test.
"""

from __future__ import annotations

from .loss_inputs import TrainingRecorder
from .models import save_tiny_checkpoint, tiny_model, tiny_prompt_dataset, tiny_tokenizer

try:  # `pytest_plugins = ["trl_grpo_plus.testing"]`, as 0.2 documented it, keeps working where pytest is installed
    from .fixtures import plugin_manager, register_plugin  # noqa: F401
except ImportError:
    pass

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
    settings = dict(  # noqa: C408 (reads as the keyword arguments it stands for)
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
