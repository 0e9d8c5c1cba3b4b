"""`GRPOConfig`: TRL's config plus the extension options. With none set, it is TRL's config exactly."""

from __future__ import annotations

import importlib.util
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
        use_liger_loss (`bool`, *optional*, defaults to `False`):
            Compute the policy loss with Liger-Kernel's fused linear GRPO loss, from the last hidden states and the LM
            head, in chunks, so the (batch, length, vocab) logits never exist at once. Same loss as TRL's (tested);
            needs `pip install trl-grpo-plus[liger]`. The `entropy` metric is not logged on this path.
        liger_chunk_size (`int`, *optional*, defaults to `1`):
            Sequences per chunk of the fused loss (with `use_liger_loss`): more is faster, and holds more at once.
        liger_compile (`bool`, *optional*, defaults to `False`):
            `torch.compile` the fused loss's per-chunk math (with `use_liger_loss`); worth it on GPU for long runs.
    """

    _VALID_DICT_FIELDS = trl.GRPOConfig._VALID_DICT_FIELDS + ["reward_kwargs", "advantage_kwargs", "group_size_kwargs"]

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

    def __post_init__(self):
        try:
            super().__post_init__()
        except ValueError as error:
            if "must be divisible by num_generations" not in str(error):
                raise
            raise ValueError(self._group_split_error()) from None
        self._check_advantage_options()
        self._check_filter_options()
        self._check_group_size_options()
        self._check_liger_options()
        if self.reward_plugins is not None:
            if isinstance(self.reward_plugins, str):  # a YAML scalar
                self.reward_plugins = [self.reward_plugins]
            if not all(isinstance(name, str) and name for name in self.reward_plugins):
                raise ValueError(
                    f"reward_plugins must be a list of reward names (strings), got {self.reward_plugins!r}."
                )
            # Names never hold commas, so "accuracy,format" (as typed on a command line, which otherwise takes
            # "--reward_plugins accuracy format") means two of them.
            self.reward_plugins = [n.strip() for name in self.reward_plugins for n in name.split(",") if n.strip()]
        if self.reward_kwargs is not None and not (
            isinstance(self.reward_kwargs, dict) and all(isinstance(v, dict) for v in self.reward_kwargs.values())
        ):
            raise ValueError(
                "reward_kwargs must map each reward name to a dict of its options, e.g. "
                f'{{"overlong_penalty": {{"max_length": 512, "cache_length": 128}}}}; got {self.reward_kwargs!r}.'
            )

    def _group_split_error(self) -> str:
        # TRL states the arithmetic; users need to know which of their settings make up the generation batch.
        groups = self.num_generations
        per_unit = self.world_size * self.steps_per_generation
        batch = self.per_device_train_batch_size
        fitting = next(size for size in range(batch, batch + groups + 1) if size * per_unit % groups == 0)
        return (
            f"The generation batch holds {self.generation_batch_size} completions (per_device_train_batch_size="
            f"{self.per_device_train_batch_size} x {self.world_size} process(es) x steps_per_generation="
            f"{self.steps_per_generation}), which does not split into whole groups of num_generations={groups}. "
            f"Make that product a multiple of {groups}, e.g. per_device_train_batch_size={fitting}, or lower "
            f"num_generations to a divisor of it."
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

    def _check_liger_options(self) -> None:
        if (
            not isinstance(self.liger_chunk_size, int)
            or isinstance(self.liger_chunk_size, bool)
            or (self.liger_chunk_size < 1)
        ):
            raise ValueError(
                f"liger_chunk_size must be an integer >= 1 (sequences per chunk of the fused loss), got "
                f"{self.liger_chunk_size!r}."
            )
        if not self.use_liger_loss:
            if self.liger_chunk_size != 1 or self.liger_compile:
                raise ValueError(
                    "liger_chunk_size and liger_compile configure the fused loss, which is off. Set "
                    "use_liger_loss=True, or drop them."
                )
            return
        if importlib.util.find_spec("liger_kernel") is None:
            raise ImportError(
                "use_liger_loss=True needs liger-kernel, which is not installed: pip install 'trl-grpo-plus[liger]'."
            )
        conflicts = liger_loss_conflicts(self)
        if conflicts:
            raise ValueError(
                "use_liger_loss=True cannot compute TRL's loss with " + "; ".join(conflicts) + ". Drop that "
                "setting, or set use_liger_loss=False."
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


# Loss types for which Liger's fused loss computes TRL's loss exactly (tests/test_liger_loss_parity.py); luspo only
# in its sequence-level form, see `liger_loss_conflicts`.
LIGER_LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo", "cispo", "sapo", "vespo", "luspo")


def liger_loss_conflicts(args: trl.GRPOConfig) -> list[str]:
    """The settings of `args` that Liger's fused loss cannot honour, each with the reason."""
    conflicts = []
    if args.loss_type not in LIGER_LOSS_TYPES:
        conflicts.append(f"loss_type={args.loss_type!r} (supported: {', '.join(LIGER_LOSS_TYPES)})")
    if args.loss_type == "luspo" and (
        args.importance_sampling_level != "sequence" or args.beta != 0.0 or args.use_vllm
    ):
        # Liger weights every position of luspo's per-token loss, padding included, where TRL masks them. The two
        # agree only when that loss is one value per sequence: sequence-level ratios, no KL term, no vLLM ratios.
        conflicts.append(
            "loss_type='luspo' unless importance_sampling_level='sequence', beta=0 and no vLLM (Liger's luspo "
            "counts padded positions when the per-token loss varies along the sequence)"
        )
    if args.top_entropy_quantile < 1.0:
        conflicts.append("top_entropy_quantile < 1 (it needs per-token entropies, which the fused loss never forms)")
    if args.entropy_coef != 0.0 or args.use_adaptive_entropy:
        conflicts.append("an entropy bonus (entropy_coef / use_adaptive_entropy need per-token entropies)")
    if args.off_policy_mask_threshold is not None:
        conflicts.append("off_policy_mask_threshold (Liger's loss has no off-policy sequence mask)")
    return conflicts


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
