"""Train the tiny model with zero-variance filtering and record which prompts enter the policy's scoring forward.

Run with `python` (one process) or `accelerate launch --cpu --num_processes 2` (gloo); every rank writes
`<output_dir>/rank<k>.json`. Prompts with an even number are "dead": every completion gets reward 1.0, so their
groups have zero variance. The others get a reward that differs between distinct completions.
"""

import argparse
import hashlib
from pathlib import Path

import torch
from datasets import Dataset
from rank_records import record_scored_prompts, write_and_finish

from trl_grpo_plus import GRPOConfig, GRPOTrainer
from trl_grpo_plus.testing import tiny_grpo_settings, tiny_model, tiny_tokenizer


def signal_unless_dead(completions, dead, **kwargs):
    return [
        1.0 if d else int(hashlib.sha256(c.encode()).hexdigest()[:8], 16) / 16**8 for c, d in zip(completions, dead)
    ]


def prompt_dataset(num_prompts, dead_every):
    return Dataset.from_list(
        [{"prompt": f"{i // 10}+{i % 10}=", "dead": i % dead_every == 0} for i in range(num_prompts)]
    )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("output_dir", type=Path)
    parser.add_argument("--per_device_train_batch_size", type=int, default=16)
    parser.add_argument("--gradient_accumulation_steps", type=int, default=1)
    parser.add_argument("--max_steps", type=int, default=3)
    parser.add_argument("--dynamic_sampling", action="store_true")
    parser.add_argument("--no_filter", action="store_true")
    parser.add_argument("--dead_every", type=int, default=2, help="1: every prompt is dead")
    parser.add_argument("--num_prompts", type=int, default=40)
    cli = parser.parse_args()

    tokenizer = tiny_tokenizer()
    settings = tiny_grpo_settings(
        cli.output_dir,
        per_device_train_batch_size=cli.per_device_train_batch_size,
        gradient_accumulation_steps=cli.gradient_accumulation_steps,
        max_steps=cli.max_steps,
        filter_zero_variance_groups=not cli.no_filter,
        dynamic_sampling=cli.dynamic_sampling,
        max_sampling_rounds=4,
    )
    trainer = GRPOTrainer(
        model=tiny_model(tokenizer),
        reward_funcs=[signal_unless_dead],
        args=GRPOConfig(**settings),
        train_dataset=prompt_dataset(cli.num_prompts, cli.dead_every),
        processing_class=tokenizer,
    )
    scored = record_scored_prompts(trainer, tokenizer)
    initial = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.train()
    changed = any(not torch.equal(a, b) for a, b in zip(initial, trainer.model.parameters()))
    record = {
        "rank": trainer.accelerator.process_index,
        "scored": {str(step): prompts for step, prompts in scored.items()},
        "log_history": trainer.state.log_history,
        "parameters_changed": changed,
    }
    write_and_finish(trainer, cli.output_dir, record)


if __name__ == "__main__":
    main()
