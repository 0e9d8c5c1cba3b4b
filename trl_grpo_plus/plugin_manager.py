"""Building the plugin manager: built-in plugins, then installed ones from the `trl_grpo_plus` entry points.

Every trainer builds its own manager (or is handed one), so there is no module-level mutable state and tests can
register plugins without leaking them into other tests.

Environment variables:
- ``TRL_GRPO_PLUS_DISABLE_PLUGIN_AUTOLOAD=1``: load only the built-in plugins, no entry points.
- ``TRL_GRPO_PLUS_BLOCK_PLUGINS=a,b``: block these plugins (entry-point or distribution names), with pluggy's
  `set_blocked`: a blocked plugin is never imported, and registering it later does nothing.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass

import pluggy

from . import hookspecs
from .hookspecs import PROJECT_NAME

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = PROJECT_NAME
DISABLE_AUTOLOAD_ENV = "TRL_GRPO_PLUS_DISABLE_PLUGIN_AUTOLOAD"
BLOCK_PLUGINS_ENV = "TRL_GRPO_PLUS_BLOCK_PLUGINS"

# Built-ins go through the same hooks as third-party plugins; this tuple is the only thing that makes them special.
DEFAULT_PLUGINS = (
    "trl_grpo_plus.default_plugins.rewards",
    "trl_grpo_plus.default_plugins.advantages",
    "trl_grpo_plus.default_plugins.schedules",
    "trl_grpo_plus.default_plugins.trl_rewards",
    "trl_grpo_plus.default_plugins.monitors",
)


@dataclass(frozen=True)
class PluginInfo:
    """Where a registered plugin came from."""

    name: str
    distribution: str | None = None
    version: str | None = None
    builtin: bool = False

    def describe(self) -> str:
        if self.builtin:
            return f"'{self.name}' (built-in)"
        if self.distribution:
            return f"'{self.name}' (from {self.distribution} {self.version})"
        return f"'{self.name}' (registered in code)"


@dataclass(frozen=True)
class PluginLoadFailure:
    """A plugin that could not be imported or set up; runs that don't need it go on without it."""

    plugin: PluginInfo
    error: BaseException

    def describe(self) -> str:
        return f"plugin {self.plugin.describe()} failed to load: {type(self.error).__name__}: {self.error}"


@dataclass(frozen=True)
class BlockedPlugin:
    """An installed or built-in plugin left out because it is blocked, so that a name it provides can say so."""

    plugin: PluginInfo
    by_environment: bool  # blocked by TRL_GRPO_PLUS_BLOCK_PLUGINS, else by `build_plugin_manager(blocked=...)`

    def describe(self) -> str:
        how = BLOCK_PLUGINS_ENV if self.by_environment else "build_plugin_manager(blocked=...)"
        return f"plugin {self.plugin.describe()} is blocked by {how}"


class PluginManager(pluggy.PluginManager):
    """A pluggy manager for our hooks that also remembers each plugin's origin and every load failure."""

    def __init__(self) -> None:
        super().__init__(PROJECT_NAME)
        self.add_hookspecs(hookspecs)
        self.plugin_infos: dict[str, PluginInfo] = {}
        self.load_failures: list[PluginLoadFailure] = []
        self.blocked_plugins: list[BlockedPlugin] = []

    def register_plugin(self, plugin: object, info: PluginInfo) -> bool:
        """Register `plugin`; a plugin that breaks the hook contract is recorded as a load failure, not raised.

        Returns False when the plugin was not registered: it failed, or it is blocked."""
        if self.is_blocked(info.name):
            self.record_blocked(info)
            return False
        try:
            self.register(plugin, name=info.name)
            self._check_hook_names(plugin)
        except (pluggy.PluginValidationError, ValueError) as error:
            if self.get_plugin(info.name) is plugin:
                self.unregister(plugin)
            self.record_failure(info, error)
            return False
        self.plugin_infos[info.name] = info
        return True

    def record_failure(self, info: PluginInfo, error: BaseException) -> None:
        failure = PluginLoadFailure(info, error)
        # get_registry() may run its hooks again on the same manager; a failure is reported once.
        if any(known.describe() == failure.describe() for known in self.load_failures):
            return
        self.load_failures.append(failure)
        logger.warning("trl_grpo_plus %s", failure.describe())

    def record_blocked(self, info: PluginInfo) -> None:
        names = {info.name, info.distribution} - {None}
        blocked = BlockedPlugin(info, by_environment=bool(names & _env_blocked()))
        if blocked not in self.blocked_plugins:
            self.blocked_plugins.append(blocked)
        logger.info("trl_grpo_plus plugin %s is blocked, skipping it", info.describe())

    def loaded(self) -> list[tuple[str, object]]:
        """(name, plugin) of every registered plugin, in registration order; blocked names are not plugins."""
        return [(name, plugin) for name, plugin in self.list_name_plugin() if plugin is not None]

    def info(self, plugin_name: str) -> PluginInfo:
        return self.plugin_infos.get(plugin_name, PluginInfo(plugin_name))

    def _check_hook_names(self, plugin: object) -> None:
        # pluggy only reports misspelled hooks from check_pending(), for all plugins at once; checking per plugin
        # lets us name the culprit and keep the other plugins.
        known = {name for name, caller in vars(self.hook).items() if caller.has_spec()}
        for hook_caller in self.get_hookcallers(plugin) or []:
            if hook_caller.name not in known:
                close = difflib.get_close_matches(hook_caller.name, sorted(known), n=1)
                hint = f" Did you mean '{close[0]}'?" if close else ""
                raise pluggy.PluginValidationError(plugin, f"'{hook_caller.name}' is not a {PROJECT_NAME} hook.{hint}")


def _env_blocked() -> set[str]:
    return {name.strip() for name in os.environ.get(BLOCK_PLUGINS_ENV, "").split(",") if name.strip()}


def _autoload_disabled() -> bool:
    return os.environ.get(DISABLE_AUTOLOAD_ENV, "").strip().lower() not in ("", "0", "false", "no")


def build_plugin_manager(
    *,
    load_entrypoints: bool | None = None,
    blocked: Iterable[str] | None = None,
    plugins: Iterable[object] = (),
) -> PluginManager:
    """Return a fresh plugin manager with the built-in plugins, the installed ones and `plugins`.

    Args:
        load_entrypoints: load plugins from the `trl_grpo_plus` entry points; defaults to true unless
            `TRL_GRPO_PLUS_DISABLE_PLUGIN_AUTOLOAD` is set.
        blocked: plugin names (entry-point or distribution names) to block, in addition to
            `TRL_GRPO_PLUS_BLOCK_PLUGINS`; built-in plugins can be blocked too.
        plugins: extra plugin objects (modules, classes, instances) to register, e.g. from a script or a test.
    """
    manager = PluginManager()
    for name in set(blocked or ()) | _env_blocked():
        manager.set_blocked(name)
    for module_name in DEFAULT_PLUGINS:
        info = PluginInfo(module_name.rsplit(".", 1)[-1], PROJECT_NAME.replace("_", "-"), _own_version(), True)
        if manager.is_blocked(info.name):  # never imported
            manager.record_blocked(info)
        else:
            manager.register_plugin(importlib.import_module(module_name), info)
    if load_entrypoints is None:
        load_entrypoints = not _autoload_disabled()
    if load_entrypoints:
        _load_entrypoints(manager)
    for plugin in plugins:
        name = getattr(plugin, "__name__", None) or type(plugin).__name__
        manager.register_plugin(plugin, PluginInfo(name))
    return manager


def _load_entrypoints(manager: PluginManager) -> None:
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = entry_point.dist
        info = PluginInfo(entry_point.name, dist.name if dist else None, dist.version if dist else None)
        if manager.is_blocked(info.name) or (info.distribution and manager.is_blocked(info.distribution)):
            manager.record_blocked(info)
            continue
        if info.name in manager.plugin_infos:
            other = manager.plugin_infos[info.name]
            manager.record_failure(
                info,
                ValueError(
                    f"plugin name '{info.name}' is already used by {other.describe()}; rename one of the entry "
                    f"points or uninstall one of the distributions"
                ),
            )
            continue
        try:
            plugin = entry_point.load()
        except Exception as error:  # a broken plugin must not break runs that don't use it
            manager.record_failure(info, error)
            continue
        manager.register_plugin(plugin, info)


def _own_version() -> str:
    from . import __version__

    return __version__
