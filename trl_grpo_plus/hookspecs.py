"""Hook specifications: everything a `trl_grpo_plus` plugin can implement.

A plugin is any module or object with functions decorated by `trl_grpo_plus.hookimpl`. Installed distributions
expose plugins through the `trl_grpo_plus` entry-point group::

    [project.entry-points.trl_grpo_plus]
    my_plugin = "my_package.plugin"

Hooks are called with keyword arguments only. An implementation may accept fewer arguments than its spec, so specs
can gain arguments in later versions without breaking existing plugins.

All hooks here are *registration* hooks: each receives a `register` callable and calls it once per component it
provides. Grouped by phase: what is scored (rewards), what trains (advantage estimators, group-size schedules), and
what is watched (rollout monitors). The built-in components are registered through the very same hooks (see `trl_grpo_plus.default_plugins`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import pluggy

if TYPE_CHECKING:
    import torch

    from .rollout_monitoring import MonitorResult, RolloutBatch
    from .schedule_requests import GroupSizeRequest

PROJECT_NAME = "trl_grpo_plus"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


class Register(Protocol):
    """The `register` callable handed to every registration hook."""

    def __call__(self, component: Callable[..., Any], name: str | None = None) -> None:
        """Register `component` under `name` (default: the component's `__name__`).

        Raises `DuplicateComponentError` when another plugin already registered that name.
        """


# The one signature of each component kind: what the trainer passes. A component may take more: its options, as
# keyword parameters (with a default, or keyword-only without one for a required option), set per run in
# GRPOConfig's `reward_kwargs` / `advantage_kwargs` / `group_size_kwargs` / `monitor_kwargs`.


class RewardFunction(Protocol):
    """TRL's reward contract, unchanged: any TRL reward function is a valid component. The trainer passes every
    argument by keyword, with each dataset column as another keyword (so a reward takes `**kwargs`)."""

    def __call__(
        self, *, prompts: list[Any], completions: list[Any], completion_ids: list[list[int]], **kwargs: Any
    ) -> Sequence[float | None]: ...


class AdvantageEstimatorFunction(Protocol):
    """Advantages `[N]` of a generation batch from its rewards `[N, R]`, reward weights `[R]` and group ids `[N]`,
    passed positionally."""

    def __call__(
        self, rewards_per_func: torch.Tensor, reward_weights: torch.Tensor, group_ids: torch.Tensor, /
    ) -> torch.Tensor: ...


class GroupSizeScheduleFunction(Protocol):
    """The group size of each of the first prompts of a `GroupSizeRequest`, passed positionally."""

    def __call__(self, request: GroupSizeRequest, /) -> list[int]: ...


class RolloutMonitorFunction(Protocol):
    """What a monitor makes of one scored generation batch (`RolloutBatch`), given its own `state` dict (the same
    dict at every call of a run, saved in checkpoints), passed positionally: metrics, alerts, or None."""

    def __call__(
        self, batch: RolloutBatch, state: dict[str, Any], /
    ) -> MonitorResult | Mapping[str, float] | None: ...


@hookspec
def register_reward_functions(register: Register) -> None:
    """Register reward functions, selectable by name in `reward_funcs=[...]` or `GRPOConfig.reward_plugins`.

    Call ``register(func, name=None)`` once per reward. ``func`` is a `RewardFunction`: TRL's reward contract
    unchanged, so any existing TRL reward function can be registered as it is::

        func(prompts: list, completions: list, completion_ids: list[list[int]], **kwargs) -> list[float | None]

    - ``prompts`` / ``completions``: one entry per completion (a prompt is repeated for each of its completions);
      strings for standard datasets, lists of ``{"role", "content"}`` messages for conversational ones.
    - ``kwargs``: every other dataset column (one value per completion), plus TRL's ``trainer_state``,
      ``log_extra`` and ``log_metric``, plus the options the user set in ``GRPOConfig.reward_kwargs[name]``.
      Options are declared as keyword parameters of ``func``; a parameter without a default is a required option.
    - Returns one reward per completion; ``None`` means "not applicable" (for instance no gold answer), and that
      reward is then left out for that completion.

    ``func`` may be ``async``. The name defaults to ``func.__name__`` and appears in the logged metrics as
    ``rewards/<name>/mean``.
    """


@hookspec
def register_advantage_estimators(register: Register) -> None:
    """Register advantage estimators, selectable by name with ``GRPOConfig.advantage_estimator``.

    Call ``register(estimator, name=None)`` once per estimator. Every estimator is an `AdvantageEstimatorFunction`::

        estimator(rewards_per_func: Tensor[N, R], reward_weights: Tensor[R], group_ids: LongTensor[N], **options)
            -> Tensor[N]

    - ``rewards_per_func``: float32, the reward of each of the N completions of a generation batch (all processes,
      in global order) under each of the R reward functions; NaN where a function returned ``None``. A row that is
      NaN throughout is *unscorable*: it must get advantage 0 and must not move any baseline.
    - ``reward_weights``: float32, TRL's ``reward_weights``, one per reward function.
    - ``group_ids``: int64, the group (prompt) of each completion. Ids are arbitrary integers, not necessarily
      contiguous or sorted, and groups may differ in size (group-size schedules make ragged groups). Never reshape
      by a fixed group size; ``trl_grpo_plus.ragged_groups.GroupLayout`` turns ids into a dense NaN-padded table.
    - ``options``: keyword-only parameters, set by the user in ``GRPOConfig.advantage_kwargs``; a parameter without a
      default is required. An optional ``estimator.validate_options(**options)`` may raise ``ValueError``.
    - Returns float advantages of shape ``[N]``, finite everywhere. The trainer checks this on every call, and once at
      start-up on a small ragged batch, and raises an error naming the estimator and its plugin otherwise.

    The same batch is seen by every process, so an estimator may use batch-level statistics. With zero-variance
    filtering it sees only the kept groups: the batch that trains.

    Built-ins (plugin ``advantages``): ``grpo``, ``dr_grpo``, ``batch_std``, ``rloo``, ``reinforce_pp``, ``gdpo``,
    ``rank``.
    """


@hookspec
def register_group_size_schedules(register: Register) -> None:
    """Register group-size schedules, selectable by name with ``GRPOConfig.group_size_schedule``.

    Call ``register(schedule, name=None)`` once per schedule. A schedule decides, for each generation batch, how many
    completions each prompt gets. Every schedule is a `GroupSizeScheduleFunction`::

        schedule(request: GroupSizeRequest, **options) -> list[int]

    - ``request`` (``trl_grpo_plus.schedule_requests.GroupSizeRequest``) is asked when the batch is generated, so it
      reflects every earlier batch: ``step`` (the optimizer step), ``prompts`` (dataset indices of the candidate
      prompts, in data order) and their ``examples`` (dataset rows), ``completions`` (the budget) or ``num_prompts``
      (with ``GRPOConfig.group_size_budget="prompts"``), ``num_generations`` (the configured size), and
      ``history`` (``ScheduleHistory``: each prompt's recent rewards and pass rate, each batch's sizes and share of
      zero-variance groups, and a free ``state`` dict for the schedule's own bookkeeping).
    - Returns the group size of each of the first ``len(sizes)`` candidate prompts, every size >= 2. With a fixed
      budget the sizes sum to exactly ``request.completions`` (``request.uniform(size)`` splits it evenly: 16 at size
      3 gives ``[3, 3, 3, 3, 4]``); the unused candidates lead the next batch, so no prompt is skipped. With a fixed
      number of prompts there is one size per prompt (the total is padded to a multiple of the number of processes).
    - ``options``: keyword-only parameters, set by the user in ``GRPOConfig.group_size_kwargs``; a parameter without
      a default is required. An optional ``schedule.validate_options(**options)`` may raise ``ValueError``.
      Raise ``ValueError`` from the schedule when its options cannot size a batch (say, a size above the budget).
    - An optional ``schedule.fixed_size(num_generations, **options) -> int`` says the schedule always answers that
      one size; when it equals ``num_generations``, TRL's own sampler lays out the data (the built-in ``constant``).
    - Must be deterministic given the request: every process plans the same batch without communicating, and a
      resumed run (the history is saved in checkpoints) must plan as an uninterrupted one.

    The trainer checks every answer, and asks once per step for the first steps against an empty history before
    training, raising an error that names the schedule and its plugin.

    Built-ins (plugin ``schedules``): ``constant``, ``linear``, ``cosine``, ``step``, ``adaptive_zero_variance``,
    ``per_prompt_adaptive``.
    """


@hookspec
def register_rollout_monitors(register: Register) -> None:
    """Register rollout monitors, selectable by name with ``GRPOConfig.rollout_monitors``.

    A monitor watches the completions of every training generation batch once they are scored and their advantages
    set, and reports metrics and, when it sees something wrong (reward hacking, collapse), alerts. It never changes
    what trains. Call ``register(monitor, name=None)`` once per monitor. Every monitor is a
    `RolloutMonitorFunction`::

        monitor(batch: RolloutBatch, state: dict, **options) -> MonitorResult | dict[str, float] | None

    - ``batch`` (``trl_grpo_plus.rollout_monitoring.RolloutBatch``, frozen): the whole generation batch, every
      process's completions in global order, every sampling round under dynamic sampling: ``step`` (the optimizer
      step), ``prompts``, ``completions``, ``completion_ids`` and ``completion_lengths`` (tokens), ``rewards``
      (name -> float32 ``Tensor[N]``, NaN where a reward returned None, for every reward, trained and audit),
      ``trained_rewards`` and ``audit_rewards`` (names), ``reward_weights`` (of the trained ones), ``group_ids``,
      ``advantages`` (NaN for rows that do not train) and ``kept`` (bool: the row's group trains; all True without
      zero-variance filtering). ``batch.total_reward()`` is the weighted trained reward the estimator sees.
    - ``state``: a dict the monitor owns for the run, empty at the first call, kept between calls (an early-run
      level, a window of past values). Keep JSON values in it (numbers, strings, lists, dicts): it is saved in
      checkpoints and restored on resume. No global state: two trainers never share a monitor's state.
    - ``options``: keyword-only parameters, set by the user in ``GRPOConfig.monitor_kwargs[name]``; a parameter
      without a default is required. An optional ``monitor.validate_options(**options)`` may raise ``ValueError``;
      an optional ``monitor.check_run(trained_rewards, audit_rewards, **options)`` may raise ``ValueError`` when the
      run cannot feed the monitor (say, no audit reward to compare with). Both run before any model is loaded.
    - Returns ``MonitorResult(metrics={...}, alerts=[Alert(kind, message, rows), ...])``, a plain dict of
      metrics, or None. Metrics are finite numbers, logged as ``monitor/<name>/<metric>`` (with
      ``monitor/<name>/alerts``, the alerts of the batch). An ``Alert`` has a short ``kind`` (``"shrank"``), a
      ``message`` that says what was seen, and ``rows``: indices of the completions behind it, as examples.
    - What an alert does is the user's choice, ``GRPOConfig.monitor_alert_action``: ``"warn"`` (log the first
      alert of each monitor and kind, with an example completion; count them all) or ``"stop"`` (save a checkpoint,
      then raise ``RolloutMonitorStop`` with the alert's message).
    - Cost: a monitor is called once per generation batch on the main training path, on every process (with the
      same batch, so it decides the same; rank 0's verdict is the one applied). Keep it to arithmetic on the batch:
      no model forward passes, no network.
    - A monitor with the attribute ``reads_alerts = True`` runs after the others and finds their alerts on this
      batch in ``batch.alerts`` (the built-in ``flagged_samples`` writes their completions to a file).

    Built-ins (plugin ``monitors``): ``length_drift``, ``diversity``, ``repetition``, ``reward_divergence``,
    ``flagged_samples``.
    """
