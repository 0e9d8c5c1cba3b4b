"""Train the tiny model for a few steps with TRL's loss or the fused Liger loss, and save what each rank ends with.

Run with `python` (one process) or `accelerate launch --multi_gpu --num_processes 2` (gloo on CPU); every rank
writes `<output_dir>/rank<k>.json` (its log history) and `<output_dir>/rank<k>.pt` (its final parameters).
"""

import argparse
from pathlib import Path

import torch
from rank_records import write_and_finish

from trl_grpo_plus import GRPOConfig, GRPOTrainer
from trl_grpo_plus.testing import tiny_grpo_settings, tiny_model, tiny_prompt_dataset, tiny_tokenizer


def digit_share(completions, **kwargs):
    return [sum(ch.isdigit() for ch in c) / max(len(c), 1) for c in completions]


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("output_dir", type=Path)
    parser.add_argument("--use_liger_loss", action="store_true")
    cli = parser.parse_args()
    tokenizer = tiny_tokenizer()
    # TRL's default loss_type, dapo, normalizes by the token count of all processes
    settings = tiny_grpo_settings(cli.output_dir, max_steps=3, learning_rate=5e-2, gradient_accumulation_steps=2)
    trainer = GRPOTrainer(
        model=tiny_model(tokenizer),
        reward_funcs=[digit_share],
        args=GRPOConfig(**settings, use_liger_loss=cli.use_liger_loss),
        train_dataset=tiny_prompt_dataset(32),
        processing_class=tokenizer,
    )
    trainer.train()
    rank = trainer.accelerator.process_index
    torch.save(trainer.accelerator.unwrap_model(trainer.model).state_dict(), cli.output_dir / f"rank{rank}.pt")
    write_and_finish(trainer, cli.output_dir, {"scored": {}, "log_history": trainer.state.log_history})
