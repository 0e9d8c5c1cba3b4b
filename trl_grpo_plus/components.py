"""Components as the trainer holds them: a registered function bound to its plugin and its checked options.

Rewards, advantage estimators and group-size schedules are all `BoundComponent`s: resolved by name from the
registry, their options checked before any model is loaded, and every error naming the component and its plugin.

A component's options are its keyword parameters other than the ones its contract passes (a reward's `prompts`,
an estimator's `rewards_per_func`, ...; the contracts are the `Protocol`s in `trl_grpo_plus.hookspecs`). A
keyword-only parameter without a default is a required option. A component may also carry a
`validate_options(**options)` callable that raises `ValueError`/`TypeError` on bad values.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from .errors import PluginError

if TYPE_CHECKING:
    from .registry import ComponentRegistry


def name_list(value: Any, field: str, names: str) -> list[str] | None:
    """A config field listing component names, as given in Python, YAML (a scalar is one name) or on a command
    line: names never hold commas, so "accuracy,format" is two of them. Refuses anything but names; `names` says
    what they are, for the error."""
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not all(isinstance(name, str) and name for name in value):
        raise ValueError(f"{field} must be a list of {names}, got {value!r}.")
    return [n.strip() for name in value for n in name.split(",") if n.strip()]


def declared_options(func: Callable[..., Any], contract_args: Collection[str]) -> tuple[set[str], set[str]]:
    """(all option names, required option names) that `func` declares beyond its `contract_args`."""
    try:
        parameters = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return set(), set()
    options, required = set(), set()
    for parameter in parameters:
        if parameter.name in contract_args or parameter.kind not in (
            parameter.KEYWORD_ONLY,
            parameter.POSITIONAL_OR_KEYWORD,
        ):
            continue
        if parameter.kind is parameter.KEYWORD_ONLY and parameter.default is parameter.empty:
            options.add(parameter.name)
            required.add(parameter.name)
        elif parameter.default is not parameter.empty:
            options.add(parameter.name)
    return options, required


def declared_defaults(func: Callable[..., Any], contract_args: Collection[str]) -> dict[str, Any]:
    """The default value of each option `func` declares with one."""
    try:
        parameters = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return {}
    return {
        p.name: p.default
        for p in parameters
        if p.name not in contract_args
        and p.default is not p.empty
        and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    }


def check_options(
    func: Callable[..., Any],
    options: Mapping[str, Any] | None,
    *,
    contract_args: Collection[str],
    describe: str,
    config_field: str,
) -> dict[str, Any]:
    """`options` checked against what `func` declares; raises `PluginError` naming `describe` and `config_field`.

    `describe` is e.g. "Reward function 'format'"; `config_field` is where the user sets the options, e.g.
    "GRPOConfig.reward_kwargs['format']".
    """
    options = dict(options or {})
    known, required = declared_options(func, contract_args)
    unknown = sorted(set(options) - known)
    if unknown:
        close = difflib.get_close_matches(unknown[0], sorted(known), n=1)
        meant = f" Did you mean {close[0]!r}?" if close else ""
        raise PluginError(
            f"{describe} has no option {', '.join(map(repr, unknown))}.{meant} Its options are: "
            f"{', '.join(sorted(known)) or '(none)'}. Fix {config_field}."
        )
    missing = sorted(required - set(options))
    if missing:
        raise PluginError(
            f"{describe} needs option {', '.join(map(repr, missing))}. Set it in {config_field}, e.g. "
            f"{{{', '.join(f'{m!r}: ...' for m in missing)}}}."
        )
    validate = getattr(func, "validate_options", None)
    if validate is not None:
        try:
            validate(**options)
        except (TypeError, ValueError) as error:
            raise PluginError(
                f"Bad options for {describe[0].lower()}{describe[1:]}: {error}. Fix {config_field}."
            ) from None
    return options


class BoundComponent:
    """A registered component, bound to its options; subclasses say what kind it is and how it is called.

    Subclasses set `kind` ("Reward function"), `contract_args` (the arguments the trainer passes, never options)
    and `config_field` (where users set the options, e.g. "GRPOConfig.advantage_kwargs").
    """

    kind: ClassVar[str]
    contract_args: ClassVar[Collection[str]]
    config_field: ClassVar[str]

    def __init__(
        self, func: Callable[..., Any], name: str, plugin: str | None = None, options: Mapping[str, Any] | None = None
    ) -> None:
        if not callable(func) or not isinstance(name, str):
            raise TypeError(
                f"{type(self).__name__}(func, name, plugin, options) takes the component and its name; got "
                f"{func!r}, {name!r}. To look a component up by name, use {type(self).__name__}.resolve(name, "
                f"registry, options)."
            )
        self.func = func
        self.name = name
        self.plugin = plugin
        self.options = check_options(
            func, options, contract_args=self.contract_args, describe=self.describe(), config_field=self.config_field
        )

    @property
    def effective_options(self) -> dict[str, Any]:
        """Every option the component is called with: the declared defaults, then the options the user set."""
        return {**declared_defaults(self.func, self.contract_args), **self.options}

    @classmethod
    def resolve(cls, name: str, registry: ComponentRegistry, options: Mapping[str, Any] | None = None):
        """The component registered as `name`, bound to `options`; unknown names list what is available."""
        return cls(registry.resolve(name), name, registry.plugin_of(name), options)

    def describe(self) -> str:
        """How errors name this component: "Advantage estimator 'rloo' (from plugin 'advantages')"."""
        origin = f" (from plugin '{self.plugin}')" if self.plugin else ""
        return f"{self.kind} '{self.name}'{origin}"

    def failed(self, error: Exception, fix: str | None = None) -> str:
        """The message for an exception the component raised; the caller chains the original traceback."""
        fix = fix or f"Fix the {self.kind.lower()} or its options ({self.config_field})"
        return f"{self.describe()} raised {type(error).__name__}: {error}. {fix}; the original traceback is chained above."

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} options={self.options}>"
