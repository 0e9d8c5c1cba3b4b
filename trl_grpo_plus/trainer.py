"""`GRPOTrainer`: TRL's trainer with plugin-resolved components. With no extension option set it is TRL's trainer.

This module is the list of TRL seams: each override is a few lines that hand off to the feature that owns it.

| TRL method                        | feature (module)                                                            |
|-----------------------------------|-----------------------------------------------------------------------------|
| `__init__`                        | rewards resolved by name (`reward_guard`), audit rewards (`audit_rewards`), |
|                                   | estimator, schedule, filter, monitors (`rollout_monitoring`)                |
|                                   | the data checked against the batch and the rewards (`input_checks`)         |
| `_calculate_rewards`              | rewards run under their failure policies (`reward_guard`)                   |
|                                   | the batch's prompts and completions kept for the monitors                   |
| `_generate_and_score_completions` | schedule plans the batch (`group_size_planning`); filter keeps groups       |
|                                   | reward failure metrics and circuit breaker, per batch (`reward_guard`)      |
|                                   | (`zero_variance_filtering`); estimator sets advantages (`advantage_estimation`) |
|                                   | from the trained rewards only (`audit_rewards`); then, in training, the     |
|                                   | monitors watch the scored batch (`rollout_monitoring`)                      |
| `_generate`, `_calculate_rewards` | filter replays the kept completions and their rewards                      |
| `_prepare_inputs`, `compute_loss` | ragged batches split into micro-batches (`batch_rows`); empty ones skipped  |
| `_compute_loss`                   | Liger's fused loss (`fused_loss`)                                           |
| `create_accelerator_and_postprocess` | FSDP2 for CPU processes when the launch asks for it; a launch that did   |
|                                   | not take (processes, engine) refused (`launchers`)                          |
| `_prepare_for_training`           | the prepared model refused if the engine asked for did not shard it (`launchers`) |
| `train`                           | the checkpoint to resume from is checked before anything loads (`checkpoints`) |
| `_get_train_sampler`              | TRL's sampler, shuffling by epoch on resume (`checkpoints`)                 |
| `_save_checkpoint`, `_load_optimizer_and_scheduler` | the buffered generation, the schedule's history, the       |
|                                   | refill stream's position (`checkpoints`), the monitors' states              |
"""

from __future__ import annotations

import inspect
import logging
import os
from typing import Any

import torch
import trl
from trl.trainer.utils import get_config_model_id, shuffle_sequence_dict

from .advantage_estimation import AdvantageEstimator, contiguous_group_ids, resolve_estimator_name, set_advantages
from .audit_rewards import AuditRewards
from .batch_rows import split_rows, trl_sees_groups_of_one
from .checkpoints import CheckpointState, EpochSeekingSampler
from .config import GRPOConfig
from .fused_loss import FusedLossStep
from .group_size_planning import GroupSizePlanner, GroupSizeSchedule
from .input_checks import check_trainer_arguments
from .launchers import check_launch, check_sharded, shard_cpu_processes
from .plugin_manager import PluginManager, build_plugin_manager
from .registry import get_registry
from .reward_guard import GuardedReward, RewardRunner, resolve_reward_funcs
from .rollout_monitoring import MonitorRunner
from .zero_variance_filtering import ZeroVarianceFilter

logger = logging.getLogger(__name__)

_TRL_INIT = inspect.signature(trl.GRPOTrainer.__init__)


class GRPOTrainer(trl.GRPOTrainer):
    """Drop-in replacement for [`trl.GRPOTrainer`].

    Takes the same arguments, plus `plugin_manager` (default: a fresh one with the built-in and installed
    plugins). `reward_funcs` may also name registered reward functions (strings); a registered name wins over
    TRL's reading of a string as a reward model id. `args` may be a plain `trl.GRPOConfig` (every extension off).
    """

    # The extension state `__init__` sets. A trainer built without it (TRL's own tests build bare ones with
    # `object.__new__`, as subclasses and mocks may) finds these and behaves as TRL's trainer at every seam.
    reward_runner: RewardRunner | None = None
    advantage_estimator: AdvantageEstimator | None = None
    group_size_planner: GroupSizePlanner | None = None
    zero_variance_filter: ZeroVarianceFilter | None = None
    rollout_monitors: MonitorRunner | None = None
    fused_loss: FusedLossStep | None = None
    checkpoint_state: CheckpointState | None = None
    _last_rewards_per_func: torch.Tensor | None = None
    _last_scored: tuple[list, list, list] | None = None  # this process's prompts, completions, ids

    def __init__(
        self,
        model: Any,
        reward_funcs: Any = None,
        args: trl.GRPOConfig | None = None,
        *trl_args: Any,
        plugin_manager: PluginManager | None = None,
        **trl_kwargs: Any,
    ) -> None:
        if args is None:  # as TRL does, but with our config class
            model_name = model if isinstance(model, str) else get_config_model_id(model.config)
            args = GRPOConfig(f"{model_name.split('/')[-1]}-GRPO")
        args = GRPOConfig.from_trl(args)
        # Resolve plugins before TRL loads any model, so a bad name fails in seconds, not after a download.
        self.plugin_manager = plugin_manager if plugin_manager is not None else build_plugin_manager()
        self.registry = registry = get_registry(self.plugin_manager)
        self.reward_runner = RewardRunner.from_config(args)
        reward_funcs = resolve_reward_funcs(
            reward_funcs,
            [*(args.reward_plugins or ()), *(args.audit_rewards or ())],  # audit rewards last, scored with weight 0
            args.reward_kwargs,
            registry.reward_functions,
            args=args,
            runner=self.reward_runner,
        )
        self.audit_rewards, args = AuditRewards.for_run(reward_funcs, args)
        self.advantage_estimator = AdvantageEstimator.resolve(
            resolve_estimator_name(args), registry.advantage_estimators, args.advantage_kwargs
        )
        self.advantage_estimator.check(num_reward_funcs=len(self.audit_rewards.trained_names))
        self.group_size_schedule = GroupSizeSchedule.resolve(
            args.group_size_schedule, registry.group_size_schedules, args.group_size_kwargs
        )
        trl_arguments = _TRL_INIT.bind(self, model, reward_funcs, args, *trl_args, **trl_kwargs).arguments
        self.zero_variance_filter = ZeroVarianceFilter.for_run(args, trl_arguments)
        self.filter_zero_variance_groups = self.zero_variance_filter is not None
        check_trainer_arguments(args, trl_arguments)  # the data and rewards, before TRL loads the model
        # None when the schedule is TRL's own fixed group size: then TRL's sampler lays out the data, untouched.
        self.group_size_planner = GroupSizePlanner.for_run(self.group_size_schedule, args, trl_arguments)
        self.rollout_monitors = MonitorRunner.for_run(
            args, registry.rollout_monitors, self.audit_rewards.trained_names, self.audit_rewards.names
        )
        super().__init__(model, reward_funcs, args, *trl_args, **trl_kwargs)
        if self.group_size_planner is not None:
            self.group_size_planner.attach(self)
        self.fused_loss = FusedLossStep.for_trainer(self) if args.use_liger_loss else None
        dynamic_sampling = self.zero_variance_filter if args.dynamic_sampling else None
        self.checkpoint_state = CheckpointState(
            {
                "group-size schedule": self.group_size_planner,
                "dynamic sampling": dynamic_sampling,
                "rollout monitors": self.rollout_monitors,
            }
        )
        if self.accelerator.is_main_process:
            logger.info(self.describe_plugins())

    def describe_plugins(self) -> str:
        """One line on the active plugins and components, as logged at start-up."""
        manager = self.plugin_manager
        plugins = ", ".join(manager.info(name).describe() for name, _ in manager.loaded())
        rewards = ", ".join(
            f"{name} [{func.plugin}]" if isinstance(func, GuardedReward) and func.plugin else name
            for name, func in zip(self.reward_func_names, self.reward_funcs, strict=True)
        )
        line = f"trl_grpo_plus: plugins: {plugins}; rewards: {rewards}"
        for label, component in (
            ("advantage estimator", self.advantage_estimator),
            ("group-size schedule", self.group_size_schedule),
        ):
            options = f" {component.options}" if component.options else ""
            line += f"; {label}: {component.name}{options} [{component.plugin}]"
        for feature in (self.group_size_planner, self.zero_variance_filter, self.rollout_monitors):
            line += feature.describe() if feature is not None else ""
        line += self.audit_rewards.describe()
        return line + (self.fused_loss.describe(self) if self.fused_loss is not None else "")

    # --- launch: processes and engine --------------------------------------------------------------------

    def create_accelerator_and_postprocess(self):
        super().create_accelerator_and_postprocess()
        if shard_cpu_processes(self.accelerator, self.args):
            self.is_fsdp_enabled = True  # as transformers sets it from the state it just read
        check_launch(self.accelerator, self.args)

    def _prepare_for_training(self, *args, **kwargs):
        model, train_dataloader = super()._prepare_for_training(*args, **kwargs)
        check_sharded(model, self.accelerator, self.args)
        return model, train_dataloader

    # --- scoring: schedule, filter, estimator ----------------------------------------------------------------

    def _generate_and_score_completions(self, inputs):
        if self.advantage_estimator is None:  # a bare trainer: TRL's
            return super()._generate_and_score_completions(inputs)
        training = self.model.training
        planner = self.group_size_planner if training else None
        if planner is not None:
            inputs = planner.next_inputs(
                self.state.global_step, self.accelerator.process_index, self.accelerator.num_processes
            )
        if training and self.zero_variance_filter is not None:
            output, scored = self.zero_variance_filter.generate_and_score(
                self, inputs, super()._generate_and_score_completions, self.advantage_estimator, self._group_ids
            )
        else:
            with trl_sees_groups_of_one(self, ragged=planner is not None):
                output = super()._generate_and_score_completions(inputs)
            scored = self._last_rewards_per_func
            size = self.num_generations if training else self.num_generations_eval
            group_ids = (
                self._group_ids(len(scored), 0)
                if training
                else contiguous_group_ids(len(scored), size, self.accelerator.device)
            )
            advantages = self.advantage_estimator(*self.audit_rewards.trained(scored, self.reward_weights), group_ids)
            set_advantages(output, advantages, self.accelerator.process_index, self._logs)
        if training and self.rollout_monitors is not None:  # every scored completion, once its advantage is set
            self.rollout_monitors.observe(self, output)
        # Failure metrics and the circuit breaker, once per generation batch (all its sampling rounds)
        self.reward_runner.finish_batch(self.accelerator, self._metrics["train" if training else "eval"])
        if planner is not None:
            planner.record_outcome(
                *self.audit_rewards.trained(scored, self.reward_weights),
                self._metrics["train"],
                replace_zero_std_share=self.zero_variance_filter is None,
            )
        return output

    def _group_ids(self, num_rows: int, first: int) -> torch.Tensor:
        """Group of each completion of a training batch, in global order, numbered from `first`."""
        if self.group_size_planner is not None:
            return first + self.group_size_planner.current.group_ids.to(self.accelerator.device)
        return contiguous_group_ids(num_rows, self.num_generations, self.accelerator.device, first)

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        replay = self.zero_variance_filter.replay if self.zero_variance_filter is not None else None
        if replay is not None:  # already scored before filtering
            return replay.rewards_per_func
        if self.reward_runner is not None:  # rewards run in threads use this process's device
            self.reward_runner.device = self.accelerator.device
        self._last_rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        self._last_scored = (prompts, completions, completion_ids_list)
        return self._last_rewards_per_func

    def _generate(self, prompts):
        replay = self.zero_variance_filter.replay if self.zero_variance_filter is not None else None
        if replay is not None:  # the kept completions, exactly as generated and scored before filtering
            return replay.generation
        return super()._generate(prompts)

    # --- micro-batches --------------------------------------------------------------------------------------

    def _prepare_inputs(self, generation_batch):
        planner = self.group_size_planner
        ragged = self.zero_variance_filter is not None or (planner is not None and planner.ragged_batches)
        if not (self.model.training and ragged):
            return super()._prepare_inputs(generation_batch)
        # TRL's buffering, except that the rows (kept ones, or a fixed number of prompts' worth) need not divide
        # evenly into `steps_per_generation` micro-batches.
        steps = self.args.steps_per_generation
        if self._step % (steps * self.num_iterations) == 0 or self._buffered_inputs is None:
            batch = self._generate_and_score_completions(generation_batch)
            if len(batch["advantages"]):
                batch = shuffle_sequence_dict(batch)
            self._buffered_inputs = split_rows(batch, steps)
        return self._buffered_inputs[self._step % steps]

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if len(inputs["advantages"]) == 0:
            # Every group of this micro-batch was filtered out on every process (they hold equal shares), so all
            # skip the forward together; a zero loss with no graph leaves the gradients untouched.
            return torch.zeros((), device=self.accelerator.device, requires_grad=True)
        return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

    def _compute_loss(self, model, inputs):
        if self.fused_loss is None:
            return super()._compute_loss(model, inputs)
        return self.fused_loss.compute(self, model, inputs)

    # --- checkpoints ----------------------------------------------------------------------------------------

    def train(self, resume_from_checkpoint=None, *args, **kwargs):
        if self.checkpoint_state is not None:
            resume_from_checkpoint = self.checkpoint_state.check_resume(self, resume_from_checkpoint)
        return super().train(resume_from_checkpoint, *args, **kwargs)

    def _get_train_sampler(self, dataset=None):
        # Resumed in a later epoch, the run shuffles as the uninterrupted one did
        return EpochSeekingSampler(super()._get_train_sampler(dataset))

    def _save_checkpoint(self, model, trial):
        if self.checkpoint_state is None:
            return super()._save_checkpoint(model, trial)
        folder = os.path.join(self._get_output_dir(trial=trial), f"checkpoint-{self.state.global_step}")
        self.checkpoint_state.begin_save(self, folder)
        super()._save_checkpoint(model, trial)
        self.checkpoint_state.save(self, folder)

    def _load_optimizer_and_scheduler(self, checkpoint):
        # Called on every resume, whatever the backend (unlike _load_from_checkpoint, skipped under DeepSpeed).
        super()._load_optimizer_and_scheduler(checkpoint)
        if checkpoint is not None and self.checkpoint_state is not None:
            self.checkpoint_state.load(self, checkpoint)
