"""Benchmark: what zero-variance group filtering saves per optimizer step.

Trains the same small model on the same prompts twice in one process, without and with
`filter_zero_variance_groups`. Exactly half of every generation batch's prompts are "dead" (every completion gets
the same reward), the other half get rewards that differ between completions. Reports, per optimizer step, wall time
(the whole step, optimizer update included), time in the loss phase (policy forward + backward + optimizer, i.e.
everything but generation and scoring) and the number of sequences that enter the policy's gradient forward pass, and the filtered/unfiltered ratios. Writes JSON.

    python benchmarks/filtering.py                      # -> benchmarks/results/filtering.json
    python benchmarks/filtering.py --steps 4 --hidden-size 128   # quicker
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import torch  # noqa: E402
from datasets import Dataset  # noqa: E402
from transformers import TrainerCallback  # noqa: E402

from trl_grpo_plus import GRPOConfig, GRPOTrainer  # noqa: E402
from trl_grpo_plus.testing import tiny_grpo_settings, tiny_model, tiny_tokenizer  # noqa: E402


def half_dead(completions, dead, **kwargs):
    return [
        1.0 if d else int(hashlib.sha256(c.encode()).hexdigest()[:8], 16) / 16**8 for c, d in zip(completions, dead)
    ]


def prompts(num_prompts: int, prompt_length: int) -> Dataset:
    # Alternating dead/live, in order (no shuffle): every generation batch is exactly half dead.
    return Dataset.from_list(
        [
            {"prompt": f"{i:03d}" + "+1" * (prompt_length // 2 - 2) + "=", "dead": i % 2 == 0}
            for i in range(num_prompts)
        ]
    )


class StepTimer(TrainerCallback):
    """Times whole optimizer steps, from `on_step_begin` to `on_step_end`: generation, scoring, every micro-batch's
    forward and backward, gradient clipping and the optimizer update."""

    def __init__(self) -> None:
        self.step_seconds: list[float] = []
        self._start = 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.step_seconds.append(time.perf_counter() - self._start)


class TimedTrainer(GRPOTrainer):
    """Records the time spent generating and scoring (with reference/old log-probs) at each optimizer step."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.generation_seconds: list[float] = []

    def _generate_and_score_completions(self, inputs):
        start = time.perf_counter()
        output = super()._generate_and_score_completions(inputs)
        self.generation_seconds.append(time.perf_counter() - start)
        return output


def run(filtering: bool, cli: argparse.Namespace, output_dir: str) -> dict:
    tokenizer = tiny_tokenizer()
    model = tiny_model(
        tokenizer, hidden_size=cli.hidden_size, intermediate_size=4 * cli.hidden_size, num_layers=cli.num_layers
    )
    settings = tiny_grpo_settings(
        output_dir,
        per_device_train_batch_size=cli.batch_size,
        num_generations=cli.group_size,
        max_completion_length=cli.completion_length,
        max_steps=cli.steps + cli.warmup,
        shuffle_dataset=False,
        filter_zero_variance_groups=filtering,
        disable_tqdm=True,
    )
    trainer = TimedTrainer(
        model=model,
        reward_funcs=[half_dead],
        args=GRPOConfig(**settings),
        train_dataset=prompts(cli.batch_size // cli.group_size * (cli.steps + cli.warmup), cli.prompt_length),
        processing_class=tokenizer,
    )
    sequences = []  # per training step: sequences entering the policy's gradient forward

    def count(module, args, kwargs):
        if "labels" in kwargs and torch.is_grad_enabled():
            sequences[-1] += kwargs["input_ids"].size(0)

    trainer.model.register_forward_pre_hook(count, with_kwargs=True)
    timer = StepTimer()
    trainer.add_callback(timer)
    original_step = trainer.training_step

    def counted_step(*args, **kwargs):
        sequences.append(0)
        return original_step(*args, **kwargs)

    trainer.training_step = counted_step
    torch.manual_seed(0)
    trainer.train()
    measured = slice(cli.warmup, None)  # the first step pays one-off costs
    steps = timer.step_seconds[measured]
    loss_phase = [s - g for s, g in zip(steps, trainer.generation_seconds[measured])]
    dropped = [
        log["filter/frac_groups_dropped"] for log in trainer.state.log_history if "filter/frac_groups_dropped" in log
    ]
    return {
        "filter_zero_variance_groups": filtering,
        "step_seconds_median": statistics.median(steps),
        "loss_phase_seconds_median": statistics.median(loss_phase),
        "generation_seconds_median": statistics.median(trainer.generation_seconds[measured]),
        "forward_backward_sequences_per_step": statistics.mean(sequences[measured]),
        "frac_groups_dropped": statistics.mean(dropped) if dropped else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=6, help="measured optimizer steps per run")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured first steps")
    parser.add_argument("--batch-size", type=int, default=32, help="completions per step (generation batch)")
    parser.add_argument("--group-size", type=int, default=4)
    parser.add_argument("--completion-length", type=int, default=32)
    parser.add_argument("--prompt-length", type=int, default=64)
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--num-layers", type=int, default=4)
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "results" / "filtering.json")
    cli = parser.parse_args()
    torch.set_num_threads(max(torch.get_num_threads(), 1))

    with tempfile.TemporaryDirectory() as tmp:
        baseline = run(False, cli, f"{tmp}/off")
        filtered = run(True, cli, f"{tmp}/on")
    ratios = {
        key.replace("_median", "").replace("_per_step", ""): filtered[key] / baseline[key]
        for key in ("step_seconds_median", "loss_phase_seconds_median", "forward_backward_sequences_per_step")
    }
    result = {
        "benchmark": "zero-variance group filtering, half of every batch's groups zero-variance",
        "setup": {**vars(cli), "output": str(cli.output)},
        "machine": {
            "platform": platform.platform(),
            "cpu_threads": torch.get_num_threads(),
            "torch": torch.__version__,
        },
        "without_filtering": baseline,
        "with_filtering": filtered,
        "ratio_filtered_over_unfiltered": ratios,
    }
    cli.output.parent.mkdir(parents=True, exist_ok=True)
    cli.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'':34}{'unfiltered':>12}{'filtered':>12}{'ratio':>8}")
    for key, label in (
        ("forward_backward_sequences_per_step", "fwd/bwd sequences per step"),
        ("loss_phase_seconds_median", "loss phase s/step (median)"),
        ("step_seconds_median", "wall s/step (median)"),
    ):
        ratio = filtered[key] / baseline[key]
        print(f"{label:34}{baseline[key]:12.3f}{filtered[key]:12.3f}{ratio:8.2f}")
    print(f"wrote {cli.output}")


if __name__ == "__main__":
    main()
