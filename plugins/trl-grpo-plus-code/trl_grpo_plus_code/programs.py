"""What runs in a sandbox: the program read out of a completion, and the test steps read out of a dataset row."""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from dataclasses import dataclass

# An opening fence with its language tag, then everything up to the closing fence, or to the end of a completion
# cut off by the generation length limit.
_FENCED_BLOCK = re.compile(r"```[ \t]*([\w+.-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_PYTHON_TAGS = {"python", "python3", "py", "py3"}


def extract_program(text: str) -> str:
    """The program in a completion: its last ```python block, else its last fenced block, else the text itself."""
    blocks = _FENCED_BLOCK.findall(text)
    python_blocks = [code for tag, code in blocks if tag.lower() in _PYTHON_TAGS]
    if python_blocks:
        return python_blocks[-1]
    if blocks:
        return blocks[-1][1]
    return text


@dataclass(frozen=True)
class RowTests:
    """Code run after the program, in order: ``("setup", source)`` steps and ``("test", source)`` steps.

    A test passes when its source runs without raising; setup steps (imports, helpers, HumanEval's ``check``
    definition) are run for their effects and are not scored.
    """

    steps: tuple[tuple[str, str], ...]

    @property
    def num_tests(self) -> int:
        return sum(kind == "test" for kind, _ in self.steps)


def row_tests(tests: str | Sequence[str] | None, entry_point: str | None = None) -> RowTests | None:
    """The tests of one dataset row; None when the row has none.

    - HumanEval style: `tests` is code defining ``check(candidate)`` and `entry_point` names the function under
      test; the one test is ``check(<entry_point>)``.
    - MBPP style: `tests` is a list of ``assert`` strings, each one test, or a string of asserts, each top-level
      ``assert`` one test. Other statements (``import math``, helpers) are setup, run in order.

    Raises ValueError for a row that cannot be tested as it is written (code that does not parse, ``check`` without
    an entry point, no assert at all), naming what to fix in the dataset.
    """
    if tests is None or (isinstance(tests, str) and not tests.strip()):
        return None
    if isinstance(tests, str):
        module = _parse(tests)
        if any(isinstance(node, ast.FunctionDef) and node.name == "check" for node in module.body):
            return _humaneval_tests(tests, entry_point)
        steps = tuple(
            ("test" if isinstance(node, ast.Assert) else "setup", ast.get_source_segment(tests, node))
            for node in module.body
        )
    elif isinstance(tests, Sequence) and all(isinstance(test, str) for test in tests):
        if not any(test.strip() for test in tests):
            return None
        steps = tuple(
            ("test" if any(isinstance(node, ast.Assert) for node in _parse(test).body) else "setup", test)
            for test in tests
            if test.strip()
        )
    else:
        raise ValueError(
            f"tests must be a string of test code or a list of assert strings, got {type(tests).__name__}: "
            f"{_shorten(tests)}"
        )
    row = RowTests(steps)
    if row.num_tests == 0:
        raise ValueError(
            f"the tests hold no assert statement and define no check(candidate) function: {_shorten(tests)}. Write "
            f"MBPP-style asserts such as 'assert add(1, 2) == 3', or HumanEval-style test code with an entry_point"
        )
    return row


def _humaneval_tests(tests: str, entry_point: str | None) -> RowTests:
    if not entry_point:
        raise ValueError(
            "the tests define check(candidate) (HumanEval style) but the row has no entry_point: add an "
            "'entry_point' column naming the function under test"
        )
    if not entry_point.isidentifier():
        raise ValueError(f"entry_point must be a function name, got {entry_point!r}")
    return RowTests((("setup", tests), ("test", f"check({entry_point})")))


def _parse(code: str) -> ast.Module:
    try:
        return ast.parse(code)
    except SyntaxError as error:
        raise ValueError(
            f"the tests are not valid Python ({error.msg}, line {error.lineno}): {_shorten(code)}"
        ) from None


def _shorten(value: object, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
