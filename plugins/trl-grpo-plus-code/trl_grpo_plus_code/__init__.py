"""trl-grpo-plus plugin: the `code_tests` reward, a completion's program run against its row's unit tests, sandboxed."""

from __future__ import annotations

import inspect
import numbers
from typing import Any

from trl_grpo_plus import hookimpl
from trl_grpo_plus.rewards import completion_text

from .programs import RowTests, extract_program, row_tests
from .sandbox import ISOLATIONS, Limits, RunResult, SandboxUnavailableError, resolve_isolation, run_programs

__version__ = "0.1.0"
__all__ = ["RowTests", "RunResult", "SandboxUnavailableError", "code_tests", "extract_program", "row_tests"]

SCORINGS = ("fraction", "all")


def code_tests(
    completions: list,
    *,
    tests_column: str = "tests",
    scoring: str = "fraction",
    include_prompt: bool = False,
    timeout_seconds: float = Limits.timeout_seconds,
    memory_mb: int = Limits.memory_mb,
    max_processes: int = Limits.max_processes,
    max_workers: int | None = None,
    isolation: str = "auto",
    allow_unsandboxed: bool = False,
    **columns: Any,
) -> list[float | None]:
    """The share of its row's unit tests a completion's program passes, each program run in its own sandbox.

    The program is the completion's last ```python block, else its last fenced block, else its whole text. The tests
    are the dataset column `tests_column`: HumanEval-style test code defining ``check(candidate)``, with the function
    under test named by the ``entry_point`` column, or MBPP-style asserts (a list of ``assert`` strings, or a string
    of them), each assert one test. ``scoring="fraction"`` rewards the share of tests passed (a ``check`` function is
    one test), ``"all"`` 1.0 only when every test passes. A row without tests scores None. With `include_prompt`, the
    program is the prompt followed by the completion's code: HumanEval's format, where the completion continues the
    function the prompt begins.

    Programs run up to `max_workers` at a time (default: every core), each with `timeout_seconds` of wall clock,
    `memory_mb` of address space and `max_processes` processes, in the sandbox `isolation` names (``"auto"``: bwrap,
    else unshare). Without a working sandbox this raises `SandboxUnavailableError`, unless `allow_unsandboxed`.
    """
    _check_options(
        tests_column=tests_column,
        scoring=scoring,
        include_prompt=include_prompt,
        timeout_seconds=timeout_seconds,
        memory_mb=memory_mb,
        max_processes=max_processes,
        max_workers=max_workers,
        isolation=isolation,
        allow_unsandboxed=allow_unsandboxed,
    )
    sandbox = resolve_isolation(isolation, allow_unsandboxed)
    if tests_column not in columns:
        data_columns = sorted(set(columns) - {"prompts", "completion_ids", "trainer_state", "log_extra", "log_metric"})
        raise ValueError(
            f"code_tests reads the tests from the dataset column {tests_column!r}, which this dataset lacks (its "
            f"columns: {', '.join(data_columns) or 'none'}). Add the column, or name yours with the option "
            f"tests_column (GRPOConfig.reward_kwargs['code_tests'])"
        )
    entry_points = columns.get("entry_point") or [None] * len(completions)
    rows: list[RowTests | None] = []
    for index, (tests, entry_point) in enumerate(zip(columns[tests_column], entry_points, strict=True)):
        try:
            rows.append(row_tests(tests, entry_point))
        except ValueError as error:
            raise ValueError(f"code_tests cannot test row {index} of the batch: {error}") from None
    programs = [extract_program(completion_text(completion)) for completion in completions]
    if include_prompt:
        programs = [prompt + program for prompt, program in zip(_prompt_texts(columns), programs, strict=True)]
    # A group often repeats a completion: each distinct (program, tests) runs once.
    jobs = list(dict.fromkeys(job for job in zip(programs, rows, strict=True) if job[1] is not None))
    limits = Limits(timeout_seconds=timeout_seconds, memory_mb=memory_mb, max_processes=max_processes)
    results = dict(zip(jobs, run_programs(jobs, sandbox, limits, max_workers), strict=True))
    rewards: list[float | None] = []
    for job in zip(programs, rows, strict=True):
        if job[1] is None:
            rewards.append(None)
            continue
        result = results[job]
        if scoring == "all":
            rewards.append(1.0 if result.passed == result.total else 0.0)
        else:
            rewards.append(result.passed / result.total)
    return rewards


def _prompt_texts(columns: dict[str, Any]) -> list[str]:
    prompts = columns.get("prompts")
    if prompts is None or not all(isinstance(prompt, str) for prompt in prompts):
        raise ValueError(
            "option include_prompt needs standard (text) prompts, which the function code continues; these are "
            "conversational or missing. Set include_prompt=False and have completions hold the whole program"
        )
    return prompts


def _check_options(
    *,
    tests_column: str,
    scoring: str,
    include_prompt: bool,
    timeout_seconds: float,
    memory_mb: int,
    max_processes: int,
    max_workers: int | None,
    isolation: str,
    allow_unsandboxed: bool,
) -> None:
    if not isinstance(tests_column, str) or not tests_column:
        raise ValueError(f"option 'tests_column' must name a dataset column, got {tests_column!r}")
    if scoring not in SCORINGS:
        raise ValueError(f"option 'scoring' must be one of {', '.join(map(repr, SCORINGS))}, got {scoring!r}")
    if (
        not isinstance(timeout_seconds, numbers.Real)
        or isinstance(timeout_seconds, bool)
        or not 0 < timeout_seconds <= 3600
    ):
        raise ValueError(f"option 'timeout_seconds' must be a number of seconds in (0, 3600], got {timeout_seconds!r}")
    if not _is_int(memory_mb) or memory_mb < 64:
        raise ValueError(
            f"option 'memory_mb' must be an integer number of megabytes, at least 64 (the interpreter's own), got "
            f"{memory_mb!r}"
        )
    if not _is_int(max_processes) or max_processes < 1:
        raise ValueError(f"option 'max_processes' must be a positive integer, got {max_processes!r}")
    if max_workers is not None and (not _is_int(max_workers) or max_workers < 1):
        raise ValueError(
            f"option 'max_workers' must be a positive integer, or None for every core, got {max_workers!r}"
        )
    if isolation not in ISOLATIONS:
        raise ValueError(f"option 'isolation' must be one of {', '.join(map(repr, ISOLATIONS))}, got {isolation!r}")
    if not isinstance(include_prompt, bool):
        raise ValueError(f"option 'include_prompt' must be True or False, got {include_prompt!r}")  # noqa: TRY004
    if not isinstance(allow_unsandboxed, bool):
        raise ValueError(  # noqa: TRY004 (the host expects ValueError from validate_options)
            f"option 'allow_unsandboxed' must be True or False, got {allow_unsandboxed!r}"
        )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _validate_options(**options: Any) -> None:
    """Check the options before training: their values (the reward's defaults for those not set), and that the
    chosen sandbox works on this machine."""
    defaults = {
        name: parameter.default
        for name, parameter in inspect.signature(code_tests).parameters.items()
        if parameter.kind is parameter.KEYWORD_ONLY
    }
    settings = {**defaults, **options}
    _check_options(**settings)
    try:
        resolve_isolation(settings["isolation"], settings["allow_unsandboxed"])
    except SandboxUnavailableError as error:
        raise ValueError(str(error)) from None


def _required_columns(tests_column: str = "tests", **options: Any) -> list[str]:
    """The column the tests come from, which the trainer checks the dataset has before it loads the model."""
    return [tests_column]


code_tests.validate_options = _validate_options
code_tests.required_columns = _required_columns


@hookimpl
def register_reward_functions(register):
    register(code_tests)
