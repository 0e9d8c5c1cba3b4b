"""The registry: components of each kind, by name, as the plugins registered them.

`get_registry()` has pluggy call each plugin's registration hooks one plugin at a time, so every component is
attributed to the plugin that registered it and duplicate names can name both plugins.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import DuplicateComponentError, PluginError, UnknownComponentError
from .plugin_manager import PluginLoadFailure, PluginManager, build_plugin_manager


class ComponentRegistry(Mapping[str, Callable[..., Any]]):
    """Components of one kind (reward functions, advantage estimators, ...), name -> component."""

    def __init__(self, kind: str, hook_name: str, manager: PluginManager | None = None) -> None:
        self.kind = kind
        self.hook_name = hook_name
        self._components: dict[str, Callable[..., Any]] = {}
        self._plugins: dict[str, str] = {}
        self._manager = manager

    def add(self, component: Callable[..., Any], name: str | None = None, *, plugin: str) -> None:
        """Add `component` under `name` (default `component.__name__`) on behalf of `plugin`."""
        if not callable(component):
            raise PluginError(
                f"Plugin '{plugin}' registered {component!r} as a {self.kind}, but it is not callable. Pass a "
                f"function or a callable object to `register`."
            )
        name = name if name is not None else getattr(component, "__name__", None)
        if not isinstance(name, str) or not name or name == "<lambda>":
            raise PluginError(
                f"Plugin '{plugin}' registered a {self.kind} without a usable name ({name!r}). Pass one: "
                f"register(func, name='my_{self.kind.replace(' ', '_')}')."
            )
        if name in self._components:
            raise DuplicateComponentError(
                f"Two plugins register a {self.kind} named '{name}': {self._describe(self._plugins[name])} and "
                f"{self._describe(plugin)}. Uninstall or block one of them (TRL_GRPO_PLUS_BLOCK_PLUGINS=<plugin>), "
                f"or register one under another name."
            )
        self._components[name] = component
        self._plugins[name] = plugin

    def plugin_of(self, name: str) -> str:
        """The name of the plugin that registered `name`."""
        return self._plugins[name]

    def resolve(self, name: str) -> Callable[..., Any]:
        """Return the component registered as `name`, or raise an error listing what is available."""
        if name in self._components:
            return self._components[name]
        message = f"Unknown {self.kind} '{name}'."
        close = difflib.get_close_matches(name, list(self._components), n=1)
        if close:
            message += f" Did you mean '{close[0]}'?"
        message += f" Available {self.kind}s: {', '.join(sorted(self._components)) or '(none)'}."
        failures = self._manager.load_failures if self._manager else []
        if failures:
            message += (
                " Some plugins failed to load and may provide it: "
                + "; ".join(failure.describe() for failure in failures)
                + " (fix that error, e.g. install what it failed to import)."
            )
        blocked = self._manager.blocked_plugins if self._manager else []
        if blocked:
            message += (
                " Blocked plugins may provide it: "
                + "; ".join(plugin.describe() for plugin in blocked)
                + " (unblock one to use its components)."
            )
        message += (
            f" Install the plugin that provides it (plugins register through the '{self.hook_name}' hook); "
            f"`trl-grpo-plus plugins` lists what is installed."
        )
        raise UnknownComponentError(message, name=name, kind=self.kind)

    def _describe(self, plugin: str) -> str:
        return self._manager.info(plugin).describe() if self._manager else f"'{plugin}'"

    def __getitem__(self, name: str) -> Callable[..., Any]:
        return self._components[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._components)

    def __len__(self) -> int:
        return len(self._components)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.kind}s: {', '.join(self._components)}>"


@dataclass
class Registry:
    """Every component the loaded plugins registered, by kind."""

    reward_functions: ComponentRegistry
    advantage_estimators: ComponentRegistry
    group_size_schedules: ComponentRegistry
    rollout_monitors: ComponentRegistry
    plugin_manager: PluginManager
    load_failures: list[PluginLoadFailure] = field(default_factory=list)

    def kinds(self) -> dict[str, ComponentRegistry]:
        return {
            "reward_functions": self.reward_functions,
            "advantage_estimators": self.advantage_estimators,
            "group_size_schedules": self.group_size_schedules,
            "rollout_monitors": self.rollout_monitors,
        }


_HOOKS = {
    "reward_functions": ("reward function", "register_reward_functions"),
    "advantage_estimators": ("advantage estimator", "register_advantage_estimators"),
    "group_size_schedules": ("group-size schedule", "register_group_size_schedules"),
    "rollout_monitors": ("rollout monitor", "register_rollout_monitors"),
}


class _Registration:
    """The `register` callable one plugin's hook receives: it registers on behalf of that plugin, and only it."""

    def __init__(self, probe: ComponentRegistry, plugin: str) -> None:
        self._probe = probe
        self._plugin = plugin
        self.components: list[tuple[str | None, Callable[..., Any]]] = []

    def __call__(self, component: Callable[..., Any], name: str | None = None) -> None:
        self._probe.add(component, name, plugin=self._plugin)  # checks now, so the error names this plugin
        self.components.append((name, component))


def get_registry(plugin_manager: PluginManager | None = None) -> Registry:
    """Resolve every component the plugins of `plugin_manager` (default: a fresh one) register.

    Raises `DuplicateComponentError` when two plugins register the same name for the same kind. A plugin whose
    registration hook raises (or registers something unusable) is recorded in `load_failures`, logged, and
    contributes nothing, so runs that don't use it go on.
    """
    manager = plugin_manager if plugin_manager is not None else build_plugin_manager()
    plugins = dict(manager.loaded())
    # First pass: pluggy calls each plugin's hooks on their own (with only the arguments each implementation names),
    # so every component is attributed to its plugin, and a plugin broken in any hook contributes to no kind.
    staged: dict[tuple[str, str], _Registration] = {}
    order: list[str] = []
    broken: set[str] = set()
    for kind, (label, hook_name) in _HOOKS.items():
        for impl in getattr(manager.hook, hook_name).get_hookimpls():  # in registration order
            plugin = impl.plugin_name
            if plugin not in order:
                order.append(plugin)
            others = [other for name, other in plugins.items() if name != plugin]
            registration = staged[plugin, kind] = _Registration(ComponentRegistry(label, hook_name, manager), plugin)
            try:
                manager.subset_hook_caller(hook_name, remove_plugins=others)(register=registration)
            except Exception as error:
                broken.add(plugin)
                manager.record_failure(manager.info(plugin), error)
    # Second pass: merge the healthy plugins; duplicates across plugins are an error that names both.
    tables = {kind: ComponentRegistry(label, hook, manager) for kind, (label, hook) in _HOOKS.items()}
    for plugin in order:
        if plugin in broken:
            continue
        for kind, table in tables.items():
            registration = staged.get((plugin, kind))
            for name, component in registration.components if registration else ():
                table.add(component, name, plugin=plugin)
    return Registry(**tables, plugin_manager=manager, load_failures=list(manager.load_failures))
