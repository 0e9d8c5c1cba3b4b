"""The reward feature: what the user passed as `reward_funcs` (callables, plugin names, model ids) turned into
what TRL calls, each reward guarded.

Plugin names are resolved through the registry and bound to their options from `GRPOConfig.reward_kwargs`; every
reward callable is wrapped in a guard that names the reward (and its plugin) when it raises or breaks the reward
contract. Reward models (`nn.Module`) and model ids pass through to TRL unchanged.

TRL seam (see `trainer.py`): `__init__` resolves the rewards before TRL's own `__init__`, so a bad name fails before
any model loads; TRL then calls the guarded rewards in `_calculate_rewards` as it calls any reward function.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import importlib
import logging
import math
import numbers
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from trl.trainer.utils import get_callable_name, is_async_callable

from .components import BoundComponent, name_list
from .errors import PluginError, RewardFunctionError, UnknownComponentError

if TYPE_CHECKING:
    from .registry import ComponentRegistry

# Arguments TRL passes itself; a reward's other keyword parameters with defaults are its options.
_CONTRACT_ARGS = {"prompts", "completions", "completion_ids", "trainer_state", "log_extra", "log_metric"}
_FLOAT32_MAX = float(torch.finfo(torch.float32).max)

logger = logging.getLogger(__name__)


@dataclass
class Verdict:
    """A reward's answer for a batch: one value per completion (None where it failed), and why each failed."""

    values: list[float | None]
    problems: dict[int, str] = field(default_factory=dict)

    @classmethod
    def all_failed(cls, size: int, problem: str) -> Verdict:
        return cls([None] * size, dict.fromkeys(range(size), problem))


def _excerpt(completion: Any, limit: int = 80) -> str:
    text = repr(str(completion))
    return text if len(text) <= limit else text[: limit - 3] + "..."


class GuardedReward(BoundComponent):
    """A reward function with bound options, whose failures and contract violations raise one clear error.

    Plugin rewards have their options checked against what the function declares; a callable the user passed
    (`plugin=None`) is called as it is.
    """

    kind = "Reward function"
    contract_args = _CONTRACT_ARGS

    def __init__(
        self, func: Callable[..., Any], name: str, plugin: str | None = None, options: Mapping[str, Any] | None = None
    ) -> None:
        self.__name__ = name  # TRL names rewards (in metrics) by __name__
        self.__wrapped__ = func
        if plugin is None:  # a callable the user passed: its arguments are its own business
            self.func, self.name, self.plugin, self.options = func, name, None, dict(options or {})
        else:
            super().__init__(func, name, plugin, options)

    @property
    def config_field(self) -> str:
        return f"GRPOConfig.reward_kwargs['{self.name}']"

    @classmethod
    def resolve(cls, name: str, registry: ComponentRegistry, options: Mapping[str, Any] | None = None):
        return bind_plugin_reward(name, registry, options)  # the guard that fits: sync or async

    def required_columns(self) -> list[tuple[str, ...]]:
        """The dataset columns the reward reads, as its function declares them (`func.required_columns`: a list,
        or a function of the reward's options returning one); each entry is a tuple of names, one of which must be
        a column. Undeclared: none, as for TRL's plain callables."""
        declared = getattr(self.func, "required_columns", None)
        if callable(declared):
            declared = declared(**self.options)
        return [(entry,) if isinstance(entry, str) else tuple(entry) for entry in declared or ()]

    def _call_failed(self, error: Exception) -> RewardFunctionError:
        if self.plugin:
            return RewardFunctionError(self.failed(error))
        # a callable the user passed: reward_kwargs configures plugin rewards only
        return RewardFunctionError(
            self.failed(error, "Fix the reward function, or the arguments bound to it (e.g. with functools.partial)")
        )

    def _checked(self, rewards: Any, completions: Sequence[Any]) -> list[float | None]:
        """`rewards` as a list, or the first contract violation raised as one clear error."""
        verdict = self._verdict(rewards, completions)
        if verdict.problems:
            raise RewardFunctionError(next(iter(verdict.problems.values())))
        return verdict.values

    def _verdict(self, rewards: Any, completions: Sequence[Any]) -> Verdict:
        """What the reward returned, checked against the contract: its values, and what is wrong with which rows."""
        expected = len(completions)
        if hasattr(rewards, "tolist"):  # tensors and arrays
            rewards = rewards.tolist()
        if not isinstance(rewards, Sequence) or isinstance(rewards, (str, bytes)):
            return Verdict.all_failed(
                expected,
                f"{self.describe()} returned {type(rewards).__name__}; it must return a list with one float (or "
                f"None) per completion.",
            )
        if len(rewards) != expected:
            return Verdict.all_failed(
                expected,
                f"{self.describe()} returned {len(rewards)} rewards for {expected} completions; it must return "
                f"exactly one reward (a float, or None when not applicable) per completion.",
            )
        values, problems = list(rewards), {}
        for index, value in enumerate(rewards):
            if value is not None and not isinstance(value, numbers.Real):
                problems[index] = (
                    f"{self.describe()} returned {value!r} ({type(value).__name__}); each reward must be a float, "
                    f"or None when the reward does not apply to that completion."
                )
            # TRL stores rewards as float32: beyond its range a finite float becomes inf, and an infinite reward
            # turns its group's (or, for batch-level estimators, the whole batch's) advantages into 0 or NaN.
            elif value is not None and not math.isnan(value) and not abs(value) <= _FLOAT32_MAX:
                problems[index] = (
                    f"{self.describe()} returned {value!r} for the completion {_excerpt(completions[index])}; "
                    f"rewards must be finite numbers within float32 range (about ±3.4e38), or None (or NaN) for a "
                    f"completion the reward does not apply to. Fix or clamp the reward."
                )
        for index in problems:
            values[index] = None
        return Verdict(values, problems)

    def __call__(self, **kwargs: Any) -> list[float | None]:
        try:
            rewards = self.func(**{**kwargs, **self.options})
        except Exception as error:
            raise self._call_failed(error) from error
        return self._checked(rewards, kwargs["completions"])


class AsyncGuardedReward(GuardedReward):
    """`GuardedReward` for `async` reward functions; TRL runs it on its event loop like any async reward."""

    async def __call__(self, **kwargs: Any) -> list[float | None]:
        try:
            rewards = await self.func(**{**kwargs, **self.options})
        except Exception as error:
            raise self._call_failed(error) from error
        return self._checked(rewards, kwargs["completions"])


# --- failure policies: rewards that cannot take a run down -------------------------------------------------------

ON_ERROR_CHOICES = ("raise", "skip")
POLICY_KEYS = ("timeout", "on_error", "max_failure_share")


class RewardTimeout(BaseException):
    """Raised inside a reward's worker thread whose call ran past its timeout, to stop its Python-level work.

    A `BaseException`, like `KeyboardInterrupt`, so that a reward's own `except Exception` does not swallow it."""


class _ThreadCall:
    """One call running in a worker thread, and whether it is over: it returned, or its timeout passed."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.finished = False  # the thread is done with the call (and will not run reward code again)
        self.timed_out = False  # nobody waits for the call any more: its late work must stop, and not log

    def interrupt(self, thread: threading.Thread) -> None:
        """Stop the thread's work with `RewardTimeout`, unless it already finished: under the lock, an unfinished
        call's thread is alive, so the exception reaches that thread and no other that reuses its id."""
        with self.lock:
            self.timed_out = True
            if not self.finished:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(thread.ident), ctypes.py_object(RewardTimeout)
                )


@dataclass(frozen=True)
class RewardPolicy:
    """What happens when a reward fails on a completion: it raises, times out, or answers outside the contract
    (a value that is not a number, inf or beyond float32, a list of the wrong length or not a list).

    - `timeout`: seconds one call may take (the whole batch, retries included); None for no limit.
    - `on_error`: "raise" (stop the run), "skip" (that completion gets None from this reward: unscorable by it, as
      TRL reads None), or a number (that completion gets this reward).
    - `max_failure_share`: the run stops when failures and timeouts exceed this share of a batch's completions,
      over all processes, so a broken reward cannot silently train the model on nothing.
    """

    timeout: float | None = 300.0
    on_error: str | float = "skip"
    max_failure_share: float = 0.5

    @classmethod
    def for_reward(cls, args: Any, name: str) -> RewardPolicy:
        """The run-wide policy from `args`, with the reward's own entry of `args.reward_policies` over it."""
        policy = cls(args.reward_timeout, args.reward_on_error, args.reward_max_failure_share)
        own = (args.reward_policies or {}).get(name, {})
        return cls(**{**policy.__dict__, **own})

    def fill(self) -> float | None:
        """What a failed completion gets, under "skip" or a fixed score."""
        return None if self.on_error == "skip" else float(self.on_error)


def _check_policy(where: Callable[[str], str], timeout: Any, on_error: Any, max_failure_share: Any) -> Any:
    """Refuse a bad policy value naming the field; returns `on_error` normalized (a number given as text)."""
    if timeout is not None and (not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0):
        raise ValueError(f"{where('timeout')} must be a number of seconds > 0, or None for no limit; got {timeout!r}.")
    if isinstance(on_error, str) and on_error not in ON_ERROR_CHOICES:
        try:
            on_error = float(on_error)
        except ValueError:
            raise ValueError(
                f"{where('on_error')} must be 'raise', 'skip' or a number (the score a failed completion gets); got "
                f"{on_error!r}."
            ) from None
    if not isinstance(on_error, str) and (
        not isinstance(on_error, (int, float)) or isinstance(on_error, bool) or not abs(on_error) <= _FLOAT32_MAX
    ):
        raise ValueError(f"{where('on_error')} must be 'raise', 'skip' or a finite number; got {on_error!r}.")
    if not isinstance(max_failure_share, (int, float)) or not 0.0 <= max_failure_share <= 1.0:
        raise ValueError(
            f"{where('max_failure_share')} must be a share between 0 and 1 (1 never stops the run); got "
            f"{max_failure_share!r}."
        )
    return on_error


@dataclass
class _BatchStats:
    completions: int = 0
    failures: int = 0
    timeouts: int = 0
    seconds: float = 0.0
    example: str | None = None  # one failure, for the circuit breaker's message


class RewardRunner:
    """Runs a trainer's guarded rewards under their policies: sync ones in worker threads (at most `max_workers`
    at once, so one slow reward does not serialize the others), each call bounded by its timeout; counts failures
    and timeouts per batch, logs them, warns (rate-limited) and stops the run when a reward fails too often."""

    WARNING_INTERVAL = 60.0  # seconds between two warnings about one reward
    MAX_LATE_THREADS = 16  # timed-out calls stuck outside Python (e.g. in C) that may linger before the run stops

    def __init__(self, max_workers: int) -> None:
        self.max_workers = max_workers
        self.rewards: list[ResilientReward] = []
        self._stats: dict[int, _BatchStats] = {}
        self._last_warning: dict[str, float] = {}
        self._unwarned: dict[str, int] = {}
        self._late: list[tuple[str, threading.Thread]] = []
        self._slots: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None
        self.device: torch.device | None = None  # the training process's device, for rewards run in threads

    @classmethod
    def from_config(cls, args: Any) -> RewardRunner:
        return cls(args.reward_max_workers)

    async def in_thread(
        self, reward: ResilientReward, work: Callable[[_ThreadCall], Verdict], timeout: float | None
    ) -> Verdict:
        """`work(call)` in a fresh daemon thread, awaited for at most `timeout` seconds.

        On timeout the thread gets a `RewardTimeout` raised inside it, which stops Python-level work at its next
        instruction; work blocked outside Python (a C call, a lock) lingers until it returns, and is counted.
        """
        loop = asyncio.get_running_loop()
        if self._slots is None or self._slots[0] is not loop:  # one per event loop (TRL keeps one for the run)
            self._slots = (loop, asyncio.Semaphore(self.max_workers))
        device = self.device
        async with self._slots[1]:
            done = loop.create_future()
            call = _ThreadCall()

            def run() -> None:
                try:
                    try:
                        if device is not None and device.type == "cuda":  # the current GPU is per thread
                            torch.cuda.set_device(device)
                        outcome: tuple[Verdict | None, BaseException | None] = (work(call), None)
                    except BaseException as error:  # noqa: BLE001 (handed back to the awaiting coroutine)
                        outcome = (None, error)
                    with call.lock:
                        call.finished = True
                except RewardTimeout:  # arrived as the call returned: it is over either way
                    return
                with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits for this late call
                    loop.call_soon_threadsafe(lambda: done.done() or done.set_result(outcome))

            thread = threading.Thread(target=run, name=f"reward-{reward.name}", daemon=True)
            thread.start()
            try:
                verdict, error = await asyncio.wait_for(done, timeout)
            except asyncio.TimeoutError:
                call.interrupt(thread)
                self._late.append((reward.name, thread))
                raise
            if error is not None:
                raise error
            return verdict

    def record(self, reward: ResilientReward, verdict: Verdict, timed_out: bool, seconds: float, completions) -> None:
        stats = self._stats.setdefault(id(reward), _BatchStats())  # by reward: two may share a name
        stats.completions += len(verdict.values)
        stats.timeouts += len(verdict.problems) if timed_out else 0
        stats.failures += 0 if timed_out else len(verdict.problems)
        stats.seconds += seconds
        if verdict.problems:
            index, problem = next(iter(verdict.problems.items()))
            stats.example = f"{problem} (completion {_excerpt(completions[index])})"
            self._warn(reward.name, stats.example, len(verdict.problems))

    def _warn(self, name: str, example: str, count: int) -> None:
        now = time.monotonic()
        if now - self._last_warning.get(name, -math.inf) < self.WARNING_INTERVAL:
            self._unwarned[name] = self._unwarned.get(name, 0) + count
            return
        earlier = self._unwarned.pop(name, 0)
        since = f" ({earlier} more failures since the last warning)" if earlier else ""
        logger.warning("Reward '%s' failed on %d completion(s)%s: %s", name, count, since, example)
        self._last_warning[name] = now

    def finish_batch(self, accelerator: Any, metrics: Mapping[str, list[float]]) -> None:
        """Log the batch's failures, timeouts and seconds per reward (over all processes), and stop the run if a
        reward failed on more than its policy's share of completions. Every process reaches the same verdict."""
        local = torch.tensor(
            [[s.completions, s.failures, s.timeouts, s.seconds] for s in map(self._batch_stats, self.rewards)],
            dtype=torch.float64,
        )
        stats, self._stats = self._stats, {}
        if not len(local):
            return
        totals = accelerator.gather(local.to(accelerator.device)).view(-1, len(self.rewards), 4).cpu()
        for reward, (completions, failures, timeouts, _), seconds in zip(
            self.rewards, totals.sum(0).tolist(), totals[:, :, 3].amax(0).tolist(), strict=True
        ):
            metrics[f"rewards/{reward.name}/failures"].append(failures)
            metrics[f"rewards/{reward.name}/timeouts"].append(timeouts)
            metrics[f"rewards/{reward.name}/seconds"].append(seconds)
            share = (failures + timeouts) / max(completions, 1.0)
            if share > reward.policy.max_failure_share:
                example = stats.get(id(reward), _BatchStats()).example
                raise RewardFunctionError(
                    f"{reward.describe()} failed on {failures + timeouts:.0f} of {completions:.0f} completions of "
                    f"this batch ({failures:.0f} errors, {timeouts:.0f} timeouts), more than its "
                    f"max_failure_share={reward.policy.max_failure_share} allows: a broken reward must not train "
                    f"the model on nothing. "
                    + (f"One failure: {example}. " if example else "")
                    + "Fix the reward, or raise GRPOConfig.reward_max_failure_share (or this reward's entry in "
                    "reward_policies)."
                )
        self._late = [(name, thread) for name, thread in self._late if thread.is_alive()]
        if len(self._late) > self.MAX_LATE_THREADS:
            names = sorted({name for name, _ in self._late})
            raise RewardFunctionError(
                f"{len(self._late)} calls of reward(s) {', '.join(names)} are still running after their timeout, "
                f"blocked outside Python where they cannot be interrupted; more would pile up with every batch. "
                f"Make the reward return (e.g. give its network or subprocess calls their own timeouts)."
            )

    def _batch_stats(self, reward: ResilientReward) -> _BatchStats:
        return self._stats.get(id(reward), _BatchStats())


class _CallLogs:
    """TRL's `log_extra` / `log_metric` as one reward call sees them: calls after the call is over (a timed-out
    thread's late work) are dropped, and a column the reward logged before but not in this call (it failed first)
    is logged as empty, so the completions table never pairs these completions with an earlier batch's values."""

    def __init__(self, log_extra, log_metric, known_columns: set[str]) -> None:
        self._log_extra, self._log_metric = log_extra, log_metric
        self._known = known_columns
        self._logged: set[str] = set()
        self._open = True

    def callbacks(self) -> dict[str, Callable[..., None]]:
        def log_extra(column: str, values: list) -> None:
            if self._open:
                self._logged.add(column)
                self._log_extra(column, values)

        def log_metric(name: str, value: float) -> None:
            if self._open:
                self._log_metric(name, value)

        return {
            **({"log_extra": log_extra} if self._log_extra is not None else {}),
            **({"log_metric": log_metric} if self._log_metric is not None else {}),
        }

    def close(self, size: int) -> None:
        self._open = False
        if self._log_extra is not None:
            for column in sorted(self._known - self._logged):
                self._log_extra(column, [None] * size)
        self._known |= self._logged


class ResilientReward(GuardedReward):
    """A guarded reward run under its `RewardPolicy` by a `RewardRunner`: async, so TRL awaits it concurrently with
    the other rewards; a completion it fails on gets the policy's answer instead of stopping the run."""

    def __init__(self, func, name, plugin=None, options=None, *, policy: RewardPolicy, runner: RewardRunner) -> None:
        super().__init__(func, name, plugin, options)
        self.policy = policy
        self.runner = runner
        self._is_async = is_async_callable(func)
        self._logged_columns: set[str] = set()  # the completions-table columns this reward has logged
        runner.rewards.append(self)

    async def __call__(self, **kwargs: Any) -> list[float | None]:
        completions = kwargs["completions"]
        start = time.perf_counter()
        timed_out = False
        kwargs, logs = self._logging(kwargs)
        try:
            if self._is_async:
                verdict = await asyncio.wait_for(self._score_async(kwargs), self.policy.timeout)
            else:
                verdict = await self.runner.in_thread(
                    self, lambda call: self._score_sync(kwargs, call), self.policy.timeout
                )
        except asyncio.TimeoutError:
            timed_out = True
            verdict = Verdict.all_failed(
                len(completions), f"{self.describe()} timed out after {self.policy.timeout} s on this batch"
            )
        logs.close(len(completions))
        return self._answer(verdict, timed_out, time.perf_counter() - start, completions)

    def _logging(self, kwargs: dict[str, Any]) -> tuple[dict[str, Any], _CallLogs]:
        logs = _CallLogs(kwargs.get("log_extra"), kwargs.get("log_metric"), self._logged_columns)
        return {**kwargs, **logs.callbacks()}, logs

    def _answer(self, verdict: Verdict, timed_out: bool, seconds: float, completions) -> list[float | None]:
        """Record the call, then the values with the policy's answer for every completion that failed."""
        self.runner.record(self, verdict, timed_out, seconds, completions)
        if not verdict.problems:
            return verdict.values
        if self.policy.on_error == "raise":
            index, problem = next(iter(verdict.problems.items()))
            fix = "; set GRPOConfig.reward_on_error='skip' (or a score) to score such completions and go on"
            raise RewardFunctionError(f"{problem} (completion {_excerpt(completions[index])}){fix}.")
        fill = self.policy.fill()
        return [fill if index in verdict.problems else value for index, value in enumerate(verdict.values)]

    def _score_sync(self, kwargs: dict[str, Any], call: _ThreadCall | None = None) -> Verdict:
        try:
            return self._verdict(self.func(**{**kwargs, **self.options}), kwargs["completions"])
        except Exception as error:  # find the completions it fails on: score them one by one
            verdicts = []
            for row in _single_rows(kwargs):
                if call is not None and call.timed_out:  # nobody waits for the answer any more
                    raise RewardTimeout from None
                verdicts.append(self._one_sync(row))
            return self._merge(verdicts, error)

    def _one_sync(self, row: dict[str, Any]) -> Verdict | Exception:
        try:
            return self._verdict(self.func(**{**row, **self.options}), row["completions"])
        except Exception as error:
            return error

    async def _score_async(self, kwargs: dict[str, Any]) -> Verdict:
        try:
            return self._verdict(await self.func(**{**kwargs, **self.options}), kwargs["completions"])
        except Exception as error:  # the completions one by one, concurrently, within the same timeout

            async def one(row: dict[str, Any]) -> Verdict | Exception:
                try:
                    return self._verdict(await self.func(**{**row, **self.options}), row["completions"])
                except Exception as row_error:
                    return row_error

            return self._merge(list(await asyncio.gather(*map(one, _single_rows(kwargs)))), error)

    def _merge(self, verdicts: list[Verdict | Exception], batch_error: Exception) -> Verdict:
        values, problems = [], {}
        for index, verdict in enumerate(verdicts):
            if isinstance(verdict, Exception):
                values.append(None)
                problems[index] = self.failed(verdict, "Fix the reward")
            else:
                values.append(verdict.values[0])
                if verdict.problems:
                    problems[index] = verdict.problems[0]
        if not problems:  # it failed on the batch, but on no completion alone
            return Verdict.all_failed(len(verdicts), self.failed(batch_error, "Fix the reward"))
        return Verdict(values, problems)


class MainThreadResilientReward(ResilientReward):
    """A sync reward under its policy, called by TRL on the main thread one after the other, as TRL calls it
    (`reward_max_workers=0`): for rewards that need the main thread, such as those timing themselves out with
    `signal.alarm`. Its `timeout` cannot be enforced there, and is not."""

    def __call__(self, **kwargs: Any) -> list[float | None]:
        start = time.perf_counter()
        kwargs, logs = self._logging(kwargs)
        verdict = self._score_sync(kwargs)
        logs.close(len(kwargs["completions"]))
        return self._answer(verdict, False, time.perf_counter() - start, kwargs["completions"])


def _single_rows(kwargs: dict[str, Any]) -> list[dict[str, Any]]:
    """The call's keyword arguments for each completion alone: per-completion columns sliced, the rest as they are,
    and TRL's logging callbacks silenced (the batch call already logged)."""
    size = len(kwargs["completions"])
    per_row = [key for key, value in kwargs.items() if isinstance(value, list) and len(value) == size]
    silent = {"log_extra": lambda *args, **kw: None, "log_metric": lambda *args, **kw: None}
    shared = {key: value for key, value in kwargs.items() if key not in per_row}
    return [
        {
            **shared,
            **{k: v for k, v in silent.items() if k in kwargs},
            **{key: kwargs[key][i : i + 1] for key in per_row},
        }
        for i in range(size)
    ]


def guard(
    func: Callable[..., Any],
    name: str,
    plugin: str | None = None,
    options=None,
    *,
    policy: RewardPolicy | None = None,
    runner: RewardRunner | None = None,
) -> GuardedReward:
    """`func` guarded: under `policy` when a `runner` runs it, else raising on the first failure."""
    if runner is not None:
        main_thread = runner.max_workers == 0 and not is_async_callable(func)
        cls = MainThreadResilientReward if main_thread else ResilientReward
        return cls(func, name, plugin, options, policy=policy or RewardPolicy(), runner=runner)
    cls = AsyncGuardedReward if is_async_callable(func) else GuardedReward
    return cls(func, name, plugin, options)


def bind_plugin_reward(
    name: str, rewards: ComponentRegistry, options: Mapping[str, Any] | None, **policy: Any
) -> GuardedReward:
    """The registered reward `name` with its `options`, checked against what the function declares."""
    func = rewards.resolve(name)
    return guard(func, name, rewards.plugin_of(name), options, **policy)


def _is_import_path(name: str) -> bool:
    # "my_lib.rewards.custom_reward": dotted identifiers, never a local directory (a model)
    return "." in name and all(part.isidentifier() for part in name.split(".")) and not os.path.isdir(name)


def _import_reward(path: str) -> Callable[..., Any]:
    """The reward function at the dotted import `path`, importable from the working directory as in TRL's script."""
    module_name, attribute = path.rsplit(".", 1)
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise UnknownComponentError(
            f"Reward function '{path}' is neither a registered reward nor importable: {error}. Check the dotted "
            f"path (module.function, importable from the working directory), or use a registered name "
            f"(`trl-grpo-plus plugins` lists them)."
        ) from None
    if not callable(getattr(module, attribute, None)):
        raise UnknownComponentError(f"Reward function '{path}': module '{module_name}' has no function '{attribute}'.")
    return getattr(module, attribute)


def _looks_like_model(name: str) -> bool:
    # TRL reads any other string as a reward model: a local directory, or a Hub id, which is "org/name" in practice.
    return os.path.isdir(name) or "/" in name


def resolve_reward_funcs(
    reward_funcs: Any,
    reward_plugins: Sequence[str] | None,
    reward_kwargs: Mapping[str, Mapping[str, Any]] | None,
    rewards: ComponentRegistry,
    *,
    args: Any = None,
    runner: RewardRunner | None = None,
) -> list[Any]:
    """The reward list to hand to TRL: plugin names bound and guarded, callables guarded, models as they are.

    `reward_plugins` are appended after `reward_funcs`, in order (so `reward_weights` follow that order). With a
    `runner`, every guarded reward runs under its policy from `args` (`RewardPolicy.for_reward`).
    """

    def policy(name: str, alias: str | None = None) -> dict[str, Any]:
        if runner is None:
            return {}
        own = alias if alias is not None and alias in (args.reward_policies or {}) else name
        return {"runner": runner, "policy": RewardPolicy.for_reward(args, own)}

    if reward_funcs is None:
        reward_funcs = []
    elif not isinstance(reward_funcs, list):
        reward_funcs = [reward_funcs]
    reward_kwargs = dict(reward_kwargs or {})
    resolved, plugin_names, callable_names, aliases = [], [], [], []
    for index, item in enumerate(list(reward_funcs) + list(reward_plugins or [])):
        from_config = index >= len(reward_funcs)
        if isinstance(item, str) and item not in rewards and _is_import_path(item):
            # As TRL's `grpo` script reads one; its options and policy go by the path as typed (or its name)
            func = _import_reward(item)
            name = get_callable_name(func)
            options = reward_kwargs.get(item, reward_kwargs.get(name))
            resolved.append(guard(func, name, func.__module__, options, **policy(name, alias=item)))
            plugin_names += [item, name]
            aliases.append(item)
            continue
        if isinstance(item, str) and (item in rewards or from_config or not _looks_like_model(item)):
            try:
                resolved.append(bind_plugin_reward(item, rewards, reward_kwargs.get(item), **policy(item)))
            except UnknownComponentError as error:
                hint = (
                    ""
                    if from_config
                    else " To use a reward model instead, pass its Hub id ('org/name') or a local directory."
                )
                raise UnknownComponentError(f"{error}{hint}", name=error.name, kind=error.kind) from None
            plugin_names.append(item)
        elif isinstance(item, (str, nn.Module)):
            resolved.append(item)  # TRL loads and runs reward models itself
        elif callable(item):
            if isinstance(item, GuardedReward):
                resolved.append(item)
            else:
                resolved.append(guard(item, get_callable_name(item), **policy(get_callable_name(item))))
            callable_names.append(resolved[-1].__name__)
        else:
            raise TypeError(
                f"reward_funcs entries must be callables, reward models, or reward plugin names; got {item!r}."
            )
    stray = sorted(set(reward_kwargs) - set(plugin_names))
    callables = [name for name in stray if name in callable_names]
    if callables:
        name = callables[0]
        raise PluginError(
            f"GRPOConfig.reward_kwargs has options for {name!r}, a callable passed in reward_funcs, not a plugin "
            f"reward: reward_kwargs configures plugin rewards only. Bind the callable's arguments yourself, e.g. "
            f"reward_funcs=[functools.partial({name}, option=value)], and remove its reward_kwargs entry."
        )
    if stray:
        raise PluginError(
            f"GRPOConfig.reward_kwargs has options for {', '.join(map(repr, stray))}, which is not among the "
            f"rewards in use that take options ({', '.join(plugin_names) or 'none'}: plugin rewards and dotted "
            f"import paths). Fix the name, add the reward to reward_funcs / reward_plugins, or remove its options."
        )
    if args is not None:
        guarded = [reward.name for reward in resolved if isinstance(reward, GuardedReward)]
        unknown = sorted(set(args.reward_policies or {}) - set(guarded) - set(aliases))
        if unknown:
            raise PluginError(
                f"GRPOConfig.reward_policies has a policy for {', '.join(map(repr, unknown))}, which is not among the "
                f"reward functions in use ({', '.join(guarded) or 'none'}; reward models follow TRL's own handling). "
                f"Fix the name, or remove the entry."
            )
    return resolved


def check_config(args: Any) -> None:
    """Refuse bad reward settings of a `GRPOConfig` before any model is loaded; reads a comma-separated
    `reward_plugins` entry as several names."""
    args.reward_plugins = name_list(args.reward_plugins, "reward_plugins", "reward names (strings)")
    if args.reward_kwargs is not None and not (
        isinstance(args.reward_kwargs, dict) and all(isinstance(v, dict) for v in args.reward_kwargs.values())
    ):
        raise ValueError(
            "reward_kwargs must map each reward name to a dict of its options, e.g. "
            f'{{"overlong_penalty": {{"max_length": 512, "cache_length": 128}}}}; got {args.reward_kwargs!r}.'
        )
    workers = args.reward_max_workers
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 0:
        raise ValueError(
            f"reward_max_workers must be an integer >= 1 (reward calls at once), or 0 to run sync rewards on the "
            f"main thread as TRL does; got {workers!r}."
        )
    args.reward_on_error = _check_policy(
        lambda key: f"reward_{key}", args.reward_timeout, args.reward_on_error, args.reward_max_failure_share
    )
    if args.reward_policies is not None and not (
        isinstance(args.reward_policies, dict) and all(isinstance(v, dict) for v in args.reward_policies.values())
    ):
        raise ValueError(
            "reward_policies must map reward names to their policy, e.g. "
            f'{{"accuracy": {{"timeout": 10, "on_error": 0.0}}}}; got {args.reward_policies!r}.'
        )
    for name, own in (args.reward_policies or {}).items():
        unknown = sorted(set(own) - set(POLICY_KEYS))
        if unknown:
            raise ValueError(
                f"reward_policies[{name!r}] has {', '.join(map(repr, unknown))}; a policy sets "
                f"{', '.join(POLICY_KEYS)}."
            )
        merged = {**RewardPolicy.for_reward(args, "\0").__dict__, **own}  # the run-wide values, then its own
        own_on_error = _check_policy(lambda key, name=name: f"reward_policies[{name!r}][{key!r}]", **merged)
        if "on_error" in own:
            own["on_error"] = own_on_error
