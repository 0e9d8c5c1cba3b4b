"""Train the tiny model with TRL's GRPOTrainer or ours, same settings, and write what the parity test compares.

`tests/test_parity.py` imports `train` to run it in-process.

Run with `python` or `accelerate launch --multi_gpu --num_processes 2` (gloo on CPU); every rank writes
`<output_dir>/rank<k>.json` (log history) and rank 0 `<output_dir>/parameters.pt` (the final parameters).
"""

import argparse
import hashlib
import json
import os
from pathlib import Path

import torch
import trl
from rank_records import write_and_finish

import trl_grpo_plus
from trl_grpo_plus.testing import tiny_grpo_settings, tiny_model, tiny_prompt_dataset, tiny_tokenizer

TRAINERS = {"trl": (trl.GRPOTrainer, trl.GRPOConfig), "ours": (trl_grpo_plus.GRPOTrainer, trl_grpo_plus.GRPOConfig)}


def digit_share(completions, **kwargs):
    return [sum(ch.isdigit() for ch in c) / max(len(c), 1) for c in completions]


def length_bonus(completions, **kwargs):
    return [len(c) / 8 for c in completions]


def text_hash(completions, **kwargs):
    """A reward that differs between any two distinct completions: no group of distinct completions is zero-variance."""
    return [int(hashlib.sha256(c.encode()).hexdigest()[:8], 16) / 16**8 for c in completions]


def train(trainer_cls, config_cls, output_dir, reward_funcs=(digit_share, length_bonus), **overrides):
    tokenizer = tiny_tokenizer()
    # Three groups of 4 per generation batch, so group, batch and no reward scaling all differ.
    settings = tiny_grpo_settings(
        output_dir, per_device_train_batch_size=12, max_steps=5, learning_rate=5e-2, reward_weights=[1.0, 0.5]
    )
    settings.update(overrides)
    # A saved checkpoint, as TRL loads its reference model (beta > 0) from the model's path; one per process.
    model_dir = Path(output_dir) / f"initial-model-{os.environ.get('RANK', '0')}"
    tiny_model(tokenizer).save_pretrained(model_dir)
    trainer = trainer_cls(
        model=str(model_dir),
        reward_funcs=list(reward_funcs),
        args=config_cls(**settings),
        train_dataset=tiny_prompt_dataset(64),
        processing_class=tokenizer,
    )
    trainer.train()
    return trainer


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("output_dir", type=Path)
    parser.add_argument("--trainer", choices=TRAINERS, required=True)
    parser.add_argument("--settings", type=json.loads, default={}, help="config fields, as JSON")
    cli = parser.parse_args()

    trainer = train(*TRAINERS[cli.trainer], cli.output_dir, **cli.settings)
    if trainer.accelerator.is_main_process:
        torch.save(dict(trainer.model.named_parameters()), cli.output_dir / "parameters.pt")
    record = {"rank": trainer.accelerator.process_index, "log_history": trainer.state.log_history}
    write_and_finish(trainer, cli.output_dir, record)


if __name__ == "__main__":
    main()
