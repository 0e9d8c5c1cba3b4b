"""`GRPOTrainer`: TRL's trainer with plugin-resolved components. With no extension option set it is TRL's trainer.

What it changes in TRL, each at the narrowest method:

- rewards named by plugin are resolved before TRL's `__init__` (so bad names fail before any model loads);
- the advantage comes from the configured estimator: `_generate_and_score_completions` keeps TRL's scoring and
  replaces only its `advantages`, computed from the rewards `_calculate_rewards` produced;
- with zero-variance filtering, rollouts are generated and scored first (`_generate`, `_calculate_rewards`), the
  groups with signal chosen, and only those replayed through TRL's scoring (reference/old log-probs) and loss: during
  the replay `_generate` and `_calculate_rewards` hand back the kept completions and their rewards, so the loss
  trains exactly the completions that were scored;
- with a group-size schedule, each generation batch is planned when it is generated (`_generate_and_score_completions`
  takes the planned prompts in place of the dataloader's), and the plan's state rides along in checkpoints;
- with `use_liger_loss`, `_compute_loss` runs the backbone and hands its last hidden states and the LM head to
  Liger's fused GRPO loss (`fused_loss.py`) in place of TRL's fused log-probs and loss.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import math
import os
from collections.abc import Iterator
from typing import Any

import datasets
import torch
import trl
from accelerate.utils import gather_object, is_peft_model
from torch.distributed.tensor import DTensor
from torch.utils.data import IterableDataset
from trl.models.utils import _ForwardRedirection
from trl.trainer.utils import (
    RepeatSampler,
    get_config_model_id,
    maybe_gather_lm_head_ctx,
    nanmax,
    nanmin,
    nanstd,
    shuffle_sequence_dict,
)

from .advantages import AdvantageEstimator
from .config import GRPOConfig, resolve_advantage_estimator
from .filtering import KeptPool, Rollouts, process_share, split_rows, zero_variance_rows
from .group_sizes import GroupSizeSchedule
from .groups import total_reward
from .planner import STATE_FILE, BatchPlan, GroupSizePlanner
from .plugins import PluginManager, build_plugin_manager
from .registry import get_registry
from .reward_functions import GuardedReward, resolve_reward_funcs

logger = logging.getLogger(__name__)

_TRL_INIT = inspect.signature(trl.GRPOTrainer.__init__)


class GRPOTrainer(trl.GRPOTrainer):
    """Drop-in replacement for [`trl.GRPOTrainer`].

    Takes the same arguments, plus `plugin_manager` (default: a fresh one with the built-in and installed
    plugins). `reward_funcs` may also name registered reward functions (strings); a registered name wins over
    TRL's reading of a string as a reward model id.
    """

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
        # Resolve plugins before TRL loads any model, so a bad name fails in seconds, not after a download.
        self.plugin_manager = plugin_manager if plugin_manager is not None else build_plugin_manager()
        self.registry = get_registry(self.plugin_manager)
        reward_funcs = resolve_reward_funcs(
            reward_funcs,
            getattr(args, "reward_plugins", None),  # a plain trl.GRPOConfig has no extension fields
            getattr(args, "reward_kwargs", None),
            self.registry.reward_functions,
        )
        self.advantage_estimator = AdvantageEstimator(
            resolve_advantage_estimator(args),
            self.registry.advantage_estimators,
            getattr(args, "advantage_kwargs", None),
        )
        self.advantage_estimator.check(num_reward_funcs=len(reward_funcs))
        self.group_size_schedule = GroupSizeSchedule(
            getattr(args, "group_size_schedule", "constant"),
            self.registry.group_size_schedules,
            getattr(args, "group_size_kwargs", None),
        )
        trl_arguments = _TRL_INIT.bind(self, model, reward_funcs, args, *trl_args, **trl_kwargs).arguments
        self.filter_zero_variance_groups = _filtering_requested(args, trl_arguments)
        # None when the schedule is TRL's own fixed group size: then TRL's sampler lays out the data, untouched.
        self.group_size_planner = _planner_for(self.group_size_schedule, args, trl_arguments)
        self._plan: BatchPlan | None = None
        self._replay: _Replay | None = None
        self._last_rewards_per_func: torch.Tensor | None = None
        self._refill_batches = None
        super().__init__(model, reward_funcs, args, *trl_args, **trl_kwargs)
        if self.group_size_planner is not None and isinstance(self.train_dataset, datasets.Dataset):
            # the rows TRL's dataloader would hand over (it drops unused columns when asked to)
            self.group_size_planner.dataset = self._remove_unused_columns(self.train_dataset, description="training")
        self._fused_loss = _fused_loss_for(self) if getattr(args, "use_liger_loss", False) else None
        # The fused loss calls the backbone directly; routing it through the wrapper's forward keeps DDP's gradient
        # sync and FSDP/ZeRO-3's parameter gathering armed, as TRL does for its chunked distillation loss.
        self._forward_redirection = _ForwardRedirection()
        if self.accelerator.is_main_process:
            logger.info(self.describe_plugins())

    def describe_plugins(self) -> str:
        """One line on the active plugins and components, as logged at start-up."""
        manager = self.plugin_manager
        plugins = ", ".join(manager.info(name).describe() for name, _ in manager.list_name_plugin())
        rewards = ", ".join(
            f"{name} [{func.plugin}]" if isinstance(func, GuardedReward) and func.plugin else name
            for name, func in zip(self.reward_func_names, self.reward_funcs, strict=True)
        )
        estimator = self.advantage_estimator
        options = f" {estimator.options}" if estimator.options else ""
        line = (
            f"trl_grpo_plus: plugins: {plugins}; rewards: {rewards}; "
            f"advantage estimator: {estimator.name}{options} [{estimator.plugin}]"
        )
        schedule = self.group_size_schedule
        options = f" {schedule.options}" if schedule.options else ""
        line += f"; group-size schedule: {schedule.name}{options} [{schedule.plugin}]"
        if self.group_size_planner is not None:
            budget = self.group_size_planner.completions
            line += (
                f", {budget} completions per batch" if budget else f", {self.group_size_planner.num_prompts} prompts"
            )
        if self.filter_zero_variance_groups:
            line += "; zero-variance groups filtered"
            if self.args.dynamic_sampling:
                line += f", dynamic sampling up to {self.args.max_sampling_rounds} rounds"
        if self._fused_loss is not None:
            line += f"; loss: Liger fused linear GRPO ({self.loss_type}, chunk {self.args.liger_chunk_size})"
        return line

    # --- advantages -------------------------------------------------------------------------------------------

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        if self._replay is not None:  # already scored before filtering
            return self._replay.rewards_per_func
        self._last_rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        return self._last_rewards_per_func

    def _group_ids(self, num_rows: int, mode: str, first: int = 0) -> torch.Tensor:
        """Group of each completion of a generation batch, in global order: the plan's groups under a schedule,
        else TRL's layout of contiguous groups of `num_generations` completions."""
        if mode == "train" and self._plan is not None:
            return first + self._plan.group_ids.to(self.accelerator.device)
        size = self.num_generations if mode == "train" else self.num_generations_eval
        return first + torch.arange(num_rows, device=self.accelerator.device) // size

    def _generate_and_score_completions(self, inputs):
        mode = "train" if self.model.training else "eval"
        if mode == "train" and self.group_size_planner is not None:
            inputs = self._planned_inputs()
        if mode == "train" and self.filter_zero_variance_groups:
            return self._generate_and_score_kept_groups(inputs)
        with self._ragged_groups_for_trl(mode == "train" and self._plan is not None):
            output = super()._generate_and_score_completions(inputs)
        rewards_per_func = self._last_rewards_per_func
        group_ids = self._group_ids(len(rewards_per_func), mode)
        self._set_advantages(output, self.advantage_estimator(rewards_per_func, self.reward_weights, group_ids))
        if mode == "train" and self._plan is not None:
            self._record_plan(rewards_per_func)
            zero = zero_variance_rows(rewards_per_func, self.reward_weights, group_ids, self._zero_std_tolerance)
            self._metrics["train"]["frac_reward_zero_std"][-1] = zero.float().mean().item()
        return output

    def _set_advantages(self, output: dict[str, Any], advantages: torch.Tensor) -> None:
        """Put this process's share of the estimator's `advantages` (all processes' rows) in place of TRL's."""
        local = output["advantages"]
        start = self.accelerator.process_index * len(local)
        output["advantages"] = advantages[start : start + len(local)].to(local)
        logged = self._logs["advantages"]  # the completions table: TRL appended its own values last
        for _ in range(min(len(advantages), len(logged))):
            logged.pop()
        logged.extend(advantages.tolist())

    # --- group-size schedules ---------------------------------------------------------------------------------

    def _planned_inputs(self) -> list[dict[str, Any]]:
        """Plan the generation batch now and return this process's share of its rows (one per completion)."""
        planner = self.group_size_planner
        self._plan = planner.plan(self.state.global_step)
        rows = self._plan.rows
        share = process_share(len(rows), self.accelerator.num_processes, self.accelerator.process_index)
        return [planner.dataset[index] for index in rows[share]]

    def _record_plan(self, rewards_per_func: torch.Tensor) -> None:
        """Give the schedule the batch's outcome (all processes' rewards, in plan order) and log its sizes."""
        self.group_size_planner.record(self._plan, total_reward(rewards_per_func, self.reward_weights))
        for key, value in self._plan.metrics().items():
            self._metrics["train"][key].append(value)

    @contextlib.contextmanager
    def _ragged_groups_for_trl(self, ragged: bool) -> Iterator[None]:
        # TRL's own advantages and zero-std metric reshape rows into groups of num_generations, which ragged groups
        # need not fill. We replace both, so TRL may as well see groups of one while it scores.
        if not ragged:
            yield
            return
        saved, self.num_generations = self.num_generations, 1
        try:
            yield
        finally:
            self.num_generations = saved

    @property
    def _zero_std_tolerance(self) -> float:
        return getattr(self.args, "zero_variance_tolerance", 1e-6)

    def _save_checkpoint(self, model, trial):
        super()._save_checkpoint(model, trial)
        if self.group_size_planner is not None and self.args.should_save:
            folder = os.path.join(self._get_output_dir(trial=trial), f"checkpoint-{self.state.global_step}")
            with open(os.path.join(folder, STATE_FILE), "w") as file:
                json.dump(self.group_size_planner.state_dict(), file)

    def _load_optimizer_and_scheduler(self, checkpoint):
        # Called on every resume, whatever the backend (unlike _load_from_checkpoint, skipped under DeepSpeed).
        super()._load_optimizer_and_scheduler(checkpoint)
        if self.group_size_planner is None or checkpoint is None:
            return
        path = os.path.join(checkpoint, STATE_FILE)
        if not os.path.exists(path):
            logger.warning(
                "Checkpoint %s holds no group-size schedule state (%s): the schedule starts from an empty history "
                "and the prompt stream from its beginning.",
                checkpoint,
                STATE_FILE,
            )
            return
        with open(path) as file:
            self.group_size_planner.load_state_dict(json.load(file))

    # --- zero-variance filtering and dynamic sampling ---------------------------------------------------------

    def _generate_and_score_kept_groups(self, inputs):
        rollouts = self._roll_out(inputs, first_group=0)
        # The batch is full when the kept groups hold as many completions as its first round: generation_batch_size,
        # or a schedule's planned batch, which with a fixed number of prompts can be larger.
        pool = KeptPool(
            target_rows=len(rollouts),
            num_reward_funcs=len(self.reward_funcs),
            tolerance=self.args.zero_variance_tolerance,
        )
        while True:
            pool.add(rollouts, self.reward_weights)
            if pool.full or not self.args.dynamic_sampling or pool.rounds >= self.args.max_sampling_rounds:
                break
            rollouts = self._roll_out(self._next_refill_batch(), first_group=int(rollouts.group_ids.max()) + 1)
        if self._plan is not None:  # dynamic sampling is refused with schedules: one round, the planned one
            self._record_plan(pool.generated[0].rewards_per_func)

        kept = pool.kept()
        share = process_share(len(kept), self.accelerator.num_processes, self.accelerator.process_index)
        used = (share.stop - share.start) * self.accelerator.num_processes
        metrics = self._metrics["train"]
        metrics["filter/frac_groups_dropped"].append(pool.dropped_groups / max(pool.generated_groups, 1))
        metrics["filter/sampling_rounds"].append(float(pool.rounds))
        metrics["filter/kept_sequences"].append(float(used))
        if used == 0:  # nothing to learn from in this batch: every micro-step of it is skipped (see compute_loss)
            self._log_generated_rewards(pool.all_generated(), replace_trl_values=False)
            return {"advantages": torch.empty(0, device=self.accelerator.device)}

        # Advantages over the batch that trains (batch-level estimators see only kept groups), before any trim.
        advantages = self.advantage_estimator(kept.rewards_per_func, self.reward_weights, kept.group_ids)
        local = kept.select(range(share.start, share.stop))
        self._replay = _Replay(local.rows, kept.rewards_per_func[:used])
        self._pending_extra_logs.update(self._replay.extra_logs)
        try:
            # The kept groups need not fill TRL's groups of num_generations (an equal share per process can cut one)
            with self._ragged_groups_for_trl(True):
                output = super()._generate_and_score_completions([row["input"] for row in local.rows])
        finally:
            self._replay = None
        self._set_advantages(output, advantages[:used])
        self._log_generated_rewards(pool.all_generated(), replace_trl_values=True)
        return output

    def _generate(self, prompts):
        if self._replay is not None:  # the kept completions, exactly as generated and scored before filtering
            return self._replay.generation
        return super()._generate(prompts)

    def _roll_out(self, inputs: list[dict[str, Any]], first_group: int) -> Rollouts:
        """Generate and score one generation batch; returns every process's completions, in global order."""
        prompts = [example["prompt"] for example in inputs]
        prompt_ids, completion_ids, tool_mask, completions, logprobs, extra_fields, _, _ = self._generate(prompts)
        extras = [
            {key: values[i] if isinstance(values, list) else values for key, values in extra_fields.items()}
            for i in range(len(inputs))
        ]
        for example, extra in zip(inputs, extras, strict=True):  # as TRL does: rollout_func fields are columns too
            example.update(extra)
        rewards_per_func = self._calculate_rewards(inputs, prompts, completions, completion_ids)
        extra_logs = {column: list(values) for column, values in self._pending_extra_logs.items()}
        self._pending_extra_logs.clear()  # re-queued for the kept rows only, in _Replay
        rows = [
            {
                "input": example,
                "prompt": prompts[i],
                "prompt_ids": prompt_ids[i],
                "completion_ids": completion_ids[i],
                "tool_mask": None if tool_mask is None else tool_mask[i],
                "completion": completions[i],
                "logprobs": None if logprobs is None else logprobs[i],
                "extra": extras[i],
                "extra_log": {c: v[i] if len(v) == len(inputs) else None for c, v in extra_logs.items()},
            }
            for i, example in enumerate(inputs)
        ]
        rows = gather_object(rows)
        return Rollouts(rows, rewards_per_func, self._group_ids(len(rows), "train", first=first_group))

    def _next_refill_batch(self) -> list[dict[str, Any]]:
        """Prompts for another round of dynamic sampling: this process's part of a fresh generation batch."""
        if self._refill_batches is None:
            self._refill_batches = self._refill_stream()
        return next(self._refill_batches)

    def _refill_stream(self):
        # An independent shuffle of the training set (seed + 1), laid out like TRL's sampler but without repeats,
        # so refills never shift the main data order and every process draws the same prompts.
        def sampler(dataset):
            return RepeatSampler(
                dataset,
                mini_repeat_count=self.num_generations,
                batch_size=self.args.generation_batch_size // self.num_generations,
                repeat_count=1,
                shuffle=self.shuffle_dataset,
                seed=self.args.seed + 1,
            )

        loader = self._get_dataloader(
            self.train_dataset,
            description="Training",
            batch_size=self._train_batch_size * self.args.steps_per_generation,
            sampler_fn=sampler,
            is_training=True,
        )
        while True:
            yield from loader

    def _log_generated_rewards(self, generated: Rollouts, replace_trl_values: bool) -> None:
        """Reward metrics over every completion generated for the batch, not only the kept ones TRL scored."""
        rewards_per_func = generated.rewards_per_func
        rewards = total_reward(rewards_per_func, self.reward_weights)
        zero = zero_variance_rows(
            rewards_per_func, self.reward_weights, generated.group_ids, self.args.zero_variance_tolerance
        )
        values = {
            **{
                f"rewards/{name}/mean": torch.nanmean(rewards_per_func[:, i]).item()
                for i, name in enumerate(self.reward_func_names)
            },
            **{
                f"rewards/{name}/std": nanstd(rewards_per_func[:, i]).item()
                for i, name in enumerate(self.reward_func_names)
            },
            "reward": torch.nanmean(rewards).item(),
            "reward_std": nanstd(rewards).item(),
            "frac_reward_zero_std": zero.float().mean().item(),
        }
        metrics = self._metrics["train"]
        for key, value in values.items():
            if replace_trl_values and metrics[key]:
                metrics[key].pop()
            metrics[key].append(value)

    def _prepare_inputs(self, generation_batch):
        ragged = self.filter_zero_variance_groups or (
            self.group_size_planner is not None and self.group_size_planner.num_prompts is not None
        )
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

    # --- fused loss -------------------------------------------------------------------------------------------

    def _compute_loss(self, model, inputs):
        if self._fused_loss is None:
            return super()._compute_loss(model, inputs)
        unwrapped = self.accelerator.unwrap_model(model)
        loss, stats = self._forward_redirection(model, unwrapped, self._fused_policy_loss, unwrapped, inputs)
        # After the redirected forward: collectives inside a DDP/FSDP-wrapped forward risk hangs
        self._log_fused_loss_metrics(stats)
        return loss

    def _fused_policy_loss(self, unwrapped, inputs) -> tuple[torch.Tensor, torch.Tensor]:
        """TRL's `_compute_loss` for one micro-batch, with the LM head and the loss fused by Liger."""
        base = unwrapped.get_base_model() if is_peft_model(unwrapped) else unwrapped
        completion_ids = inputs["completion_ids"]
        input_ids = torch.cat([inputs["prompt_ids"], completion_ids], dim=1)
        attention_mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
        mask = inputs["completion_mask"]
        if "tool_mask" in inputs:
            mask = mask * inputs["tool_mask"]
        with self.accelerator.autocast():
            hidden = base.base_model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
        # position t predicts token t + 1: the states before each completion token
        hidden = hidden.last_hidden_state[:, -completion_ids.size(1) - 1 : -1]
        head = base.get_output_embeddings()
        weight, bias = head.weight, head.bias
        hidden = hidden.to(weight.device)
        if isinstance(weight, DTensor):  # FSDP2 shards the head; the fused loss needs it whole, as TRL's does
            weight = weight.full_tensor()
            bias = bias.full_tensor() if bias is not None else None
        autocast = self.accelerator.autocast()
        if self.args.cast_lm_head_to_fp32:
            hidden = hidden.float()
            autocast = torch.autocast(hidden.device.type, enabled=False)

        training = self.model.training
        accumulation_steps = self.current_gradient_accumulation_steps if training else 1.0
        dapo_normalizer = inputs["num_items_in_batch"].clamp(min=1.0)
        if training:  # TRL's count spans the generation batch; rescale it to one accumulation window
            dapo_normalizer = (
                dapo_normalizer * self.current_gradient_accumulation_steps / self.args.steps_per_generation
            )
        if self.loss_type == "vespo":
            importance_sampling_ratio = inputs.get("importance_sampling_ratio")
        elif self.use_vllm and self.vllm_importance_sampling_correction:
            importance_sampling_ratio = inputs["importance_sampling_ratio"]
        else:
            importance_sampling_ratio = None
        with autocast, maybe_gather_lm_head_ctx(weight, bias):
            return self._fused_loss(
                hidden,
                weight,
                bias,
                completion_ids,
                mask,
                inputs["advantages"],
                old_per_token_logps=inputs.get("old_per_token_logps"),
                ref_per_token_logps=inputs.get("ref_per_token_logps"),
                importance_sampling_ratio=importance_sampling_ratio,
                dapo_normalizer=dapo_normalizer,
                accumulation_steps=accumulation_steps,
            )

    def _log_fused_loss_metrics(self, stats: torch.Tensor) -> None:
        """TRL's loss metrics (KL, clip ratios), from the fused loss's per-sequence sums; see `fused_loss.py`."""
        from .fused_loss import CLIP_COUNT, CLIP_HIGH, CLIP_LOW, CLIP_REGION, CLIPPED_LOSS_TYPES, KL_SUM, TOKENS

        metrics = self._metrics["train" if self.model.training else "eval"]
        totals = self.accelerator.reduce(stats.sum(0), reduction="sum")

        def mean(column: int, count: int) -> float:
            return (totals[column] / totals[count].clamp(min=1.0)).item()

        if self.beta != 0.0:
            metrics["kl"].append(mean(KL_SUM, TOKENS))
        if self.loss_type in CLIPPED_LOSS_TYPES:
            metrics["clip_ratio/low_mean"].append(mean(CLIP_LOW, CLIP_COUNT))
            metrics["clip_ratio/high_mean"].append(mean(CLIP_HIGH, CLIP_COUNT))
            metrics["clip_ratio/region_mean"].append(mean(CLIP_REGION, CLIP_COUNT))
            per_sequence = self.accelerator.gather(stats[:, [CLIP_LOW, CLIP_HIGH]] / stats[:, [CLIP_COUNT]])
            metrics["clip_ratio/low_min"].append(nanmin(per_sequence[:, 0]).item())
            metrics["clip_ratio/high_max"].append(nanmax(per_sequence[:, 1]).item())
        elif self.loss_type == "cispo":
            metrics["cispo_clip_ratio"].append(mean(CLIP_REGION, CLIP_COUNT))
        elif self.loss_type == "vespo":
            metrics["vespo/phi_seq_mean"].append(mean(CLIP_REGION, CLIP_COUNT))


class _Replay:
    """Already generated and scored completions, handed to TRL's scoring in place of generating them again."""

    def __init__(self, rows: list[dict[str, Any]], rewards_per_func: torch.Tensor) -> None:
        self.rewards_per_func = rewards_per_func
        tool_masks = [row["tool_mask"] for row in rows]
        logprobs = [row["logprobs"] for row in rows]
        extra_keys = dict.fromkeys(key for row in rows for key in row["extra"])
        self.generation = (
            [row["prompt_ids"] for row in rows],
            [row["completion_ids"] for row in rows],
            None if all(mask is None for mask in tool_masks) else tool_masks,
            [row["completion"] for row in rows],
            None if all(lp is None for lp in logprobs) else logprobs,
            {key: [row["extra"].get(key) for row in rows] for key in extra_keys},
            None,  # images: filtering refuses image datasets
            [],  # tool images: filtering refuses tools
        )
        columns = dict.fromkeys(column for row in rows for column in row["extra_log"])
        self.extra_logs = {column: [row["extra_log"].get(column) for row in rows] for column in columns}


def _planner_for(
    schedule: GroupSizeSchedule, args: trl.GRPOConfig, trl_arguments: dict[str, Any]
) -> GroupSizePlanner | None:
    """The planner for `schedule`, checked against the run's first steps; None for TRL's fixed group size."""
    budget = getattr(args, "group_size_budget", "completions")
    if schedule.name == "constant" and schedule.plugin == "schedules":
        if schedule.options.get("size") in (None, args.num_generations):
            return None  # TRL's sampler already lays out exactly these groups
    dataset = trl_arguments.get("train_dataset")
    unsupported = []
    if args.use_vllm:
        unsupported.append("use_vllm (TRL's vLLM generation assumes num_generations completions per prompt)")
    if dataset is None or isinstance(dataset, IterableDataset | datasets.IterableDataset):
        unsupported.append("an iterable or missing train_dataset (planning reads prompts by index)")
    if getattr(args, "dynamic_sampling", False):
        unsupported.append("dynamic_sampling (its refills are groups of num_generations)")
    if budget == "prompts" and {"image", "images"} & set(getattr(dataset, "column_names", None) or ()):
        unsupported.append("image datasets with group_size_budget='prompts'")
    if unsupported:
        raise ValueError(
            f"group_size_schedule='{schedule.name}' is not supported with " + "; ".join(unsupported) + ". Use "
            "group_size_schedule='constant', or drop that setting."
        )
    fixed_prompts = budget == "prompts"
    planner = GroupSizePlanner(
        schedule,
        dataset,
        completions=None if fixed_prompts else args.generation_batch_size,
        num_prompts=args.generation_batch_size // args.num_generations if fixed_prompts else None,
        num_generations=args.num_generations,
        num_processes=max(args.world_size, 1),
        seed=args.seed,
        shuffle=args.shuffle_dataset,
        zero_variance_tolerance=getattr(args, "zero_variance_tolerance", 1e-6),
    )
    planner.check(_steps_to_check(args, len(dataset)))
    return planner


def _fused_loss_for(trainer: GRPOTrainer):
    """The fused loss for `trainer`'s settings; refuses models whose LM head Liger's loss cannot reproduce."""
    from .fused_loss import FusedGRPOLoss, FusedLossSettings

    model = trainer.accelerator.unwrap_model(trainer.model)
    if is_peft_model(model):
        model = model.get_base_model()
    config = model.config
    text_config = config.get_text_config()
    unsupported = []
    if text_config is not config:
        unsupported.append(f"a multimodal model ({type(model).__name__}; the fused loss takes text-only inputs)")
    if getattr(text_config, "final_logit_softcapping", None) is not None:
        unsupported.append("final logit softcapping (Liger's loss projects the logits without it)")
    scales = ("logit_scale", "output_multiplier", "lm_head_multiplier", "logits_scaling")
    if any(getattr(text_config, name, None) not in (None, 1, 1.0) for name in scales):
        unsupported.append("scaled logits (Liger's loss projects the logits without the model's logit scale)")
    if trainer.aux_loss_enabled:
        unsupported.append("the MoE router auxiliary loss (set router_aux_loss_coef=0.0 to train without it)")
    if unsupported:
        raise ValueError(
            "use_liger_loss=True does not support " + "; ".join(unsupported) + ". Set use_liger_loss=False to use "
            "TRL's loss."
        )
    return FusedGRPOLoss(FusedLossSettings.from_trainer(trainer))


def _steps_to_check(args: trl.GRPOConfig, num_examples: int, most: int = 2000) -> list[int]:
    """The optimizer steps the run will generate at, or an even sample of `most` of them with the last."""
    if args.max_steps > 0:
        last = args.max_steps
    else:  # epochs, counted as TRL's sampler counts them (at the configured group size)
        batches = num_examples // (args.generation_batch_size // args.num_generations)
        micro_steps = batches * args.steps_per_generation * args.num_iterations
        last = math.ceil(args.num_train_epochs * micro_steps / args.gradient_accumulation_steps)
    if last <= most:
        return list(range(last + 1))
    return sorted({round(i * last / most) for i in range(most + 1)})


def _filtering_requested(args: trl.GRPOConfig, trl_arguments: dict[str, Any]) -> bool:
    """Whether to filter zero-variance groups; refuses settings whose rollouts TRL assembles inside its scoring."""
    if not getattr(args, "filter_zero_variance_groups", False):
        return False
    dataset = trl_arguments.get("train_dataset")
    unsupported = []
    if trl_arguments.get("tools"):
        unsupported.append("`tools` (tool calls run inside TRL's scoring step)")
    if trl_arguments.get("environment_factory") is not None:
        unsupported.append("`environment_factory` (environments are reset inside TRL's scoring step)")
    if {"image", "images"} & set(getattr(dataset, "column_names", None) or ()):
        unsupported.append("image datasets (images are prepared inside TRL's scoring step)")
    if args.dynamic_sampling and isinstance(dataset, IterableDataset | datasets.IterableDataset):
        unsupported.append("dynamic_sampling with an iterable train_dataset (refills need a map-style dataset)")
    if unsupported:
        raise ValueError(
            "filter_zero_variance_groups is not supported with " + "; ".join(unsupported) + ". Turn "
            "filter_zero_variance_groups (and dynamic_sampling) off, or drop that setting."
        )
    return True
