"""trl-grpo-plus: a plugin-extensible, drop-in replacement for TRL's GRPO trainer."""

__version__ = "0.1.0"

from .config import GRPOConfig  # noqa: E402
from .errors import DuplicateComponentError, PluginError, RewardFunctionError, UnknownComponentError  # noqa: E402
from .hookspecs import hookimpl  # noqa: E402
from .plugins import PluginManager, build_plugin_manager  # noqa: E402
from .registry import Registry, get_registry  # noqa: E402
from .trainer import GRPOTrainer  # noqa: E402

__all__ = [
    "DuplicateComponentError",
    "GRPOConfig",
    "GRPOTrainer",
    "PluginError",
    "PluginManager",
    "Registry",
    "RewardFunctionError",
    "UnknownComponentError",
    "__version__",
    "build_plugin_manager",
    "get_registry",
    "hookimpl",
]
