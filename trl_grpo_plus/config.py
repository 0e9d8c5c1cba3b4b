"""`GRPOConfig`: TRL's config plus the extension options. With none set, it is TRL's config exactly."""

from __future__ import annotations

import functools
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

import trl

from . import (
    advantage_estimation,
    audit_rewards,
    checkpoints,
    fused_loss,
    group_size_planning,
    input_checks,
    reward_guard,
    rollout_monitoring,
    zero_variance_filtering,
)


@dataclass
class GRPOConfig(trl.GRPOConfig):
    """TRL's [`trl.GRPOConfig`] with the trl-grpo-plus options. Every TRL field keeps its meaning and default.

    Parameters:
        reward_plugins (`list[str]`, *optional*):
            Names of registered reward functions to use, appended after the trainer's `reward_funcs`. Lets a YAML or
            CLI config pick rewards (`trl-grpo-plus plugins` lists them).
        reward_kwargs (`dict[str, dict]`, *optional*):
            Options per plugin reward, by reward name, e.g. `{"overlong_penalty": {"max_length": 512,
            "cache_length": 128}}`.
        reward_timeout (`float` or `None`, *optional*, defaults to `300.0`):
            Seconds one call of a reward function may take; its completions then count as timeouts.
        reward_on_error (`str` or `float`, *optional*, defaults to `"skip"`):
            What a completion gets when a reward fails on it (raises, times out, breaks the contract): `"skip"`
            (None), `"raise"` (stop the run) or a fixed score.
        reward_max_failure_share (`float`, *optional*, defaults to `0.5`):
            The run stops when a reward's failures exceed this share of a batch's completions.
        reward_max_workers (`int`, *optional*, defaults to `1`):
            Sync reward calls that run at once, in worker threads; 0: on the main thread, as TRL does.
        reward_policies (`dict[str, dict]`, *optional*):
            Per-reward `timeout` / `on_error` / `max_failure_share`, over the run-wide values.
        audit_rewards (`list[str]`, *optional*):
            Names of registered rewards (or dotted import paths) scored and logged on every batch but never trained
            on (weight 0; the estimator never sees them), appended after the trained rewards. Monitors compare them.
        advantage_estimator (`str`, *optional*):
            Name of the registered advantage estimator (`grpo`, `dr_grpo`, `batch_std`, `rloo`, `reinforce_pp`,
            `gdpo`, `rank`, or a plugin's). Default: the one equal to TRL's `scale_rewards` /
            `multi_objective_aggregation` (`grpo` for TRL's defaults).
        advantage_kwargs (`dict`, *optional*):
            Options of the advantage estimator, e.g. `{"ddof": 0}` for `grpo`.
        filter_zero_variance_groups (`bool`, *optional*, defaults to `False`):
            Drop groups whose rewards all (nearly) agree before the loss, so they cost no policy forward/backward.
        zero_variance_tolerance (`float`, *optional*, defaults to `1e-6`):
            A group is dropped when the spread (max - min) of its rewards is at most this.
        dynamic_sampling (`bool`, *optional*, defaults to `False`):
            DAPO's dynamic sampling: when filtering leaves the batch short, generate more groups to refill it.
        max_sampling_rounds (`int`, *optional*, defaults to `3`):
            Generation rounds per batch with dynamic sampling, the first included; then train on what was kept.
        group_size_schedule (`str`, *optional*, defaults to `"constant"`):
            Name of the registered group-size schedule (`constant`, `linear`, `cosine`, `step`,
            `adaptive_zero_variance`, `per_prompt_adaptive`, or a plugin's): how many completions each prompt gets in
            each generation batch. `constant` is TRL's fixed `num_generations`.
        group_size_kwargs (`dict`, *optional*):
            Options of the group-size schedule, e.g. `{"start": 4, "end": 16, "steps": 200}` for `linear`.
        group_size_budget (`str`, *optional*, defaults to `"completions"`):
            What a schedule keeps fixed per generation batch: `"completions"` (`generation_batch_size` of them; bigger
            groups mean fewer prompts) or `"prompts"` (`generation_batch_size // num_generations` of them; bigger
            groups mean more completions).
        use_liger_loss (`bool`, *optional*, defaults to `False`):
            Compute the policy loss with Liger-Kernel's fused linear GRPO loss, from the last hidden states and the LM
            head, in chunks, so the (batch, length, vocab) logits never exist at once. Same loss as TRL's (tested);
            needs `pip install trl-grpo-plus[liger]`. The `entropy` metric is not logged on this path.
        liger_chunk_size (`int`, *optional*, defaults to `1`):
            Sequences per chunk of the fused loss (with `use_liger_loss`): more is faster, and holds more at once.
        liger_compile (`bool`, *optional*, defaults to `False`):
            `torch.compile` the fused loss's per-chunk math (with `use_liger_loss`); worth it on GPU for long runs.
        rollout_monitors (`list[str]`, *optional*):
            Names of registered rollout monitors (`length_drift`, `diversity`, `repetition`, `reward_divergence`,
            `flagged_samples`, or a plugin's) that watch every scored training batch; metrics `monitor/<name>/...`.
        monitor_kwargs (`dict[str, dict]`, *optional*):
            Options per monitor, by name, e.g. `{"length_drift": {"factor": 2.0}}`.
        monitor_alert_action (`str`, *optional*, defaults to `"warn"`):
            What a monitor's alert does: `"warn"` (log the first of each kind, with an example completion) or
            `"stop"` (save a checkpoint, then stop training with a message saying what was seen).
    """

    _VALID_DICT_FIELDS = trl.GRPOConfig._VALID_DICT_FIELDS + [
        "reward_kwargs",
        "reward_policies",
        "advantage_kwargs",
        "group_size_kwargs",
        "monitor_kwargs",
    ]

    reward_plugins: list[str] | None = field(
        default=None,
        metadata={
            "help": "Names of registered reward functions (from installed trl_grpo_plus plugins) to use, appended "
            "after the trainer's `reward_funcs`, space- or comma-separated on the command line. `trl-grpo-plus "
            "plugins` lists the available names."
        },
    )
    reward_kwargs: dict[str, Any] | str | None = field(
        default=None,
        metadata={
            "help": "Options for plugin reward functions, by reward name, e.g. "
            '`{"overlong_penalty": {"max_length": 512, "cache_length": 128}}`. A JSON string on the command line.'
        },
    )
    reward_timeout: float | None = field(
        default=300.0,
        metadata={
            "help": "Seconds one call of a reward function may take (its whole batch), enforced for sync and async "
            "rewards alike; past it, the call's completions count as timeouts and get `reward_on_error`'s answer. "
            "None: no limit. Per reward: `reward_policies`."
        },
    )
    reward_on_error: str = field(
        default="skip",
        metadata={
            "help": "What a completion gets when a reward function raises on it, times out, or returns something "
            "outside the contract (not a number, inf, the wrong count): 'skip' (None: unscorable by that reward, as "
            "TRL reads None), 'raise' (stop the run), or a number (that score). Per reward: `reward_policies`."
        },
    )
    reward_max_failure_share: float = field(
        default=0.5,
        metadata={
            "help": "Circuit breaker: the run stops with an error naming the reward when its failures and timeouts "
            "exceed this share of a batch's completions (all processes). 1 never stops. Per reward: "
            "`reward_policies`."
        },
    )
    reward_max_workers: int = field(
        default=1,
        metadata={
            "help": "Sync reward functions that run at once, each in a worker thread (so its timeout holds); async "
            "ones run concurrently anyway, as in TRL. 1 (default): one after the other, as TRL calls them; more: "
            "concurrently, for rewards that are thread-safe (not sharing a fast tokenizer, say). 0: on the main "
            "thread as TRL does, for rewards that need it (e.g. ones using signal.alarm), without their timeout."
        },
    )
    reward_policies: dict[str, Any] | str | None = field(
        default=None,
        metadata={
            "help": "Failure policy per reward function, by name, over the run-wide reward_timeout / "
            'reward_on_error / reward_max_failure_share, e.g. `{"my_verifier": {"timeout": 60, "on_error": 0.0}}`. '
            "A JSON string on the command line."
        },
    )

    audit_rewards: list[str] | None = field(
        default=None,
        metadata={
            "help": "Names of registered reward functions (or dotted import paths) to score and log on every batch "
            "without training on them: appended after the trained rewards with reward weight 0, and left out of "
            "what the advantage estimator, zero-variance filtering and group-size schedules see. Rollout monitors "
            "(reward_divergence) compare them with the trained reward. Options and policies by name, as for "
            "reward_plugins; reward_weights lists the trained rewards only."
        },
    )

    advantage_estimator: str | None = field(
        default=None,
        metadata={
            "help": "Name of the registered advantage estimator: grpo, dr_grpo, batch_std, rloo, reinforce_pp, gdpo, "
            "rank, or one from a plugin (`trl-grpo-plus plugins` lists them). Default: the estimator equal to TRL's "
            "`scale_rewards` and `multi_objective_aggregation` settings (grpo for TRL's defaults)."
        },
    )
    advantage_kwargs: dict[str, Any] | str | None = field(
        default=None,
        metadata={
            "help": 'Options of the advantage estimator, e.g. `{"ddof": 0}` for grpo. A JSON string on the CLI.'
        },
    )
    filter_zero_variance_groups: bool = field(
        default=False,
        metadata={
            "help": "Drop groups whose rewards all (nearly) agree before the loss: they carry no learning signal, and "
            "dropped they cost no policy forward/backward. The dapo/bnpo token normalizer counts kept tokens only."
        },
    )
    zero_variance_tolerance: float = field(
        default=1e-6,
        metadata={
            "help": "A group counts as zero-variance when the spread (max - min) of its rewards is at most this."
        },
    )
    dynamic_sampling: bool = field(
        default=False,
        metadata={
            "help": "DAPO-style dynamic sampling (needs `filter_zero_variance_groups`): when filtering leaves fewer "
            "completions than `generation_batch_size`, generate groups for more prompts and refill the batch."
        },
    )
    max_sampling_rounds: int = field(
        default=3,
        metadata={
            "help": "With `dynamic_sampling`, the most generation rounds per batch, the first included; after the "
            "last round the step trains on what was kept."
        },
    )

    group_size_schedule: str = field(
        default="constant",
        metadata={
            "help": "Name of the registered group-size schedule: constant (TRL's fixed num_generations), linear, "
            "cosine, step, adaptive_zero_variance, per_prompt_adaptive, or one from a plugin (`trl-grpo-plus plugins` "
            "lists them). It sets how many completions each prompt gets in each generation batch."
        },
    )
    group_size_kwargs: dict[str, Any] | str | None = field(
        default=None,
        metadata={
            "help": 'Options of the group-size schedule, e.g. `{"start": 4, "end": 16, "steps": 200}` for linear. '
            "A JSON string on the CLI."
        },
    )
    group_size_budget: str = field(
        default="completions",
        metadata={
            "help": "What stays fixed per generation batch when a schedule changes group sizes: 'completions' "
            "(generation_batch_size of them, so bigger groups mean fewer prompts) or 'prompts' "
            "(generation_batch_size // num_generations of them, so bigger groups mean more completions).",
            "choices": ["completions", "prompts"],
        },
    )

    use_liger_loss: bool = field(
        default=False,
        metadata={
            "help": "Compute the policy loss with Liger-Kernel's fused linear GRPO loss (LM head and loss in chunks, "
            "so the batch x length x vocab logits never exist at once). Same loss as TRL's; needs "
            "`pip install trl-grpo-plus[liger]`. The `entropy` metric is not logged on this path."
        },
    )
    liger_chunk_size: int = field(
        default=1,
        metadata={
            "help": "With use_liger_loss: sequences per chunk of the fused loss. Larger is faster and holds more "
            "memory at once."
        },
    )
    liger_compile: bool = field(
        default=False,
        metadata={
            "help": "With use_liger_loss: torch.compile the fused loss's per-chunk math. Worth it on GPU for long "
            "runs; the first steps pay the compilation."
        },
    )

    rollout_monitors: list[str] | None = field(
        default=None,
        metadata={
            "help": "Names of registered rollout monitors that watch every scored training batch for reward hacking "
            "and collapse: length_drift, diversity, repetition, reward_divergence, flagged_samples, or one from a "
            "plugin (`trl-grpo-plus plugins` lists them). Metrics are logged as monitor/<name>/<metric>. Space- or "
            "comma-separated on the command line."
        },
    )
    monitor_kwargs: dict[str, Any] | str | None = field(
        default=None,
        metadata={
            "help": 'Options per rollout monitor, by name, e.g. `{"length_drift": {"factor": 2.0}}`. A JSON '
            "string on the CLI."
        },
    )
    monitor_alert_action: str = field(
        default="warn",
        metadata={
            "help": "What a rollout monitor's alert does: 'warn' (log the first alert of each monitor and kind, with "
            "an example completion; count all in monitor/<name>/alerts) or 'stop' (save a checkpoint, then stop "
            "training with a message that says what was seen).",
            "choices": ["warn", "stop"],
        },
    )

    def __post_init__(self):
        input_checks.check_json_options(self)  # before TRL's, whose JSON errors name no option
        with input_checks.explained_batch_errors(self):
            super().__post_init__()
        # Each feature refuses its own bad settings, in its own module.
        reward_guard.check_config(self)
        audit_rewards.check_config(self)
        advantage_estimation.check_config(self)
        zero_variance_filtering.check_config(self)
        group_size_planning.check_config(self)
        fused_loss.check_config(self)
        rollout_monitoring.check_config(self)
        input_checks.check_config(self)
        checkpoints.check_config(self)

    @property
    def resolved_advantage_estimator(self) -> str:
        """The estimator this config selects: `advantage_estimator`, or the one TRL's own settings amount to."""
        return advantage_estimation.resolve_estimator_name(self)

    def to_dict(self) -> dict[str, Any]:
        # Trackers log this dict as the run config; the estimator in effect belongs in it even when it is implied.
        return {
            **super().to_dict(),
            "advantage/estimator": self.resolved_advantage_estimator,
            "group_size/schedule": self.group_size_schedule,
        }

    @classmethod
    def from_trl(cls, args: trl.GRPOConfig) -> GRPOConfig:
        """`args` (a `trl.GRPOConfig`, already validated by TRL) as our config, every extension option off.

        A subclass of TRL's config becomes a subclass of both it and ours, so its own fields and methods stay."""
        if isinstance(args, cls):
            return args
        target = cls if type(args) is trl.GRPOConfig else _with_extensions(type(args))
        converted = target.__new__(target)
        converted.__dict__.update(vars(args))
        for extension in fields(cls):
            if extension.name not in vars(args):
                default = extension.default if extension.default is not MISSING else extension.default_factory()
                setattr(converted, extension.name, default)
        return converted


@functools.cache
def _with_extensions(config_class: type) -> type:
    """A user's subclass of `trl.GRPOConfig`, with our fields: a dataclass deriving from ours and theirs."""
    return dataclass(type(config_class.__name__, (GRPOConfig, config_class), {"__module__": config_class.__module__}))
