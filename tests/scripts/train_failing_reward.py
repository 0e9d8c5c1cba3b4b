"""Train the tiny model with a reward that raises on some completions (by their text), under `reward_on_error`.

Run with `python` or `accelerate launch --multi_gpu --num_processes 2`; every rank writes `<output_dir>/rank<k>.json`
with its log history and a checksum of its final parameters.
"""

import argparse
import json
from pathlib import Path

from rank_records import write_and_finish
from train_parity import digit_share, train

import trl_grpo_plus


def fails_on_digits(completions, **kwargs):
    """Raises when any completion holds a digit; the trainer then finds which ones, scoring them one by one."""
    if any(ch.isdigit() for c in completions for ch in c):
        raise ValueError("a digit")
    return [len(c) / 8 for c in completions]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("output_dir", type=Path)
    parser.add_argument("--settings", type=json.loads, default={}, help="config fields, as JSON")
    cli = parser.parse_args()
    trainer = train(
        trl_grpo_plus.GRPOTrainer,
        trl_grpo_plus.GRPOConfig,
        cli.output_dir,
        reward_funcs=(digit_share, fails_on_digits),
        **cli.settings,
    )
    checksum = sum(float(p.double().sum()) for p in trainer.model.parameters())
    record = {
        "rank": trainer.accelerator.process_index,
        "log_history": trainer.state.log_history,
        "checksum": checksum,
    }
    write_and_finish(trainer, cli.output_dir, record)


if __name__ == "__main__":
    main()
