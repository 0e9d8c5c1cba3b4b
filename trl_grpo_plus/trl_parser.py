"""`TrlParser` for scripts built on trl_grpo_plus: TRL's parser, with errors a person can read.

argparse answers a bad value by printing the whole usage first: with GRPOConfig, ModelConfig and a script's own
options that is over 200 lines, and the one line that matters scrolls away. Here the error is the last, short thing
printed, with a pointer to `--help`; a misspelled option or YAML key names the one it most likely meant, and a list
given comma-separated says how to give it.
"""

from __future__ import annotations

import difflib
import re
import sys
from collections.abc import Iterable

import trl

_INVALID_VALUE = re.compile(r"argument (--[\w-]+)[^:]*: invalid (\w+) value: '(.*)'$", re.DOTALL)


class TrlParser(trl.TrlParser):
    """TRL's `TrlParser` (same arguments, `--config` YAML included) whose errors skip the full usage text."""

    def error(self, message: str):
        self.exit(
            2, f"{self.prog}: error: {message}{self._value_hint(message)}\n{self.prog}: run with --help to list every "
            f"option.\n"
        )  # fmt: skip

    def parse_args_and_config(
        self,
        args: Iterable[str] | None = None,
        return_remaining_strings: bool = False,
        fail_with_unknown_args: bool = True,
        separate_remaining_strings: bool = False,
    ):
        if return_remaining_strings or not fail_with_unknown_args:  # the caller handles what is left over
            return super().parse_args_and_config(
                args, return_remaining_strings, fail_with_unknown_args, separate_remaining_strings
            )
        args = sys.argv[1:] if args is None else list(args)
        # TRL and transformers refuse unknown options with a ValueError that lists them and suggests editing the
        # dataclass; users need the option they meant.
        *parsed, from_config, from_command_line = super().parse_args_and_config(
            args, return_remaining_strings=True, separate_remaining_strings=True
        )
        unknown = [self._unknown(s[2:], "key", args) for s in from_config if s.startswith("--")]
        unknown += [self._unknown(s.lstrip("-"), "option", args) for s in from_command_line if s.startswith("-")]
        if not unknown and from_command_line:  # values without an option (an unknown option's are named with it)
            unknown = [f"unexpected value(s) {', '.join(map(repr, from_command_line))}"]
        if unknown:
            self.error("; ".join(unknown) + ". Fix the spelling, or remove it.")
        return tuple(parsed)

    def _option_names(self) -> list[str]:
        return sorted({action.dest for action in self._actions if action.option_strings})

    def _unknown(self, name: str, kind: str, args: list[str]) -> str:
        name = name.split("=", 1)[0]
        where = ""
        if kind == "key":
            config = args[args.index("--config") + 1] if "--config" in args[:-1] else "the --config file"
            where = f" in {config}"
        close = difflib.get_close_matches(name.replace("-", "_"), self._option_names(), n=1)
        if kind == "key":
            return f"unknown key '{name}'{where}" + (f" (did you mean '{close[0]}'?)" if close else "")
        return f"unknown option --{name}" + (f" (did you mean --{close[0]}?)" if close else "")

    def _value_hint(self, message: str) -> str:
        match = _INVALID_VALUE.match(message)
        if match is None:
            return ""
        option, type_name, value = match.groups()
        action = next((a for a in self._actions if option in a.option_strings), None)
        if action is None:
            return ""
        takes_list = action.nargs in ("+", "*") or isinstance(action.nargs, int)
        if takes_list and "," in value:
            items = [item.strip() for item in value.split(",") if item.strip()]
            return (
                f". {option} takes a list: give its values separated by spaces, not commas ({option} "
                f"{' '.join(items)}; in YAML, {action.dest}: [{', '.join(items)}])"
            )
        # the default as an example, unless a --config file set it to this very value
        default = action.default
        example = (
            f", e.g. {option} {default}" if default is not None and str(default) != value and not takes_list else ""
        )
        return f". {option} takes {type_name} values{example}"


__all__ = ["TrlParser"]
