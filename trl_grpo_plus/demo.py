"""A short, real GRPO run that needs no network: tiny model, built-in arithmetic task, rewards chosen by name.

The model starts random, so what it learns in a few dozen steps is the *shape* of an answer (digits, the
`#### N` marker), which the `answer_shape` reward below scores; `accuracy` is logged alongside. It shows the whole
path a real run takes: a plugin registered from a script, rewards by name, training, a saved model.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from .hookspecs import hookimpl


def answer_shape(completions, **kwargs) -> list[float]:
    """Share of the completion that is a well-formed `#### N` answer: digits, spaces and '#' score, other text not."""
    return [len(re.findall(r"[0-9# ]", c)) / max(len(c), 1) for c in completions]


class DemoPlugin:
    """Registers the demo's own reward, as any script can do with `build_plugin_manager(plugins=[...])`."""

    @hookimpl
    def register_reward_functions(self, register):
        register(answer_shape)


def run_demo(output_dir: str = "grpo-plus-demo", max_steps: int = 40, seed: int = 0) -> list[dict]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    from . import GRPOTrainer, build_plugin_manager
    from .testing import tiny_grpo_config, tiny_model, tiny_prompt_dataset, tiny_tokenizer

    tokenizer = tiny_tokenizer()
    config = tiny_grpo_config(
        output_dir,
        max_steps=max_steps,
        seed=seed,
        learning_rate=3e-3,
        per_device_train_batch_size=16,
        num_generations=8,
        max_completion_length=12,
        reward_plugins=["answer_shape", "accuracy"],
        reward_weights=[1.0, 1.0],
    )
    trainer = GRPOTrainer(
        model=tiny_model(tokenizer, seed=seed),
        args=config,
        train_dataset=tiny_prompt_dataset(256, seed=seed),
        processing_class=tokenizer,
        plugin_manager=build_plugin_manager(plugins=[DemoPlugin()]),
    )
    print(trainer.describe_plugins())
    trainer.train()
    trainer.save_model(output_dir)
    history = [
        {
            "step": log["step"],
            "answer_shape": log["rewards/answer_shape/mean"],
            "accuracy": log["rewards/accuracy/mean"],
        }
        for log in trainer.state.log_history
        if "rewards/answer_shape/mean" in log
    ]
    Path(output_dir, "rewards.json").write_text(json.dumps(history, indent=2))
    first, last = history[0], history[-1]
    print(
        f"\nanswer_shape reward: step {first['step']}: {first['answer_shape']:.3f} -> "
        f"step {last['step']}: {last['answer_shape']:.3f}"
    )
    print(f"model saved to {output_dir}/, reward history in {output_dir}/rewards.json")
    return history
