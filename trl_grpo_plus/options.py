"""Options of plugin components: declared as keyword parameters, checked before any model is loaded.

A component's options are its keyword parameters other than the ones its contract passes (a reward's `prompts`,
an estimator's `rewards_per_func`, ...). A keyword-only parameter without a default is a required option. A component
may also carry a `validate_options(**options)` callable that raises `ValueError`/`TypeError` on bad values.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Collection, Mapping
from typing import Any

from .errors import PluginError


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
        raise PluginError(
            f"{describe} has no option {', '.join(map(repr, unknown))}. Its options are: "
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
