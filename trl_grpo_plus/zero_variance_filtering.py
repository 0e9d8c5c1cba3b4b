"""The zero-variance filtering feature, with DAPO-style dynamic sampling: logic, trainer glue, refusals, metrics.

A group whose rewards all (nearly) agree has zero advantage under every group-baseline estimator: it teaches
nothing, yet costs a full policy forward/backward and dilutes a token-normalized loss. `KeptPool` collects the
groups that do carry signal, over one or more generation rounds, until a batch is full (Yu et al., 2025, DAPO,
arXiv:2503.14476).

TRL seams (see `trainer.py`): rollouts are generated and scored first (TRL's `_generate`, `_calculate_rewards`),
the groups with signal chosen, and only those replayed through TRL's `_generate_and_score_completions` (reference
and old log-probs); during the replay `_generate` and `_calculate_rewards` hand back the kept completions and their
rewards (`ZeroVarianceFilter.replay`), so the loss trains exactly the completions that were scored.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import datasets
import torch
from accelerate.utils import gather_object
from torch.utils.data import IterableDataset
from trl.trainer.utils import RepeatSampler, nanstd

from .advantage_estimation import set_advantages
from .batch_rows import process_share, trl_sees_groups_of_one
from .ragged_groups import total_reward, zero_variance_rows

STATE_FILE = "dynamic_sampling.json"


@dataclass
class Rollouts:
    """Completions of one or more generation rounds across all processes, in global order.

    `rows[i]` holds everything needed to replay completion i through TRL's scoring (its dataset row, prompt,
    token ids, ...); `rewards_per_func[i]` its rewards; `group_ids[i]` its group, unique across rounds.
    """

    rows: list[dict[str, Any]]
    rewards_per_func: torch.Tensor
    group_ids: torch.Tensor

    def __len__(self) -> int:
        return len(self.rows)

    def select(self, indices: Sequence[int] | torch.Tensor) -> Rollouts:
        index = torch.as_tensor(indices, dtype=torch.long)
        return Rollouts([self.rows[i] for i in index.tolist()], self.rewards_per_func[index], self.group_ids[index])

    @staticmethod
    def concat(parts: Sequence[Rollouts], num_reward_funcs: int) -> Rollouts:
        if not parts:
            return Rollouts([], torch.empty(0, num_reward_funcs), torch.empty(0, dtype=torch.long))
        return Rollouts(
            [row for part in parts for row in part.rows],
            torch.cat([part.rewards_per_func for part in parts]),
            torch.cat([part.group_ids for part in parts]),
        )


@dataclass
class KeptPool:
    """The groups with signal kept so far for one batch, at most `target_rows` completions in whole groups."""

    target_rows: int
    num_reward_funcs: int
    tolerance: float
    parts: list[Rollouts] = field(default_factory=list)
    kept_rows: int = 0
    generated_groups: int = 0
    dropped_groups: int = 0
    rounds: int = 0
    generated: list[Rollouts] = field(default_factory=list)

    @property
    def full(self) -> bool:
        return self.kept_rows >= self.target_rows

    def add(self, rollouts: Rollouts, reward_weights: torch.Tensor, trained: Callable | None = None) -> None:
        """Keep the groups of `rollouts` that have signal, in order, while they fit in the batch; `trained(rewards,
        weights)` picks the rewards that train (`AuditRewards.trained`; default: all of them)."""
        self.rounds += 1
        self.generated.append(rollouts)
        rewards, weights = (rollouts.rewards_per_func, reward_weights)
        if trained is not None:
            rewards, weights = trained(rewards, weights)
        dead = zero_variance_rows(rewards, weights, rollouts.group_ids, self.tolerance)
        groups = list(dict.fromkeys(rollouts.group_ids.tolist()))  # in order of appearance
        self.generated_groups += len(groups)
        keep = []
        for group in groups:
            members = (rollouts.group_ids == group).nonzero().flatten()
            if dead[members].all():
                self.dropped_groups += 1
            elif self.kept_rows + len(members) <= self.target_rows:  # whole groups only; DAPO trims the excess
                keep.append(members)
                self.kept_rows += len(members)
        if keep:
            self.parts.append(rollouts.select(torch.cat(keep)))

    def kept(self) -> Rollouts:
        return Rollouts.concat(self.parts, self.num_reward_funcs)

    def all_generated(self) -> Rollouts:
        return Rollouts.concat(self.generated, self.num_reward_funcs)


@dataclass(frozen=True)
class FilteredBatch:
    """What one filtered batch was: every completion generated and scored (all rounds), the rows that train (the
    same row objects, in training order) and their advantages. Rollout monitors read it."""

    generated: Rollouts
    trained_rows: list[dict[str, Any]]
    advantages: torch.Tensor


def check_config(args: Any) -> None:
    """Refuse bad filtering settings of a `GRPOConfig`, before any model is loaded."""
    if not isinstance(args.zero_variance_tolerance, (int, float)) or args.zero_variance_tolerance < 0:
        raise ValueError(
            f"zero_variance_tolerance must be a number >= 0 (the largest reward spread that still counts as zero "
            f"variance), got {args.zero_variance_tolerance!r}."
        )
    if not isinstance(args.max_sampling_rounds, int) or args.max_sampling_rounds < 1:
        raise ValueError(
            f"max_sampling_rounds must be an integer >= 1 (generation rounds per batch, the first included), "
            f"got {args.max_sampling_rounds!r}."
        )
    if args.dynamic_sampling and not args.filter_zero_variance_groups:
        raise ValueError(
            "dynamic_sampling refills what zero-variance filtering drops, so it needs "
            "filter_zero_variance_groups=True. Set both, or neither."
        )


class Replay:
    """Already generated and scored completions, handed to TRL's scoring in place of generating them again."""

    def __init__(self, rows: list[dict[str, Any]], rewards_per_func: torch.Tensor) -> None:
        self.rewards_per_func = rewards_per_func
        tool_masks = [row["tool_mask"] for row in rows]
        logprobs = [row["logprobs"] for row in rows]
        extra_keys = dict.fromkeys(key for row in rows for key in row["extra"])
        # What TRL's `_generate` returns, for the kept rows
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


class ZeroVarianceFilter:
    """The trainer's side of filtering: roll out, keep the groups with signal (refilling with dynamic sampling),
    replay the kept ones through TRL's scoring, and log what was generated and dropped."""

    def __init__(self, args: Any) -> None:
        self.tolerance = args.zero_variance_tolerance
        self.dynamic_sampling = args.dynamic_sampling
        self.max_sampling_rounds = args.max_sampling_rounds
        self.replay: Replay | None = None  # set while TRL scores the kept rows
        self.last_batch: FilteredBatch | None = None  # the latest training batch, for rollout monitors
        self._refill_batches = None
        self._refills_drawn = 0  # the refill stream's position, saved in checkpoints

    @classmethod
    def for_run(cls, args: Any, trl_arguments: Mapping[str, Any]) -> ZeroVarianceFilter | None:
        """The filter when `args` asks for one; refuses settings whose rollouts TRL assembles inside its scoring."""
        if not args.filter_zero_variance_groups:
            return None
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
        return cls(args)

    def describe(self) -> str:
        line = "; zero-variance groups filtered"
        if self.dynamic_sampling:
            line += f", dynamic sampling up to {self.max_sampling_rounds} rounds"
        return line

    def generate_and_score(
        self,
        trainer: Any,
        inputs: list[dict[str, Any]],
        score_with_trl: Callable[[list[dict[str, Any]]], dict[str, Any]],
        estimator: Callable[..., torch.Tensor],
        group_ids: Callable[[int, int], torch.Tensor],
    ) -> tuple[dict[str, Any], torch.Tensor]:
        """The training batch of the kept groups, scored by `score_with_trl` (TRL's own scoring), with
        `estimator`'s advantages over them; and the first round's rewards (all processes), for a schedule.

        `group_ids(num_rows, first)` numbers the groups of a round from `first`.
        """
        rollouts = self._roll_out(trainer, inputs, group_ids, first_group=0)
        # The batch is full when the kept groups hold as many completions as its first round: generation_batch_size,
        # or a schedule's planned batch, which with a fixed number of prompts can be larger.
        pool = KeptPool(
            target_rows=len(rollouts), num_reward_funcs=len(trainer.reward_funcs), tolerance=self.tolerance
        )
        while True:
            pool.add(rollouts, trainer.reward_weights, trainer.audit_rewards.trained)
            if pool.full or not self.dynamic_sampling or pool.rounds >= self.max_sampling_rounds:
                break
            first_group = int(rollouts.group_ids.max()) + 1
            rollouts = self._roll_out(trainer, self._next_refill_batch(trainer), group_ids, first_group)
        first_round = pool.generated[0].rewards_per_func

        accelerator = trainer.accelerator
        kept = pool.kept()
        share = process_share(len(kept), accelerator.num_processes, accelerator.process_index)
        used = (share.stop - share.start) * accelerator.num_processes
        metrics = trainer._metrics["train"]
        metrics["filter/frac_groups_dropped"].append(pool.dropped_groups / max(pool.generated_groups, 1))
        metrics["filter/sampling_rounds"].append(float(pool.rounds))
        metrics["filter/kept_sequences"].append(float(used))
        if used == 0:  # nothing to learn from in this batch: every micro-step of it is skipped (see compute_loss)
            self._log_generated_rewards(trainer, pool.all_generated(), replace_trl_values=False)
            self.last_batch = FilteredBatch(pool.all_generated(), [], torch.empty(0))
            return {"advantages": torch.empty(0, device=accelerator.device)}, first_round

        # Advantages over the batch that trains (batch-level estimators see only kept groups), before any trim;
        # from the trained rewards only (audit rewards are logged, never trained on).
        advantages = estimator(
            *trainer.audit_rewards.trained(kept.rewards_per_func, trainer.reward_weights), kept.group_ids
        )
        self.last_batch = FilteredBatch(pool.all_generated(), kept.rows[:used], advantages[:used])
        local = kept.select(range(share.start, share.stop))
        self.replay = Replay(local.rows, kept.rewards_per_func[:used])
        trainer._pending_extra_logs.update(self.replay.extra_logs)
        try:
            # The kept groups need not fill TRL's groups of num_generations (an equal share per process can cut one)
            with trl_sees_groups_of_one(trainer):
                output = score_with_trl([row["input"] for row in local.rows])
        finally:
            self.replay = None
        set_advantages(output, advantages[:used], accelerator.process_index, trainer._logs)
        self._log_generated_rewards(trainer, pool.all_generated(), replace_trl_values=True)
        return output, first_round

    def _roll_out(
        self,
        trainer: Any,
        inputs: list[dict[str, Any]],
        group_ids: Callable[[int, int], torch.Tensor],
        first_group: int,
    ) -> Rollouts:
        """Generate and score one generation batch; returns every process's completions, in global order."""
        prompts = [example["prompt"] for example in inputs]
        prompt_ids, completion_ids, tool_mask, completions, logprobs, extra_fields, _, _ = trainer._generate(prompts)
        extras = [
            {key: values[i] if isinstance(values, list) else values for key, values in extra_fields.items()}
            for i in range(len(inputs))
        ]
        for example, extra in zip(inputs, extras, strict=True):  # as TRL does: rollout_func fields are columns too
            example.update(extra)
        rewards_per_func = trainer._calculate_rewards(inputs, prompts, completions, completion_ids)
        extra_logs = {column: list(values) for column, values in trainer._pending_extra_logs.items()}
        trainer._pending_extra_logs.clear()  # re-queued for the kept rows only, in Replay
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
        return Rollouts(rows, rewards_per_func, group_ids(len(rows), first_group))

    def _next_refill_batch(self, trainer: Any) -> list[dict[str, Any]]:
        """Prompts for another round of dynamic sampling: this process's part of a fresh generation batch."""
        if self._refill_batches is None:
            self._refill_batches = self._refill_stream(trainer)
        self._refills_drawn += 1
        return next(self._refill_batches)

    def save(self, folder: str) -> None:
        """Save the refill stream's position (its shuffles follow from the seed and the position)."""
        with open(os.path.join(folder, STATE_FILE), "w") as file:
            json.dump({"refill_batches_drawn": self._refills_drawn}, file)

    def load(self, checkpoint: str, trainer: Any) -> None:
        """Move the refill stream to the saved position. Drawn now, before the trainer restores the RNG states
        (starting the stream's data loader draws from torch's RNG, which the uninterrupted run did before saving)."""
        path = os.path.join(checkpoint, STATE_FILE)
        if not os.path.exists(path):  # written without dynamic sampling (the settings check warned): from the start
            return
        with open(path) as file:
            drawn = json.load(file)["refill_batches_drawn"]
        self._refill_batches, self._refills_drawn = None, 0
        for _ in range(drawn):
            self._next_refill_batch(trainer)

    @staticmethod
    def _refill_stream(trainer: Any):
        # An independent shuffle of the training set (seed + 1), laid out like TRL's sampler but without repeats,
        # so refills never shift the main data order and every process draws the same prompts.
        args = trainer.args

        def sampler(dataset):
            return RepeatSampler(
                dataset,
                mini_repeat_count=trainer.num_generations,
                batch_size=args.generation_batch_size // trainer.num_generations,
                repeat_count=1,
                shuffle=trainer.shuffle_dataset,
                seed=args.seed + 1,
            )

        loader = trainer._get_dataloader(
            trainer.train_dataset,
            description="Training",
            batch_size=trainer._train_batch_size * args.steps_per_generation,
            sampler_fn=sampler,
            is_training=True,
        )
        while True:
            yield from loader

    def _log_generated_rewards(self, trainer: Any, generated: Rollouts, replace_trl_values: bool) -> None:
        """Reward metrics over every completion generated for the batch, not only the kept ones TRL scored."""
        rewards_per_func = generated.rewards_per_func
        rewards = total_reward(rewards_per_func, trainer.reward_weights)
        zero = zero_variance_rows(rewards_per_func, trainer.reward_weights, generated.group_ids, self.tolerance)
        names = trainer.reward_func_names
        values = {
            **{f"rewards/{name}/mean": torch.nanmean(rewards_per_func[:, i]).item() for i, name in enumerate(names)},
            **{f"rewards/{name}/std": nanstd(rewards_per_func[:, i]).item() for i, name in enumerate(names)},
            "reward": torch.nanmean(rewards).item(),
            "reward_std": nanstd(rewards).item(),
            "frac_reward_zero_std": zero.float().mean().item(),
        }
        metrics = trainer._metrics["train"]
        for key, value in values.items():
            if replace_trl_values and metrics[key]:
                metrics[key].pop()
            metrics[key].append(value)
