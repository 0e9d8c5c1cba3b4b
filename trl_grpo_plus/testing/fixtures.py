"""pytest fixtures for plugin tests: ``pytest_plugins = ["trl_grpo_plus.testing.fixtures"]`` in a ``conftest.py``."""

from __future__ import annotations

import pytest

from ..plugin_manager import PluginInfo, PluginManager, build_plugin_manager


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
