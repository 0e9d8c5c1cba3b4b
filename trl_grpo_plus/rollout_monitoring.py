"""The rollout-monitoring feature: monitors that watch every scored generation batch for reward hacking and collapse.

A monitor (registered through `register_rollout_monitors`, chosen by name in `GRPOConfig.rollout_monitors`) gets
each training generation batch as a frozen `RolloutBatch` once its rewards are scored and its advantages set, plus a
state dict of its own that lives as long as the run, and returns metrics and alerts (`MonitorResult`, `Alert`).
`MonitorRunner` calls the monitors, logs their metrics as `monitor/<name>/<metric>`, and applies
`GRPOConfig.monitor_alert_action` to their alerts: `"warn"` logs the first alert of each monitor and kind with an
example completion, `"stop"` saves a checkpoint through the trainer's own `_save_checkpoint`, then raises
`RolloutMonitorStop` saying what was seen. Monitors never change what trains.

Every process builds the same batch (all processes' completions, gathered as TRL gathers rewards) and runs the
monitors on it; rank 0's results are the ones applied on every rank, so a `"stop"` stops all of them at the same
step. The monitors' states, the alerts raised and the kinds already warned about are saved in checkpoints
(`rollout_monitors.json`) and restored on resume.

TRL seams (see `trainer.py`): `_generate_and_score_completions` hands the batch to `MonitorRunner.observe` after the
advantages are set (training only); `_calculate_rewards` keeps the batch's prompts and completions for it;
`_save_checkpoint` / `_load_optimizer_and_scheduler` call `save` / `load`.
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

import torch
from accelerate.utils import broadcast_object_list, gather_object

from .components import BoundComponent, name_list
from .errors import PluginError

if TYPE_CHECKING:
    from .registry import ComponentRegistry

logger = logging.getLogger(__name__)

STATE_FILE = "rollout_monitors.json"
ALERT_ACTIONS = ("warn", "stop")


@dataclass(frozen=True)
class Alert:
    """What a monitor saw: a short `kind` ("shrank"), a `message` saying what, and the batch `rows` behind it."""

    kind: str
    message: str
    rows: tuple[int, ...] = ()


@dataclass(frozen=True)
class MonitorResult:
    """A monitor's answer for one batch: metrics (logged as `monitor/<name>/<key>`) and alerts."""

    metrics: Mapping[str, float] = field(default_factory=dict)
    alerts: Sequence[Alert] = ()


@dataclass(frozen=True)
class RaisedAlert:
    """An alert as the run records it: which monitor raised it, at which step, with examples of its completions."""

    step: int
    monitor: str
    kind: str
    message: str
    examples: tuple[dict[str, Any], ...] = ()

    def describe(self) -> str:
        return f"rollout monitor '{self.monitor}' ({self.kind}) at step {self.step}: {self.message}"


@dataclass(frozen=True)
class RolloutBatch:
    """One training generation batch, scored, over all processes in global order (every dynamic-sampling round).

    `rewards` holds every reward by name, trained and audit (float32 `[N]`, NaN where it returned None);
    `advantages` is NaN for rows that do not train; `kept` says whether a row's group trains (always, without
    zero-variance filtering). `alerts` (for monitors with `reads_alerts`) are the other monitors' alerts on this batch.
    """

    step: int
    prompts: list[Any]
    completions: list[Any]
    completion_ids: list[list[int]]
    completion_lengths: torch.Tensor
    rewards: dict[str, torch.Tensor]
    trained_rewards: tuple[str, ...]
    audit_rewards: tuple[str, ...]
    reward_weights: dict[str, float]
    group_ids: torch.Tensor
    advantages: torch.Tensor
    kept: torch.Tensor
    alerts: tuple[RaisedAlert, ...] = ()
    output_dir: str | None = None
    is_main_process: bool = True

    def __len__(self) -> int:
        return len(self.completions)

    def total_reward(self) -> torch.Tensor:
        """The weighted trained reward of each row, as the estimator sees it; NaN where no trained reward scored."""
        columns = torch.stack([self.rewards[name] for name in self.trained_rewards], dim=1)
        weights = torch.tensor([self.reward_weights[name] for name in self.trained_rewards])
        total = (columns * weights.to(columns)).nansum(dim=1)
        total[torch.isnan(columns).all(dim=1)] = torch.nan
        return total

    def groups(self) -> list[list[int]]:
        """The rows of each group, groups in order of first appearance."""
        members: dict[int, list[int]] = {}
        for row, group in enumerate(self.group_ids.tolist()):
            members.setdefault(group, []).append(row)
        return list(members.values())

    def example(self, row: int) -> dict[str, Any]:
        """Row `row` as plain JSON: prompt, completion, length, group, rewards, advantage, kept."""
        rewards = {name: values[row].item() for name, values in self.rewards.items()}
        advantage = self.advantages[row].item()
        return {
            "prompt": _plain(self.prompts[row]),
            "completion": _plain(self.completions[row]),
            "length": int(self.completion_lengths[row]),
            "group": int(self.group_ids[row]),
            "rewards": {name: None if math.isnan(value) else value for name, value in rewards.items()},
            "advantage": None if math.isnan(advantage) else advantage,
            "kept": bool(self.kept[row]),
        }


def _plain(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool, type(None), list, dict)) else str(value)


def _excerpt(completion: Any, limit: int = 120) -> str:
    text = repr(completion if isinstance(completion, str) else str(completion))
    return text if len(text) <= limit else text[: limit - 3] + "..."


class RolloutMonitorStop(RuntimeError):
    """Training stopped because a rollout monitor raised an alert under `monitor_alert_action="stop"`."""

    def __init__(self, message: str, alert: RaisedAlert, checkpoint: str | None) -> None:
        super().__init__(message)
        self.alert = alert
        self.checkpoint = checkpoint


class RolloutMonitor(BoundComponent):
    """A registered monitor bound to its options; its answers are checked (finite metrics, `Alert`s)."""

    kind = "Rollout monitor"
    contract_args = ("batch", "state")

    @property
    def config_field(self) -> str:
        return f"GRPOConfig.monitor_kwargs['{self.name}']"

    @property
    def reads_alerts(self) -> bool:
        return bool(getattr(self.func, "reads_alerts", False))

    def check_run(self, trained_rewards: Sequence[str], audit_rewards: Sequence[str]) -> None:
        """The monitor's own `check_run(trained_rewards, audit_rewards, **options)`, if it has one."""
        check = getattr(self.func, "check_run", None)
        if check is None:
            return
        try:
            check(tuple(trained_rewards), tuple(audit_rewards), **self.options)
        except ValueError as error:
            raise PluginError(f"{self.describe()} cannot watch this run: {error}") from None

    def __call__(self, batch: RolloutBatch, state: dict[str, Any]) -> MonitorResult:
        try:
            result = self.func(batch, state, **self.options)
        except Exception as error:
            raise PluginError(self.failed(error)) from error
        if result is None:
            return MonitorResult()
        if isinstance(result, Mapping):
            result = MonitorResult(metrics=result)
        if not isinstance(result, MonitorResult):
            raise PluginError(
                f"{self.describe()} returned {type(result).__name__}; it must return a MonitorResult, a dict of "
                f"metrics, or None."
            )
        for key, value in result.metrics.items():
            if not isinstance(key, str) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise PluginError(
                    f"{self.describe()} returned metric {key!r}: {value!r}; metrics are finite numbers by name."
                )
        for alert in result.alerts:
            if not isinstance(alert, Alert) or not all(0 <= row < len(batch) for row in alert.rows):
                raise PluginError(
                    f"{self.describe()} returned alert {alert!r}; alerts are `Alert(kind, message, rows)` with rows "
                    f"indexing the batch's {len(batch)} completions."
                )
        return result


def check_config(args: Any) -> None:
    """Refuse bad monitor settings of a `GRPOConfig` before any model is loaded; reads a comma-separated
    `rollout_monitors` entry as several names."""
    args.rollout_monitors = name_list(args.rollout_monitors, "rollout_monitors", "monitor names (strings)")
    if args.rollout_monitors is not None:
        repeated = sorted({name for name in args.rollout_monitors if args.rollout_monitors.count(name) > 1})
        if repeated:
            raise ValueError(f"rollout_monitors names {', '.join(map(repr, repeated))} more than once.")
    kwargs = args.monitor_kwargs
    if kwargs is not None and not (isinstance(kwargs, dict) and all(isinstance(v, dict) for v in kwargs.values())):
        raise ValueError(
            'monitor_kwargs must map each monitor name to a dict of its options, e.g. {"length_drift": '
            f'{{"factor": 2.0}}}}; got {kwargs!r}.'
        )
    stray = sorted(set(kwargs or {}) - set(args.rollout_monitors or ()))
    if stray:
        raise ValueError(
            f"monitor_kwargs has options for {', '.join(map(repr, stray))}, which is not in rollout_monitors "
            f"({', '.join(args.rollout_monitors or ()) or 'none'}). Fix the name, add the monitor to "
            f"rollout_monitors, or remove its options."
        )
    if args.monitor_alert_action not in ALERT_ACTIONS:
        raise ValueError(
            f"monitor_alert_action must be 'warn' (log the first alert of each kind, with an example completion) "
            f"or 'stop' (save a checkpoint, then stop training); got {args.monitor_alert_action!r}."
        )


class MonitorRunner:
    """Calls a run's monitors on every training generation batch; logs, warns or stops; checkpoints their state."""

    def __init__(self, monitors: Sequence[RolloutMonitor], action: str = "warn", output_dir: str | None = None):
        # Monitors that read the others' alerts run last, whatever the order they were listed in.
        self.monitors = sorted(monitors, key=lambda monitor: monitor.reads_alerts)
        self.action = action
        self.output_dir = output_dir
        self.states: dict[str, dict[str, Any]] = {monitor.name: {} for monitor in self.monitors}
        self.alerts: list[RaisedAlert] = []  # every alert of the run, in order
        self.batches = 0
        self._before_batch: dict[str, Any] | None = None
        self.warned: set[tuple[str, str]] = set()

    @classmethod
    def for_run(
        cls,
        args: Any,
        monitors: ComponentRegistry,
        trained_rewards: Sequence[str],
        audit_rewards: Sequence[str],
    ) -> MonitorRunner | None:
        """The runner for `args.rollout_monitors` (None without any), every monitor resolved, its options and its
        needs checked before any model is loaded."""
        if not args.rollout_monitors:
            return None
        bound = [
            RolloutMonitor.resolve(name, monitors, (args.monitor_kwargs or {}).get(name))
            for name in args.rollout_monitors
        ]
        for monitor in bound:
            monitor.check_run(trained_rewards, audit_rewards)
        return cls(bound, args.monitor_alert_action, args.output_dir)

    def describe(self) -> str:
        names = ", ".join(
            f"{m.name}{f' {m.options}' if m.options else ''} [{m.plugin}]" if m.plugin else m.name
            for m in self.monitors
        )
        return f"; rollout monitors: {names} (on alert: {self.action})"

    # --- one batch ------------------------------------------------------------------------------------------------

    def check(self, batch: RolloutBatch) -> tuple[dict[str, float], list[RaisedAlert]]:
        """Run every monitor on `batch` (their states move on); returns the metrics to log and the alerts raised."""
        metrics: dict[str, float] = {}
        raised: list[RaisedAlert] = []
        if self.action == "stop":  # what a stop's checkpoint holds
            self._before_batch = json.loads(json.dumps(self.state_dict()))
        for monitor in self.monitors:
            seen = batch
            if monitor.reads_alerts:
                seen = replace(batch, alerts=tuple(raised))
            result = monitor(seen, self.states[monitor.name])
            new = [
                RaisedAlert(
                    batch.step,
                    monitor.name,
                    alert.kind,
                    alert.message,
                    tuple(batch.example(row) for row in alert.rows[:8]),
                )
                for alert in result.alerts
            ]
            metrics.update({f"monitor/{monitor.name}/{key}": float(value) for key, value in result.metrics.items()})
            metrics[f"monitor/{monitor.name}/alerts"] = float(len(new))
            raised.extend(new)
        self.batches += 1
        self.alerts.extend(raised)
        return metrics, raised

    def observe(self, trainer: Any, output: Mapping[str, Any]) -> None:
        """Build the batch `trainer` just scored, run the monitors, log their metrics and act on their alerts."""
        batch = self.batch_of(trainer, output)
        metrics, raised = self.check(batch)
        accelerator = trainer.accelerator
        if accelerator.num_processes > 1:  # rank 0's verdict, on every rank: a stop stops all of them together
            shared = [(metrics, raised)]
            broadcast_object_list(shared, from_process=0)
            metrics, decided = shared[0]
            self.alerts[len(self.alerts) - len(raised) :] = decided
            raised = decided
        for key, value in metrics.items():
            trainer._metrics["train"][key].append(value)
        if not raised:
            return
        if self.action == "stop":
            self.stop(trainer, raised[0])
        for alert in raised:
            if (alert.monitor, alert.kind) in self.warned:
                continue
            self.warned.add((alert.monitor, alert.kind))
            if accelerator.is_main_process:
                example = (
                    f" Example completion: {_excerpt(alert.examples[0]['completion'])}." if alert.examples else ""
                )
                logger.warning(
                    "%s.%s Further '%s' alerts of this monitor are counted in monitor/%s/alerts, not logged.",
                    alert.describe()[0].upper() + alert.describe()[1:],
                    example,
                    alert.kind,
                    alert.monitor,
                )

    def stop(self, trainer: Any, alert: RaisedAlert) -> None:
        """Save a checkpoint of the model that generated the batch (the trainer's own save path), then raise.

        The batch does not train, and a resumed run generates its step anew: the checkpoint holds the monitors'
        states from before it, so a resume does not count it twice."""
        after = self.state_dict()
        self.load_state_dict(self._before_batch)
        trainer._save_checkpoint(trainer.model, trial=None)
        self.load_state_dict(after)
        folder = os.path.join(trainer._get_output_dir(trial=None), f"checkpoint-{trainer.state.global_step}")
        example = f" Example completion: {_excerpt(alert.examples[0]['completion'])}." if alert.examples else ""
        raise RolloutMonitorStop(
            f"Training stopped: {alert.describe()}.{example} A checkpoint of the model that generated these "
            f"completions is in {folder}. To log alerts and go on instead, set monitor_alert_action='warn'.",
            alert,
            folder,
        )

    def batch_of(self, trainer: Any, output: Mapping[str, Any]) -> RolloutBatch:
        """The generation batch `trainer` just scored, every process's completions, as monitors see it."""
        names = _unique(trainer.reward_func_names)
        audit = trainer.audit_rewards
        audit_names = tuple(names[i] for i in audit.columns)
        trained = tuple(name for i, name in enumerate(names) if i not in audit.columns)
        weights = {name: float(w) for name, w in zip(names, trainer.reward_weights.tolist(), strict=True)}
        filtered = trainer.zero_variance_filter.last_batch if trainer.zero_variance_filter is not None else None
        if filtered is not None:
            rows = filtered.generated.rows
            prompts = [row["prompt"] for row in rows]
            completions = [row["completion"] for row in rows]
            completion_ids = [list(row["completion_ids"]) for row in rows]
            rewards_per_func = filtered.generated.rewards_per_func
            group_ids = filtered.generated.group_ids
            position = {id(row): index for index, row in enumerate(rows)}
            trained_rows = torch.tensor([position[id(row)] for row in filtered.trained_rows], dtype=torch.long)
            advantages = torch.full((len(rows),), torch.nan)
            advantages[trained_rows] = filtered.advantages.detach().float().cpu()
            kept = torch.zeros(len(rows), dtype=torch.bool)
            kept[trained_rows] = True
        else:
            local_prompts, local_completions, local_ids = trainer._last_scored
            prompts = gather_object(list(local_prompts))
            completions = gather_object(list(local_completions))
            completion_ids = [list(ids) for ids in gather_object([list(ids) for ids in local_ids])]
            rewards_per_func = trainer._last_rewards_per_func
            group_ids = trainer._group_ids(len(completions), 0)
            advantages = torch.tensor(gather_object(output["advantages"].tolist()), dtype=torch.float32)
            kept = torch.ones(len(completions), dtype=torch.bool)
        rewards_per_func = rewards_per_func.detach().float().cpu()
        return RolloutBatch(
            step=trainer.state.global_step,
            prompts=prompts,
            completions=completions,
            completion_ids=completion_ids,
            completion_lengths=torch.tensor([len(ids) for ids in completion_ids], dtype=torch.long),
            rewards={name: rewards_per_func[:, i] for i, name in enumerate(names)},
            trained_rewards=trained,
            audit_rewards=audit_names,
            reward_weights={name: weights[name] for name in trained},
            group_ids=group_ids.detach().cpu(),
            advantages=advantages,
            kept=kept,
            output_dir=self.output_dir,
            is_main_process=trainer.accelerator.is_main_process,
        )

    # --- the run's record -----------------------------------------------------------------------------------------

    def verdict(self) -> str:
        """What the monitors saw over the run, in a few lines: each monitor's alerts by kind, first step, count."""
        if not self.alerts:
            return (
                f"Rollout monitors ({', '.join(m.name for m in self.monitors)}): no alert in {self.batches} batches."
            )
        lines = [f"Rollout monitors: {len(self.alerts)} alerts in {self.batches} batches."]
        for (monitor, kind), alerts in self.alerts_by_kind().items():
            first = alerts[0]
            lines.append(
                f"  {monitor} ({kind}): first at step {first.step}, {len(alerts)} batches in all; {first.message}"
            )
        return "\n".join(lines)

    def alerts_by_kind(self) -> dict[tuple[str, str], list[RaisedAlert]]:
        grouped: dict[tuple[str, str], list[RaisedAlert]] = {}
        for alert in self.alerts:
            grouped.setdefault((alert.monitor, alert.kind), []).append(alert)
        return grouped

    def state_dict(self) -> dict[str, Any]:
        states = {}
        for name, state in self.states.items():
            try:
                json.dumps(state)
            except (TypeError, ValueError) as error:
                logger.warning(
                    "Rollout monitor '%s' keeps state that is not JSON (%s); it is not checkpointed.", name, error
                )
                continue
            states[name] = state
        return {
            "states": states,
            "alerts": [asdict(alert) for alert in self.alerts],
            "batches": self.batches,
            "warned": sorted(self.warned),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for name, own in state["states"].items():
            if name in self.states:
                self.states[name] = own
        self.alerts = [RaisedAlert(**{**alert, "examples": tuple(alert["examples"])}) for alert in state["alerts"]]
        self.batches = int(state["batches"])
        self.warned = {tuple(pair) for pair in state["warned"]}

    def save(self, checkpoint_folder: str) -> None:
        with open(os.path.join(checkpoint_folder, STATE_FILE), "w") as file:
            json.dump(self.state_dict(), file)

    def load(self, checkpoint: str, trainer: Any = None) -> None:
        path = os.path.join(checkpoint, STATE_FILE)
        if not os.path.exists(path):  # a checkpoint of a run without monitors: they start afresh
            logger.warning(
                "Checkpoint %s holds no rollout monitor state (%s): the monitors start afresh (early-run levels are "
                "taken again from the resumed run's first batches).",
                checkpoint,
                STATE_FILE,
            )
            return
        with open(path) as file:
            self.load_state_dict(json.load(file))


def _unique(names: Sequence[str]) -> list[str]:
    """Reward names as keys: a name TRL uses twice gets `_2`, `_3`, ... after its first use."""
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return unique
