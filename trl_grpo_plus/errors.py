"""Exceptions raised for bad plugin setups and bad plugin outputs.

Every message says what is wrong and how to fix it. They subclass `ValueError` (configuration) or `RuntimeError`
(a component failed while training) so existing `except` clauses keep working.
"""

from __future__ import annotations


class PluginError(ValueError):
    """A plugin or component could not be set up as asked."""


class UnknownComponentError(PluginError):
    """A component was asked for by a name no loaded plugin registers; `name` and `kind` say which."""

    def __init__(self, message: str, *, name: str | None = None, kind: str | None = None) -> None:
        super().__init__(message)
        self.name = name
        self.kind = kind


class DuplicateComponentError(PluginError):
    """Two plugins registered a component of the same kind under the same name."""


class RewardFunctionError(RuntimeError):
    """A reward function raised or returned something outside the reward contract."""


class LaunchError(RuntimeError):
    """The launch did not set up what it asked for: fewer processes than started, or an engine that did not shard."""
