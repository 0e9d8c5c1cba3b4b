"""trl-grpo-plus: a plugin-extensible, drop-in replacement for TRL's GRPO trainer."""

__version__ = "0.3.0"

from . import moved_modules
from .config import GRPOConfig
from .errors import DuplicateComponentError, LaunchError, PluginError, RewardFunctionError, UnknownComponentError
from .hookspecs import hookimpl
from .plugin_manager import PluginManager, build_plugin_manager
from .registry import Registry, get_registry
from .trainer import GRPOTrainer

moved_modules.install()  # the module paths of 0.2 still import, with a DeprecationWarning

__all__ = [
    "DuplicateComponentError",
    "GRPOConfig",
    "GRPOTrainer",
    "LaunchError",
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
