"""Train the tiny model with any GRPOConfig settings, recording what was scored and what the loss received.

Run with `python` (one process) or `accelerate launch --multi_gpu --num_processes 2` (gloo on CPU); every rank
writes `<output_dir>/rank<k>.json` with its `TrainingRecorder` generations and the log history. Tests also import
`train` to run it in-process.

Prompt i is "dead" when i % 3 == 0 (every completion scores 1.0, so its group has zero variance); the others score
a hash of the completion's text, so a regenerated or swapped completion cannot carry the right reward.
"""

import argparse
import hashlib
import json
from pathlib import Path

from datasets import Dataset
from rank_records import write_and_finish

from trl_grpo_plus import GRPOConfig, GRPOTrainer
from trl_grpo_plus.testing import TrainingRecorder, tiny_grpo_settings, tiny_model, tiny_tokenizer


def text_hash(completions, dead, **kwargs):
    return [
        1.0 if d else int(hashlib.sha256(c.encode()).hexdigest()[:8], 16) / 16**8 for c, d in zip(completions, dead)
    ]


def prompt_dataset(num_prompts):
    return Dataset.from_list([{"prompt": f"{i // 10}+{i % 10}=", "dead": i % 3 == 0} for i in range(num_prompts)])


def train(output_dir, num_prompts=60, **overrides):
    """Train with `tiny_grpo_settings` plus `overrides`; returns (trainer, recorder)."""
    tokenizer = tiny_tokenizer()
    recorder = TrainingRecorder(tokenizer)
    settings = tiny_grpo_settings(output_dir, per_device_train_batch_size=12, max_steps=3, learning_rate=5e-2)
    settings.update(overrides)
    trainer = GRPOTrainer(
        model=tiny_model(tokenizer),
        reward_funcs=[recorder.reward(text_hash)],
        args=GRPOConfig(**settings),
        train_dataset=prompt_dataset(num_prompts),
        processing_class=tokenizer,
    )
    recorder.attach(trainer)
    trainer.train()
    return trainer, recorder


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("output_dir", type=Path)
    parser.add_argument("--settings", type=json.loads, default={}, help="GRPOConfig fields, as JSON")
    cli = parser.parse_args()
    trainer, recorder = train(cli.output_dir, **cli.settings)
    record = {
        "rank": trainer.accelerator.process_index,
        "generations": recorder.generations,
        "log_history": trainer.state.log_history,
    }
    write_and_finish(trainer, cli.output_dir, record)


if __name__ == "__main__":
    main()
