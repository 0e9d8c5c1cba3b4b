"""Train the tiny model under a group-size schedule and record every batch the schedule planned.

Run with `python` (one process) or `accelerate launch --multi_gpu --num_processes 2` (gloo on CPU); every rank
writes `<output_dir>/rank<k>.json` with its plans (step, prompts, sizes), the prompts its policy scored, and the
log history. Prompt i is solved by every completion when i % 3 == 0, by none when i % 3 == 1, and by about half
(decided by a hash of the completion) when i % 3 == 2, so adaptive schedules have something to adapt to.
"""

import argparse
import hashlib
import json
from pathlib import Path

from datasets import Dataset
from rank_records import record_scored_prompts, write_and_finish

from trl_grpo_plus import GRPOConfig, GRPOTrainer
from trl_grpo_plus.testing import tiny_grpo_settings, tiny_model, tiny_tokenizer


def solved(completions, kind, **kwargs):
    return [
        float(k == "always" or (k == "sometimes" and int(hashlib.sha256(c.encode()).hexdigest(), 16) % 2 == 0))
        for c, k in zip(completions, kind)
    ]


def prompt_dataset(num_prompts):
    kinds = ("always", "never", "sometimes")
    return Dataset.from_list([{"prompt": f"{i // 10}+{i % 10}=", "kind": kinds[i % 3]} for i in range(num_prompts)])


def train(output_dir, schedule, schedule_kwargs, resume_from=None, model=None, **overrides):
    """Train; returns (trainer, plans, scored prompts by step). Importable by tests for in-process runs."""
    tokenizer = tiny_tokenizer()
    settings = tiny_grpo_settings(
        output_dir, group_size_schedule=schedule, group_size_kwargs=schedule_kwargs, learning_rate=5e-2
    )
    num_prompts = overrides.pop("num_prompts", 12)
    settings.update(overrides)
    trainer = GRPOTrainer(
        model=model if model is not None else tiny_model(tokenizer),
        reward_funcs=[solved],
        args=GRPOConfig(**settings),
        train_dataset=prompt_dataset(num_prompts),
        processing_class=tokenizer,
    )
    plans = []
    planner = trainer.group_size_planner
    plan = planner.plan

    def recording_plan(step):
        batch = plan(step)
        plans.append({"step": batch.step, "prompts": batch.prompts, "sizes": batch.sizes})
        return batch

    planner.plan = recording_plan
    scored = record_scored_prompts(trainer, tokenizer)
    trainer.train(resume_from_checkpoint=resume_from)
    return trainer, plans, scored


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("output_dir", type=Path)
    parser.add_argument("--schedule", default="linear")
    parser.add_argument("--schedule_kwargs", type=json.loads, default=None)
    parser.add_argument("--per_device_train_batch_size", type=int, default=12)
    parser.add_argument("--gradient_accumulation_steps", type=int, default=1)
    parser.add_argument("--max_steps", type=int, default=4)
    parser.add_argument("--group_size_budget", default="completions")
    parser.add_argument("--num_prompts", type=int, default=12)
    cli = parser.parse_args()

    trainer, plans, scored = train(
        cli.output_dir,
        cli.schedule,
        cli.schedule_kwargs,
        per_device_train_batch_size=cli.per_device_train_batch_size,
        gradient_accumulation_steps=cli.gradient_accumulation_steps,
        max_steps=cli.max_steps,
        group_size_budget=cli.group_size_budget,
        num_prompts=cli.num_prompts,
    )
    record = {
        "rank": trainer.accelerator.process_index,
        "plans": plans,
        "scored": {str(step): prompts for step, prompts in scored.items()},
        "log_history": trainer.state.log_history,
    }
    write_and_finish(trainer, cli.output_dir, record)


if __name__ == "__main__":
    main()
