"""Benchmark: what our trainer costs per optimizer step over `trl.GRPOTrainer` when no feature changes the training.

Runs, in one process and interleaved (TRL, ours, ours with each feature named but off its path, TRL, ours, ...),
the same short training of a small model on CPU, and times every optimizer step (generation, scoring, loss,
backward, optimizer update). Reports each variant's median step time and its ratio to TRL's median. Variants:

- `trl`: `trl.GRPOTrainer` with `trl.GRPOConfig`, the reference;
- `defaults`: our trainer, no extension option set (the goal: at most 1.02x);
- `named_estimator`: `advantage_estimator="grpo"` given explicitly (the estimator hook path);
- `named_schedule`: `group_size_schedule="constant"` with `size` = `num_generations` (TRL's layout again);
- `plugin_reward`: the reward named as a plugin reward (bound and guarded) instead of passed as a callable;
- `filter_keeps_all`: zero-variance filtering on, with a reward under which no group is zero-variance: the filter's
  roll-out and replay path, dropping nothing (it then trains exactly as TRL does).

    python benchmarks/overhead.py                     # -> benchmarks/results/overhead.json
    python benchmarks/overhead.py --repeats 2 --steps 4   # quicker
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import torch  # noqa: E402
import trl  # noqa: E402
from filtering import StepTimer  # noqa: E402  (the same step timing as the filtering benchmark)

from trl_grpo_plus import GRPOConfig, GRPOTrainer, build_plugin_manager, hookimpl  # noqa: E402
from trl_grpo_plus.testing import tiny_grpo_settings, tiny_model, tiny_prompt_dataset, tiny_tokenizer  # noqa: E402


def text_hash(completions, **kwargs):
    """Differs between any two distinct completions: no group is zero-variance, so filtering drops nothing."""
    return [int(hashlib.sha256(c.encode()).hexdigest()[:8], 16) / 16**8 for c in completions]


class TextHashPlugin:
    @hookimpl
    def register_reward_functions(self, register):
        register(text_hash)


VARIANTS = {
    "trl": {},
    "defaults": {},
    "named_estimator": {"advantage_estimator": "grpo"},
    "named_schedule": {"group_size_schedule": "constant", "group_size_kwargs": {"size": 4}},
    "plugin_reward": {"reward_plugins": ["text_hash"]},
    "filter_keeps_all": {"filter_zero_variance_groups": True},
}


def run(variant: str, steps: int, hidden_size: int, output_dir: str) -> list[float]:
    tokenizer = tiny_tokenizer()
    settings = tiny_grpo_settings(
        output_dir, max_steps=steps, max_completion_length=64, per_device_train_batch_size=16, logging_steps=steps
    )
    extension = dict(VARIANTS[variant])
    plugin_reward = extension.pop("reward_plugins", None)
    model = tiny_model(tokenizer, hidden_size=hidden_size)
    timer = StepTimer()
    common = dict(model=model, train_dataset=tiny_prompt_dataset(64), processing_class=tokenizer, callbacks=[timer])
    if variant == "trl":
        trainer = trl.GRPOTrainer(reward_funcs=[text_hash], args=trl.GRPOConfig(**settings), **common)
    else:
        trainer = GRPOTrainer(
            reward_funcs=[] if plugin_reward else [text_hash],
            args=GRPOConfig(**settings, **extension, reward_plugins=plugin_reward),
            plugin_manager=build_plugin_manager(load_entrypoints=False, plugins=[TextHashPlugin()]),
            **common,
        )
    trainer.train()
    return timer.step_seconds[1:]  # the first step pays one-off costs (allocator warm-up)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--hidden-size", type=int, default=128)
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "results" / "overhead.json")
    args = parser.parse_args()
    torch.set_num_threads(1)  # less scheduler noise between interleaved runs

    step_seconds: dict[str, list[float]] = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory() as scratch:
        for repeat in range(args.repeats):
            for name in VARIANTS:  # interleaved, so drifts in machine load hit every variant alike
                step_seconds[name] += run(name, args.steps, args.hidden_size, f"{scratch}/{name}-{repeat}")
    reference = statistics.median(step_seconds["trl"])
    results = {
        name: {
            "median_step_seconds": statistics.median(seconds),
            "ratio_to_trl": statistics.median(seconds) / reference,
            "steps_timed": len(seconds),
        }
        for name, seconds in step_seconds.items()
    }
    report = {
        "benchmark": "overhead",
        "settings": vars(args) | {"output": str(args.output)},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__},
        "results": results,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print("| variant | median step (s) | ratio to trl.GRPOTrainer |\n|---|---|---|")
    for name, result in results.items():
        print(f"| {name} | {result['median_step_seconds']:.4f} | {result['ratio_to_trl']:.3f}x |")
    print(f"written to {args.output}")


if __name__ == "__main__":
    main()
