"""`GRPOConfig`: TRL's config plus the extension options. With none set, it is TRL's config exactly."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import trl

from .advantages import TRL_DEFAULT_SETTINGS, TRL_EQUIVALENTS


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
    """

    _VALID_DICT_FIELDS = trl.GRPOConfig._VALID_DICT_FIELDS + ["reward_kwargs", "advantage_kwargs", "group_size_kwargs"]

    reward_plugins: list[str] | None = field(
        default=None,
        metadata={
            "help": "Names of registered reward functions (from installed trl_grpo_plus plugins) to use, appended "
            "after the trainer's `reward_funcs`. `trl-grpo-plus plugins` lists the available names."
        },
    )
    reward_kwargs: dict[str, Any] | str | None = field(
        default=None,
        metadata={
            "help": "Options for plugin reward functions, by reward name, e.g. "
            '`{"overlong_penalty": {"max_length": 512, "cache_length": 128}}`. A JSON string on the command line.'
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

    def __post_init__(self):
        super().__post_init__()
        self._check_advantage_options()
        self._check_filter_options()
        self._check_group_size_options()
        if self.reward_plugins is not None:
            if isinstance(self.reward_plugins, str):  # a single name from a YAML scalar or a CLI string
                self.reward_plugins = [name.strip() for name in self.reward_plugins.split(",") if name.strip()]
            if not all(isinstance(name, str) and name for name in self.reward_plugins):
                raise ValueError(
                    f"reward_plugins must be a list of reward names (strings), got {self.reward_plugins!r}."
                )
        if self.reward_kwargs is not None and not (
            isinstance(self.reward_kwargs, dict) and all(isinstance(v, dict) for v in self.reward_kwargs.values())
        ):
            raise ValueError(
                "reward_kwargs must map each reward name to a dict of its options, e.g. "
                f'{{"overlong_penalty": {{"max_length": 512, "cache_length": 128}}}}; got {self.reward_kwargs!r}.'
            )

    def _check_advantage_options(self) -> None:
        if self.advantage_kwargs is not None and not isinstance(self.advantage_kwargs, dict):
            raise ValueError(
                f'advantage_kwargs must be a dict of the estimator\'s options, e.g. {{"ddof": 0}}; got '
                f"{self.advantage_kwargs!r}."
            )
        if self.advantage_estimator is not None and not (
            isinstance(self.advantage_estimator, str) and self.advantage_estimator
        ):
            raise ValueError(f"advantage_estimator must be an estimator name, got {self.advantage_estimator!r}.")
        settings = (self.multi_objective_aggregation, self.scale_rewards)
        if settings not in TRL_EQUIVALENTS:
            return  # TRL's own validation reports invalid values of its fields
        trl_choice = TRL_EQUIVALENTS[settings]
        if self.advantage_estimator is not None and settings != TRL_DEFAULT_SETTINGS:
            if self.advantage_estimator != trl_choice:
                raise ValueError(
                    f"advantage_estimator={self.advantage_estimator!r} contradicts TRL's "
                    f"multi_objective_aggregation={settings[0]!r} with scale_rewards={settings[1]!r}, which selects "
                    f"'{trl_choice}'. Set only one of them: drop scale_rewards / multi_objective_aggregation, or "
                    f"advantage_estimator."
                )

    def _check_filter_options(self) -> None:
        if not isinstance(self.zero_variance_tolerance, (int, float)) or self.zero_variance_tolerance < 0:
            raise ValueError(
                f"zero_variance_tolerance must be a number >= 0 (the largest reward spread that still counts as zero "
                f"variance), got {self.zero_variance_tolerance!r}."
            )
        if not isinstance(self.max_sampling_rounds, int) or self.max_sampling_rounds < 1:
            raise ValueError(
                f"max_sampling_rounds must be an integer >= 1 (generation rounds per batch, the first included), "
                f"got {self.max_sampling_rounds!r}."
            )
        if self.dynamic_sampling and not self.filter_zero_variance_groups:
            raise ValueError(
                "dynamic_sampling refills what zero-variance filtering drops, so it needs "
                "filter_zero_variance_groups=True. Set both, or neither."
            )

    def _check_group_size_options(self) -> None:
        if not isinstance(self.group_size_schedule, str) or not self.group_size_schedule:
            raise ValueError(f"group_size_schedule must be a schedule name, got {self.group_size_schedule!r}.")
        if self.group_size_kwargs is not None and not isinstance(self.group_size_kwargs, dict):
            raise ValueError(
                f'group_size_kwargs must be a dict of the schedule\'s options, e.g. {{"start": 4, "end": 16, '
                f'"steps": 200}}; got {self.group_size_kwargs!r}.'
            )
        if self.group_size_budget not in ("completions", "prompts"):
            raise ValueError(
                f"group_size_budget must be 'completions' (fixed completions per batch) or 'prompts' (fixed prompts "
                f"per batch), got {self.group_size_budget!r}."
            )
        if self.dynamic_sampling and self.group_size_schedule != "constant":
            raise ValueError(
                f"dynamic_sampling refills batches with groups of num_generations, which a group-size schedule "
                f"('{self.group_size_schedule}') does not keep. Use dynamic_sampling or a group-size schedule, not "
                f"both (filter_zero_variance_groups alone works with schedules)."
            )

    @property
    def resolved_advantage_estimator(self) -> str:
        """The estimator this config selects: `advantage_estimator`, or the one TRL's own settings amount to."""
        return resolve_advantage_estimator(self)

    def to_dict(self) -> dict[str, Any]:
        # Trackers log this dict as the run config; the estimator in effect belongs in it even when it is implied.
        return {
            **super().to_dict(),
            "advantage/estimator": self.resolved_advantage_estimator,
            "group_size/schedule": self.group_size_schedule,
        }


def resolve_advantage_estimator(args: trl.GRPOConfig) -> str:
    """The advantage estimator `args` selects; a plain `trl.GRPOConfig` selects TRL's equivalent."""
    explicit = getattr(args, "advantage_estimator", None)
    if explicit is not None:
        return explicit
    settings = (args.multi_objective_aggregation, args.scale_rewards)
    if settings not in TRL_EQUIVALENTS:
        raise ValueError(
            f"Unknown TRL advantage settings multi_objective_aggregation={settings[0]!r}, scale_rewards={settings[1]!r}. "
            f"multi_objective_aggregation must be 'sum_then_normalize' or 'normalize_then_sum'; scale_rewards 'group', "
            f"'batch' or 'none'."
        )
    return TRL_EQUIVALENTS[settings]
