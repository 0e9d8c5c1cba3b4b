"""The offline demo: a small model learns grade-school word problems, first from examples, then from rewards.

Everything is built here, with no network: a word-level tokenizer, a 1M-parameter Qwen2 model with random
weights, and synthetic word problems in GSM8K's format (`#### N`). A brief supervised warm start teaches the answer
format and part of the arithmetic; GRPO, through our trainer with the `accuracy` and `format` rewards chosen by name,
then raises greedy accuracy on held-out problems. The built-in rollout monitors watch the run, with the demo's
`working` reward (is the `a op b = c` working there and right?) as an audit reward, scored but never trained on; the
demo prints their verdict at the end. Written to the output folder: the trained model and tokenizer,
`history.json` (reward and held-out accuracy over completions generated, the monitors' alerts), `progress.png` (the
same, plotted, alerts marked), `monitor_samples.jsonl` (the completions behind the alerts) and `eval_results.json`. With `compare`, TRL's own `GRPOTrainer` also trains from the same warm start with the same
settings, and both runs are recorded and plotted.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from transformers import ProgressCallback, TrainerCallback

# The extension options the demo trains with, beyond TRL's settings; empty: the demo trains exactly as TRL would.
DEMO_FEATURES: dict = {}
# The format the demo's `format` reward asks for: GSM8K's answer shape, ending in "#### <number>", nothing after it.
ANSWER_FORMAT = r"[^#]*#### \d+"
# What watches every demo run; neither changes what trains (the TRL comparison stays exact).
DEMO_MONITORING: dict = {
    "audit_rewards": ["working"],
    "rollout_monitors": ["length_drift", "diversity", "repetition", "reward_divergence", "flagged_samples"],
}


@dataclass
class DemoSettings:
    """What a demo run does; the defaults are the measured ones in the README."""

    output_dir: str = "grpo-plus-demo"
    seed: int = 0
    train_problems: int = 4000
    held_out_problems: int = 500
    warm_start_problems: int = 64  # worked examples the warm start learns from; GRPO sees all train_problems
    warm_start_steps: int = 60
    warm_start_learning_rate: float = 1e-3
    max_steps: int = 150
    learning_rate: float = 3e-4
    # 512 completions a step: smaller batches made the policy gradient too noisy for this model at any useful lr
    prompts_per_step: int = 64
    num_generations: int = 8
    eval_every: int = 20
    compare: bool = False  # also train TRL's own GRPOTrainer from the same warm start, with the same settings
    # Train on `shows_working` (the `working` check, arithmetic included) in place of `format`: a run that keeps
    # correct working, the monitors' healthy baseline
    train_on_working: bool = False

    def __post_init__(self):
        for name in (
            "train_problems",
            "held_out_problems",
            "warm_start_problems",
            "max_steps",
            "prompts_per_step",
            "eval_every",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.warm_start_steps < 0:
            raise ValueError(f"warm_start_steps must be 0 or more, got {self.warm_start_steps}")
        if self.num_generations < 2:
            raise ValueError(
                f"num_generations must be at least 2 (GRPO compares completions), got {self.num_generations}"
            )


def demo_model(tokenizer, seed: int):
    """A 4-layer, 128-wide Qwen2 with random weights: about 1M parameters."""
    from ..testing.models import qwen2_from_scratch

    return qwen2_from_scratch(
        tokenizer,
        seed=seed,
        hidden_size=128,
        num_layers=4,
        num_heads=4,
        num_kv_heads=4,
        intermediate_size=512,
        max_position_embeddings=64,
    )


def answer_format(completions, **kwargs):
    """The demo's `format` reward as a plain TRL reward function, for TRL's own trainer."""
    from ..default_plugins.rewards import format as format_reward

    return format_reward(completions, pattern=ANSWER_FORMAT)


answer_format.__name__ = "format"  # the same metric name as the plugin reward: rewards/format/mean


def count_generated_completions(trainer) -> Callable[[], int]:
    """Counts the completions `trainer` generates; returns a function that reads the count.

    TRL's trainer and ours generate every completion through `_generate_single_turn` (every dynamic-sampling round
    included; our replay of already scored completions does not generate), so both are counted alike.
    """
    count = [0]
    generate = trainer._generate_single_turn

    def counted(prompt_ids, *args, **kwargs):
        completion_ids, logprobs = generate(prompt_ids, *args, **kwargs)
        count[0] += len(completion_ids)
        return completion_ids, logprobs

    trainer._generate_single_turn = counted
    return lambda: count[0]


def _require_matplotlib():
    try:
        import matplotlib
    except ImportError:
        raise ImportError(
            "The demo plots its progress with matplotlib, which is not installed: pip install 'trl-grpo-plus[demo]' "
            "(or pip install matplotlib)."
        ) from None
    matplotlib.use("Agg")  # files only, no display needed


def run_demo(settings: DemoSettings | None = None) -> dict:
    """Warm-start, evaluate, train with GRPO, evaluate; returns the run's summary (also in `history.json`)."""
    settings = settings or DemoSettings()
    _require_matplotlib()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    import trl
    from datasets import Dataset
    from transformers import set_seed

    from .. import GRPOConfig, GRPOTrainer, build_plugin_manager
    from ..default_plugins.rewards import accuracy
    from ..evaluation import greedy_pass_at_1, report_table, write_report
    from . import rewards as demo_rewards
    from .warm_start import supervised_warm_start
    from .word_problems import prompt, word_problem_tokenizer, word_problems

    set_seed(settings.seed)
    output = Path(settings.output_dir)
    tokenizer = word_problem_tokenizer()
    model = demo_model(tokenizer, settings.seed)
    held_out = word_problems(settings.held_out_problems, seed=10_000 + settings.seed)
    train = word_problems(
        settings.train_problems, seed=settings.seed, exclude={problem["question"] for problem in held_out}
    )

    def held_out_accuracy(description: str, trained=model):
        return greedy_pass_at_1(
            trained,
            tokenizer,
            [prompt(problem["question"]) for problem in held_out],
            [problem["answer"] for problem in held_out],
            max_new_tokens=12,
            batch_size=len(held_out),
            progress=False,
            description=description,
        )

    worked = train[: settings.warm_start_problems]
    print(f"Warm start: {settings.warm_start_steps} supervised steps on {len(worked)} worked problems")
    supervised_warm_start(
        model,
        tokenizer,
        [prompt(problem["question"]) for problem in worked],
        [problem["answer"] for problem in worked],
        steps=settings.warm_start_steps,
        learning_rate=settings.warm_start_learning_rate,
        seed=settings.seed,
    )
    before = held_out_accuracy("held-out accuracy")
    print(f"Held-out accuracy after the warm start: {before.accuracy:.1%} ({before.correct}/{before.total})")
    baseline_model = copy.deepcopy(model) if settings.compare else None
    dataset = Dataset.from_list([{"prompt": prompt(p["question"]), "answer": p["answer"]} for p in train])
    shared = {
        "max_steps": settings.max_steps,
        "learning_rate": settings.learning_rate,
        "lr_scheduler_type": "constant",
        "per_device_train_batch_size": settings.prompts_per_step * settings.num_generations,
        "num_generations": settings.num_generations,
        "max_completion_length": 12,
        "beta": 0.0,
        "reward_weights": [1.0, 0.2],
        "logging_steps": 10,
        "save_strategy": "no",
        "report_to": "none",
        "use_cpu": True,
        "bf16": False,
        "gradient_checkpointing": False,
        "disable_tqdm": False,
        "log_level": "warning",
        "seed": settings.seed,
    }

    def train_with(trainer_class, config, reward_funcs, trained, label: str) -> tuple[HeldOutAccuracy, list[dict]]:
        tracker = HeldOutAccuracy(
            lambda description: held_out_accuracy(description, trained), settings.eval_every, before, label
        )
        # our trainer gets the demo's `working` reward, a plugin registered in code
        plugins = (
            {"plugin_manager": build_plugin_manager(plugins=[demo_rewards])} if trainer_class is GRPOTrainer else {}
        )
        trainer = trainer_class(
            model=trained, reward_funcs=reward_funcs, args=config, train_dataset=dataset, processing_class=tokenizer,
            callbacks=[tracker], **plugins,
        )  # fmt: skip
        tracker.completions = count_generated_completions(trainer)
        trainer.remove_callback(ProgressCallback)  # the same bar, without a printed metrics dict per log
        trainer.add_callback(RewardInProgressBar())
        if isinstance(trainer, GRPOTrainer):
            print(trainer.describe_plugins())
        trainer.train()
        if isinstance(trainer, GRPOTrainer):
            trainer.save_model(str(output))
            tracker.monitors = trainer.rollout_monitors
        return tracker, training_rewards(trainer.state.log_history, tracker.completions_at)

    features = ", ".join(f"{key}={value}" for key, value in DEMO_FEATURES.items()) or "no extension option"
    print(f"GRPO with trl_grpo_plus.GRPOTrainer ({features})")
    tracker, rewards = train_with(
        GRPOTrainer,
        GRPOConfig(
            output_dir=str(output),
            reward_plugins=["accuracy", "shows_working" if settings.train_on_working else "format"],
            reward_kwargs={} if settings.train_on_working else {"format": {"pattern": ANSWER_FORMAT}},
            **shared,
            **DEMO_FEATURES,
            **DEMO_MONITORING,
        ),
        None,
        model,
        "",
    )
    after = tracker.latest
    monitors = tracker.monitors
    alerts = monitor_alerts(monitors, tracker.completions_at)
    summary = {
        "settings": asdict(settings),
        "features": DEMO_FEATURES,
        "monitoring": DEMO_MONITORING,
        "held_out_accuracy": {"warm_start": before.accuracy, "after_grpo": after.accuracy},
        "held_out_accuracy_curve": tracker.curve,
        "training_rewards": rewards,
        "monitor_alerts": alerts,
        "monitor_verdict": monitors.verdict(),
    }
    evaluations = {"before": before, "after": after}
    if settings.compare:
        print("Baseline for comparison: trl.GRPOTrainer, the same warm start and settings")
        baseline, baseline_rewards = train_with(
            trl.GRPOTrainer,
            trl.GRPOConfig(output_dir=str(output / "trl-baseline"), **shared),
            [accuracy, answer_format],
            baseline_model,
            "trl baseline: ",
        )
        summary["trl_baseline"] = {
            "held_out_accuracy": {"warm_start": before.accuracy, "after_grpo": baseline.latest.accuracy},
            "held_out_accuracy_curve": baseline.curve,
            "training_rewards": baseline_rewards,
        }
        evaluations["trl_baseline"] = baseline.latest
    (output / "history.json").write_text(json.dumps(summary, indent=2))
    write_report(output / "eval_results.json", evaluations)
    plot_progress(
        rewards,
        tracker.curve,
        output / "progress.png",
        baseline=summary.get("trl_baseline"),
        features=features,
        alerts=alerts,
    )
    print()
    print(report_table(evaluations, title="held-out accuracy (greedy)"))
    print(f"\n{summary['monitor_verdict']}")
    print(f"\nSaved to {output}/: the trained model, history.json, eval_results.json and progress.png")
    return summary


def training_rewards(log_history: list[dict], completions_at: dict[int, int]) -> list[dict]:
    """The logged training rewards, each with the completions generated up to its step."""
    return [
        {
            "step": log["step"],
            "completions": completions_at.get(log["step"]),
            "reward": log["reward"],
            "accuracy_reward": log["rewards/accuracy/mean"],
            "completion_length": log["completions/mean_length"],
            **({"working_reward": log["rewards/working/mean"]} if "rewards/working/mean" in log else {}),
        }
        for log in log_history
        if "rewards/accuracy/mean" in log
    ]


def monitor_alerts(monitors, completions_at: dict[int, int]) -> list[dict]:
    """Each monitor's alerts by kind: the step (and completions generated before it) of the first, all steps."""
    return [
        {
            "monitor": monitor,
            "kind": kind,
            "first_step": alerts[0].step,
            "completions_before": completions_at.get(alerts[0].step, 0),
            "batches": len(alerts),
            "steps": [alert.step for alert in alerts],
            "message": alerts[0].message,
        }
        for (monitor, kind), alerts in monitors.alerts_by_kind().items()
    ]


class HeldOutAccuracy(TrainerCallback):
    """Evaluates held-out accuracy every `every` GRPO steps and after the last one; keeps the curve, and the
    completions generated up to every step (read from `completions`, set once the trainer exists)."""

    def __init__(self, evaluate, every: int, start, label: str = "") -> None:
        self.evaluate, self.every, self.latest, self.label = evaluate, every, start, label
        self.curve = [{"step": 0, "completions": 0, "accuracy": start.accuracy}]
        self.completions: Callable[[], int] = lambda: 0
        self.completions_at: dict[int, int] = {}
        self.monitors = None  # the trainer's MonitorRunner, once trained

    def on_step_end(self, args, state, control, **kwargs):
        self.completions_at[state.global_step] = self.completions()
        if state.global_step % self.every == 0 or state.global_step == state.max_steps:
            self.latest = self.evaluate("held-out accuracy")
            self.curve.append(
                {"step": state.global_step, "completions": self.completions(), "accuracy": self.latest.accuracy}
            )
            print(f"{self.label}step {state.global_step}: held-out accuracy {self.latest.accuracy:.1%}", flush=True)


class RewardInProgressBar(ProgressCallback):
    """The trainer's step progress bar, showing the latest mean accuracy reward instead of printing each log."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.training_bar is not None and logs and "rewards/accuracy/mean" in logs:
            self.training_bar.set_postfix(accuracy_reward=f"{logs['rewards/accuracy/mean']:.3f}")


def plot_progress(
    rewards: list[dict],
    accuracy_curve: list[dict],
    path: Path,
    baseline: dict | None = None,
    features: str = "no extension option",
    alerts: list[dict] = (),
) -> None:
    """Training reward (accuracy reward per logged step) and held-out accuracy against the completions generated;
    with `baseline` (TRL's trainer's `training_rewards` and `held_out_accuracy_curve`), its lines too, dashed; a
    vertical line where each monitor's first alert of a kind fired (`monitor_alerts`)."""
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4))
    runs = [("trl_grpo_plus" + (f" ({features})" if baseline else ""), rewards, accuracy_curve, "-")]
    if baseline:
        runs.append(("trl.GRPOTrainer", baseline["training_rewards"], baseline["held_out_accuracy_curve"], "--"))
    for (label, run_rewards, curve, style), colors in zip(runs, (("C0", "C1"), ("C2", "C3")), strict=False):
        prefix = f"{label}: " if baseline else ""
        axis.plot(
            [r["completions"] for r in run_rewards], [r["accuracy_reward"] for r in run_rewards], style,
            color=colors[0], label=f"{prefix}training reward (accuracy)",
        )  # fmt: skip
        axis.plot(
            [p["completions"] for p in curve], [p["accuracy"] for p in curve], style, marker="o", color=colors[1],
            label=f"{prefix}held-out accuracy (greedy)",
        )  # fmt: skip
    if any("working_reward" in r for r in rewards):
        axis.plot(
            [r["completions"] for r in rewards], [r.get("working_reward") for r in rewards], ":", color="C4",
            label="audit reward (working shown and right)",
        )  # fmt: skip
    for index, alert in enumerate(alerts):
        axis.axvline(alert["completions_before"], color="C3", alpha=0.6, linestyle="-.")
        axis.annotate(
            f"alert: {alert['monitor']} ({alert['kind']}), step {alert['first_step']}",
            (alert["completions_before"], 0.97 - 0.06 * index), fontsize=6, color="C3", rotation=0, va="top",
        )  # fmt: skip
    axis.set_xlabel("completions generated in GRPO (0 = after the warm start)")
    axis.set_ylim(0, 1)
    axis.set_title("trl-grpo-plus offline demo: word problems")
    axis.grid(alpha=0.3)
    axis.legend(loc="lower right", fontsize=7 if baseline else None)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
