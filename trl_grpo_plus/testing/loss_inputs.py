"""Recording what a GRPO run scored and what its loss received, to prove a feature trains what it claims.

A logged table or the prompts seen by the policy say little about training: a completion regenerated after scoring
shows the same prompt. `TrainingRecorder` keeps, per generation batch, every completion a reward function scored
(prompt, completion token ids, reward; one list per scoring round) and every row `_compute_loss` received (prompt,
completion token ids, advantage). A test then checks that each trained row is a scored completion carrying the
advantage its reward earns. Records are plain JSON, so a multi-process run can write one per rank::

    recorder = TrainingRecorder(tokenizer)
    trainer = GRPOTrainer(model, reward_funcs=[recorder.reward(my_reward)], ...)
    recorder.attach(trainer)
    trainer.train()
    recorder.generations  # [{"step", "rounds": [[scored row, ...], ...], "losses": [[loss row, ...], ...]}]

Under a group-size schedule a generation also holds the planned `group_sizes`, in order.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any


class TrainingRecorder:
    """Records, on this process, the scored completions and the loss's rows of every training generation batch."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self.generations: list[dict[str, Any]] = []
        self._trainer = None

    def reward(self, func: Callable[..., list[float | None]]) -> Callable[..., list[float | None]]:
        """`func` (a TRL reward function), recording each row it scores during training."""

        @functools.wraps(func)
        def recorded(prompts, completions, completion_ids, **kwargs):
            rewards = func(prompts=prompts, completions=completions, completion_ids=completion_ids, **kwargs)
            if self._trainer is not None and self._trainer.model.training:
                self.generations[-1]["rounds"].append(
                    [
                        {
                            "prompt": prompt,
                            "completion_ids": self._unpadded(ids),
                            "reward": math.nan if r is None else float(r),
                        }
                        for prompt, ids, r in zip(prompts, completion_ids, rewards, strict=True)
                    ]
                )
            return rewards

        return recorded

    def attach(self, trainer) -> None:
        """Wrap `trainer`'s generation batch and loss entry points (on the instance; the class is untouched)."""
        self._trainer = trainer
        generate_and_score = trainer._generate_and_score_completions
        compute_loss = trainer._compute_loss

        def recording_generate_and_score(inputs):
            if trainer.model.training:
                self.generations.append({"step": trainer.state.global_step, "rounds": [], "losses": []})
            return generate_and_score(inputs)

        def recording_compute_loss(model, inputs):
            if trainer.model.training:
                self.generations[-1]["losses"].append(self._loss_rows(inputs))
            return compute_loss(model, inputs)

        trainer._generate_and_score_completions = recording_generate_and_score
        trainer._compute_loss = recording_compute_loss
        planner = getattr(trainer, "group_size_planner", None)
        if planner is not None:  # under a schedule, record the planned group sizes: adjacent groups may share a prompt
            plan = planner.plan

            def recording_plan(step):
                batch = plan(step)
                self.generations[-1]["group_sizes"] = list(batch.sizes)
                return batch

            planner.plan = recording_plan

    def _unpadded(self, ids) -> list[int]:
        """Token ids without trailing padding (TRL right-pads completions; the pad token may also end one)."""
        ids = list(ids)
        while ids and ids[-1] == self.tokenizer.pad_token_id:
            ids.pop()
        return ids

    def _loss_rows(self, inputs: dict[str, Any]) -> list[dict[str, Any]]:
        rows = []
        for prompt_ids, prompt_mask, completion_ids, advantage in zip(
            inputs["prompt_ids"], inputs["prompt_mask"], inputs["completion_ids"], inputs["advantages"], strict=True
        ):
            rows.append(
                {
                    "prompt": self.tokenizer.decode(prompt_ids[prompt_mask.bool()], skip_special_tokens=True),
                    # the padding stripped, not the mask applied: mask_truncated_completions zeroes whole masks
                    "completion_ids": self._unpadded(completion_ids.tolist()),
                    "advantage": advantage.item(),
                }
            )
        return rows
