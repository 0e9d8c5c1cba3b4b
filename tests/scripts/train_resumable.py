"""Train the tiny model with checkpoints, optionally SIGKILL it mid-run, or resume it from its last checkpoint.

    python train_resumable.py OUTPUT_DIR --settings '{"num_iterations": 2}' [--kill_at 5 --kill_during backward]
    python train_resumable.py OUTPUT_DIR --settings '...' --resume

Run with `python` (one process) or `accelerate launch --multi_gpu --num_processes 2` (gloo on CPU). `--kill_at N`
kills every process with SIGKILL (no clean stop: no handler runs, nothing is flushed) in the first generation, or
in the middle of the first backward, of an optimizer step numbered N or later (counting from 1). A finished run
writes `<output_dir>/rank<k>.json` (log history) and `<output_dir>/parameters_rank<k>.pt`.

Prompt i is solved by every completion when i % 3 == 0, by none when i % 3 == 1 (zero-variance groups), and by
about half, decided by a hash of the completion's text, when i % 3 == 2; a second reward scores the text itself.
So every reward depends on each completion's text, and a regenerated completion changes what trains.
"""

import argparse
import hashlib
import json
import os
import signal
from pathlib import Path

import torch
from datasets import Dataset
from rank_records import write_and_finish

from trl_grpo_plus import GRPOConfig, GRPOTrainer
from trl_grpo_plus.testing import tiny_grpo_settings, tiny_model, tiny_tokenizer


def _hash(text, salt=""):
    return int(hashlib.sha256((salt + text).encode()).hexdigest()[:8], 16) / 16**8


def solved(completions, kind, **kwargs):
    return [float(k == "always" or (k == "sometimes" and _hash(c) < 0.5)) for c, k in zip(completions, kind)]


def text_score(completions, kind, **kwargs):
    return [0.0 if k != "sometimes" else _hash(c, "text") for c, k in zip(completions, kind)]


def prompt_dataset(num_prompts):
    kinds = ("always", "never", "sometimes")
    return Dataset.from_list([{"prompt": f"{i // 10}+{i % 10}=", "kind": kinds[i % 3]} for i in range(num_prompts)])


def kill_in(trainer, step, during):
    """SIGKILL this process in the first generation, or mid-backward, of optimizer step `step` or later."""

    def kill():
        os.kill(os.getpid(), signal.SIGKILL)

    if during == "generation":
        generate = trainer._generate

        def generate_then_die(prompts):
            if trainer.model.training and trainer.state.global_step + 1 >= step:
                kill()
            return generate(prompts)

        trainer._generate = generate_then_die
    else:  # a gradient hook runs inside autograd's backward, with part of the gradients written
        parameter = next(p for p in trainer.model.parameters() if p.requires_grad)
        parameter.register_hook(lambda grad: kill() if trainer.state.global_step + 1 >= step else grad)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("output_dir", type=Path)
    parser.add_argument("--settings", type=json.loads, default={}, help="GRPOConfig fields over the defaults here")
    parser.add_argument("--num_prompts", type=int, default=24)
    parser.add_argument("--kill_at", type=int, default=None)
    parser.add_argument("--kill_during", choices=("generation", "backward"), default="generation")
    parser.add_argument("--resume", action="store_true", help="resume_from_checkpoint=True (the last checkpoint)")
    cli = parser.parse_args()

    tokenizer = tiny_tokenizer()
    settings = tiny_grpo_settings(
        cli.output_dir,
        per_device_train_batch_size=8,
        max_steps=6,
        learning_rate=5e-2,
        save_strategy="steps",
        save_steps=3,
    )
    settings.update(cli.settings)
    trainer = GRPOTrainer(
        model=tiny_model(tokenizer),
        reward_funcs=[solved, text_score],
        args=GRPOConfig(**settings),
        train_dataset=prompt_dataset(cli.num_prompts),
        processing_class=tokenizer,
    )
    if cli.kill_at is not None:
        kill_in(trainer, cli.kill_at, cli.kill_during)
    trainer.train(resume_from_checkpoint=True if cli.resume else None)
    rank = trainer.accelerator.process_index
    parameters = {name: p.detach().cpu().clone() for name, p in trainer.model.named_parameters()}
    torch.save(parameters, cli.output_dir / f"parameters_rank{rank}.pt")
    write_and_finish(trainer, cli.output_dir, {"rank": rank, "log_history": trainer.state.log_history})


if __name__ == "__main__":
    main()
