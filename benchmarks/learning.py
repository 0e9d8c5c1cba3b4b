"""Benchmark: what each feature buys in learning, per completion generated, against TRL's own GRPOTrainer.

Two tasks, each run for every configuration below with the same seeds, in one invocation:

- `word_problems`: the offline demo's task and model (`trl_grpo_plus.demo`): a 1M-parameter Qwen2, warm-started
  with the demo's supervised warm start, then GRPO with the demo's rewards (`accuracy` + 0.2 x `format`). Held-out
  metric: greedy accuracy on 500 held-out problems (`greedy_pass_at_1`).
- `stories_object`: a real pretrained checkpoint, stories260K (a 260K-parameter Llama trained on TinyStories), learns
  to keep its story on the object the prompt names: "Once upon a time, there was a little girl named Mia. She went
  to the park with her kite." Reward 1 when the 16-token continuation names the object ("kite" or "kites"), else 0.
  Held-out metric: share of greedy continuations that name it, on prompts whose (name, pronoun, place, object)
  combination never appears in training. Before training the model names it in about 8% of samples; greedy
  continuations do about 29% of the time, mostly by saying "ball" or "box" whatever the prompt held.

Configurations (all share the task's settings; only the named options differ):

- `baseline`: `trl.GRPOTrainer` with `trl.GRPOConfig`;
- `filter`: `filter_zero_variance_groups=True`; `filter+dynamic_sampling`: and `dynamic_sampling=True`
  (`max_sampling_rounds=3`);
- `per_prompt_adaptive`, `adaptive_zero_variance`: that `group_size_schedule`, default options;
- `rloo`, `rank`, `dr_grpo`: that `advantage_estimator`;
- `combination`: chosen by this run from the single configurations' results (unless `--combination` names one):
  from each family (sampling: filter / filter+dynamic_sampling; schedule; estimator) the option with the highest
  held-out accuracy at the budget, if it beats the baseline's; dynamic sampling and schedules cannot be combined (the
  trainer refuses it), so the lower-scoring of the two gives way (to `filter` / no schedule). It is picked on the same
  seeds it is then measured on, so its numbers are optimistic by the selection. When it equals a single configuration,
  that configuration's runs are reused.

Every seed warm-starts (or loads) the model once; each configuration starts from a copy of that state, so
configurations differ only in the GRPO phase. Every run stops once it has *generated* the task's budget of
completions. Completions are counted by wrapping the trainer instance's `_generate_single_turn`, which TRL's trainer
and ours both call for every generation, every dynamic-sampling round included (the replay of already scored
completions does not generate and is not counted). Held-out accuracy is measured before training and every
`eval_every` generated completions (the first step at or past each multiple), and at the end.

Definitions (all per task; "mean curve" = the mean over seeds of each run's curve, linearly interpolated onto the
completions grid 0, eval_every, 2 x eval_every, ..., budget):

- `accuracy_at_budget`: the mean curve at `budget` completions (the baseline's total).
- `accuracy_threshold`: the baseline's `accuracy_at_budget`. `completions_to_accuracy`: the first number of
  completions at which a configuration's mean curve reaches the threshold (linear interpolation between grid
  points); null if it never does.
- `reward_threshold`: the baseline's mean training reward (the task's main reward: `accuracy` or `names_object`,
  over every completion generated) in the last of `reward_bins` equal bins of completions. `completions_to_reward`:
  the end of the first bin in which a configuration's seed-mean reward reaches it; null if none does.
- `train_seconds`: wall time of `trainer.train()` to the budget, evaluations excluded (mean over seeds);
  `train_seconds_to_accuracy`: that time at `completions_to_accuracy` (interpolated per run, then averaged).
- `ratios_to_baseline`: each of the above divided by the baseline's (completions and seconds: < 1 is better;
  accuracy: > 1 is better), plus `accuracy_at_budget_points` (the difference in accuracy points).

    python benchmarks/learning.py            # full study, ~1 hour on 2 CPU cores -> benchmarks/results/learning.{json,png}
    python benchmarks/learning.py --smoke    # seconds-long: tiny sizes, 1 seed, every configuration (used by a test)
    python benchmarks/learning.py --tasks word_problems --configs baseline filter --seeds 1   # a slice
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import random
import re
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

import torch
import transformers
import trl
from datasets import Dataset
from transformers import PrinterCallback, TrainerCallback, set_seed

import trl_grpo_plus
from trl_grpo_plus.default_plugins.rewards import accuracy
from trl_grpo_plus.demo import DemoSettings, answer_format, count_generated_completions, demo_model
from trl_grpo_plus.evaluation import greedy_pass_at_1
from trl_grpo_plus.demo.warm_start import supervised_warm_start
from trl_grpo_plus.demo.word_problems import prompt, word_problem_tokenizer, word_problems

STORIES260K = Path(__file__).resolve().parents[2] / "shared" / "models" / "stories260K"

SINGLE_CONFIGS: dict[str, dict[str, Any]] = {
    "baseline": {},  # trl.GRPOTrainer itself
    "filter": {"filter_zero_variance_groups": True},
    "filter+dynamic_sampling": {
        "filter_zero_variance_groups": True,
        "dynamic_sampling": True,
        "max_sampling_rounds": 3,
    },
    "per_prompt_adaptive": {"group_size_schedule": "per_prompt_adaptive"},
    "adaptive_zero_variance": {"group_size_schedule": "adaptive_zero_variance"},
    "rloo": {"advantage_estimator": "rloo"},
    "rank": {"advantage_estimator": "rank"},
    "dr_grpo": {"advantage_estimator": "dr_grpo"},
}
FAMILIES = {
    "sampling": ("filter", "filter+dynamic_sampling"),
    "schedule": ("per_prompt_adaptive", "adaptive_zero_variance"),
    "estimator": ("rloo", "rank", "dr_grpo"),
}
CONFIG_NAMES = (*SINGLE_CONFIGS, "combination")


# --- tasks ----------------------------------------------------------------------------------------------------------


@dataclass
class Task:
    """A task's GRPO settings (shared by every configuration) and how to set up one seed of it."""

    name: str
    description: str
    prompts_per_step: int
    num_generations: int
    learning_rate: float
    max_completion_length: int
    budget: int  # completions generated per run
    eval_every: int  # completions between held-out evaluations
    reward_funcs: list[Callable]
    reward_weights: list[float]
    main_reward: str  # the reward whose training mean is reported
    setup: Callable[[int], SeedSetup] = field(repr=False)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def batch(self) -> int:
        return self.prompts_per_step * self.num_generations

    def settings(self) -> dict[str, Any]:
        return {
            key: value for key, value in asdict(self).items() if key not in ("reward_funcs", "setup", "description")
        } | {"reward_funcs": [f.__name__ for f in self.reward_funcs], "completions_per_step": self.batch}


@dataclass
class SeedSetup:
    """One seed of a task: the starting model (copied for every configuration), its data and held-out metric."""

    model: torch.nn.Module
    tokenizer: Any
    train_dataset: Dataset
    evaluate: Callable[[torch.nn.Module], float]
    seconds: float = 0.0  # warm start or loading


def word_problems_task(smoke: bool) -> Task:
    demo = DemoSettings()
    sizes = {"train": 64, "held_out": 16, "warm_start_steps": 10, "prompts_per_step": 4, "steps": 2, "eval_steps": 1}
    if not smoke:
        # 24 steps of the demo's 512 completions: a sixth of the demo's run, where its held-out accuracy already
        # rises ~10 points; 256 completions a step did not learn visibly in that time (measured).
        sizes = {
            "train": demo.train_problems,
            "held_out": demo.held_out_problems,
            "warm_start_steps": demo.warm_start_steps,
            "prompts_per_step": demo.prompts_per_step,
            "steps": 24,
            "eval_steps": 4,
        }
    batch = sizes["prompts_per_step"] * demo.num_generations

    def setup(seed: int) -> SeedSetup:
        start = time.perf_counter()
        set_seed(seed)
        tokenizer = word_problem_tokenizer()
        model = demo_model(tokenizer, seed)
        held_out = word_problems(sizes["held_out"], seed=10_000 + seed)
        train = word_problems(sizes["train"], seed=seed, exclude={p["question"] for p in held_out})
        worked = train[: demo.warm_start_problems]
        supervised_warm_start(
            model,
            tokenizer,
            [prompt(p["question"]) for p in worked],
            [p["answer"] for p in worked],
            steps=sizes["warm_start_steps"],
            learning_rate=demo.warm_start_learning_rate,
            seed=seed,
            progress=False,
        )

        def evaluate(trained) -> float:
            return greedy_pass_at_1(
                trained,
                tokenizer,
                [prompt(p["question"]) for p in held_out],
                [p["answer"] for p in held_out],
                max_new_tokens=12,
                batch_size=len(held_out),
                progress=False,
            ).accuracy

        dataset = Dataset.from_list([{"prompt": prompt(p["question"]), "answer": p["answer"]} for p in train])
        return SeedSetup(model, tokenizer, dataset, evaluate, time.perf_counter() - start)

    return Task(
        name="word_problems",
        description="the offline demo's task: warm-started 1M-parameter Qwen2, synthetic word problems",
        prompts_per_step=sizes["prompts_per_step"],
        num_generations=demo.num_generations,
        learning_rate=demo.learning_rate,
        max_completion_length=12,
        budget=sizes["steps"] * batch,
        eval_every=sizes["eval_steps"] * batch,
        reward_funcs=[accuracy, answer_format],
        reward_weights=[1.0, 0.2],
        main_reward="accuracy",
        setup=setup,
        details={
            "train_problems": sizes["train"],
            "held_out_problems": sizes["held_out"],
            "warm_start_steps": sizes["warm_start_steps"],
            "warm_start_problems": demo.warm_start_problems,
        },
    )


STORY_NAMES = ("Lily", "Tom", "Ben", "Sue", "Mia", "Max", "Anna", "Tim", "Sam", "Lucy")
STORY_PLACES = ("park", "garden", "house", "forest", "beach")
STORY_OBJECTS = (
    "ball", "doll", "kite", "car", "book", "hat", "box", "cake", "toy", "dog", "cat", "bird", "boat", "tree", "flower",
)  # fmt: skip


def story_prompts(seed: int) -> list[dict[str, str]]:
    """Every (name, girl/boy, place, object) story opening once, shuffled by `seed`; `answer` is the object."""
    rows = [
        {
            "prompt": f"Once upon a time, there was a little {child} named {name}. {pronoun} went to the {place} "
            f"with {possessive} {thing}.",
            "answer": thing,
        }
        for name in STORY_NAMES
        for child, pronoun, possessive in (("girl", "She", "her"), ("boy", "He", "his"))
        for place in STORY_PLACES
        for thing in STORY_OBJECTS
    ]
    random.Random(seed).shuffle(rows)
    return rows


def names_object(completions, answer, **kwargs):
    """1.0 when the continuation names the prompt's object (the `answer` column), singular or plural, else 0.0."""
    return [
        1.0 if re.search(rf"\b{re.escape(thing)}s?\b", completion, re.IGNORECASE) else 0.0
        for completion, thing in zip(completions, answer, strict=True)
    ]


def stories_task(smoke: bool, model_dir: Path) -> Task:
    sizes = {"held_out": 8, "train": 32, "prompts_per_step": 4, "steps": 2, "eval_steps": 1}
    if not smoke:
        # 12 steps: in calibration (seed 0) the baseline is at ~90% there and saturates at 100% by ~5,400 completions,
        # where no configuration could show a gain. 160 openings: each recurs 2-3 times, so per-prompt histories exist.
        sizes = {"held_out": 300, "train": 160, "prompts_per_step": 32, "steps": 12, "eval_steps": 2}
    num_generations = 8
    batch = sizes["prompts_per_step"] * num_generations

    def setup(seed: int) -> SeedSetup:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        start = time.perf_counter()
        set_seed(seed)
        rows = story_prompts(seed)
        held_out, train = rows[: sizes["held_out"]], rows[sizes["held_out"] :][: sizes["train"]]
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        model = AutoModelForCausalLM.from_pretrained(model_dir)

        def evaluate(trained) -> float:
            return greedy_pass_at_1(
                trained,
                tokenizer,
                [row["prompt"] for row in held_out],
                [row["answer"] for row in held_out],
                reward=names_object,
                max_new_tokens=16,
                batch_size=len(held_out),
                progress=False,
            ).accuracy

        return SeedSetup(model, tokenizer, Dataset.from_list(train), evaluate, time.perf_counter() - start)

    return Task(
        name="stories_object",
        description="stories260K (pretrained TinyStories Llama) learns to name the prompt's object in its continuation",
        prompts_per_step=sizes["prompts_per_step"],
        num_generations=num_generations,
        learning_rate=1e-4,
        max_completion_length=16,
        budget=sizes["steps"] * batch,
        eval_every=sizes["eval_steps"] * batch,
        reward_funcs=[names_object],
        reward_weights=[1.0],
        main_reward="names_object",
        setup=setup,
        details={"model": str(model_dir), "train_prompts": sizes["train"], "held_out_prompts": sizes["held_out"]},
    )


# --- one run --------------------------------------------------------------------------------------------------------


class BudgetTracker(TrainerCallback):
    """Per step: completions generated so far and training seconds (evaluations excluded); evaluates held-out
    accuracy every `eval_every` completions; stops the run once `budget` completions were generated."""

    def __init__(self, generated: Callable[[], int], budget: int, eval_every: int, evaluate, model, start_accuracy):
        self.generated, self.budget, self.eval_every = generated, budget, eval_every
        self.evaluate, self.model = evaluate, model
        self.steps: list[dict[str, float]] = []
        self.curve = [{"completions": 0, "accuracy": start_accuracy, "step": 0}]
        self.eval_seconds = 0.0
        self.next_eval = eval_every

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        completions = self.generated()
        seconds = time.perf_counter() - self.start - self.eval_seconds
        self.steps.append({"step": state.global_step, "completions": completions, "train_seconds": seconds})
        done = completions >= self.budget
        if completions >= self.next_eval or done:
            started = time.perf_counter()
            self.curve.append(
                {"completions": completions, "accuracy": self.evaluate(self.model), "step": state.global_step}
            )
            self.eval_seconds += time.perf_counter() - started
            while self.next_eval <= completions:
                self.next_eval += self.eval_every
        if done:
            control.should_training_stop = True


def run_config(task: Task, setup: SeedSetup, options: dict[str, Any], baseline: bool, seed: int, start_accuracy):
    model = copy.deepcopy(setup.model)
    trainer_class, config_class = (
        (trl.GRPOTrainer, trl.GRPOConfig) if baseline else (trl_grpo_plus.GRPOTrainer, trl_grpo_plus.GRPOConfig)
    )
    with tempfile.TemporaryDirectory() as output_dir:
        args = config_class(
            output_dir=output_dir,
            max_steps=math.ceil(task.budget / task.batch),  # dynamic sampling reaches the budget in fewer steps
            learning_rate=task.learning_rate,
            lr_scheduler_type="constant",
            per_device_train_batch_size=task.batch,
            num_generations=task.num_generations,
            max_completion_length=task.max_completion_length,
            beta=0.0,
            reward_weights=task.reward_weights,
            logging_steps=1,
            save_strategy="no",
            report_to="none",
            use_cpu=True,
            bf16=False,
            gradient_checkpointing=False,
            disable_tqdm=True,
            log_level="error",
            seed=seed,
            **options,
        )
        trainer = trainer_class(
            model=model,
            reward_funcs=task.reward_funcs,
            args=args,
            train_dataset=setup.train_dataset,
            processing_class=setup.tokenizer,
        )
        trainer.remove_callback(PrinterCallback)
        generated = count_generated_completions(trainer)
        tracker = BudgetTracker(generated, task.budget, task.eval_every, setup.evaluate, model, start_accuracy)
        trainer.add_callback(tracker)
        trainer.train()
    key = f"rewards/{task.main_reward}/mean"
    previous, steps = 0, []
    for record in tracker.steps:
        log = next((log for log in trainer.state.log_history if log.get("step") == record["step"] and key in log), {})
        steps.append(
            {
                **record,
                "generated": record["completions"] - previous,
                "reward": log.get(key),
                "kept_sequences": log.get("filter/kept_sequences"),
                "frac_reward_zero_std": log.get("frac_reward_zero_std"),
                "group_size_mean": log.get("group_size/mean"),
            }
        )
        previous = record["completions"]
    return {
        "seed": seed,
        "completions": generated(),
        "optimizer_steps": len(tracker.steps),
        "train_seconds": tracker.steps[-1]["train_seconds"],
        "eval_seconds": tracker.eval_seconds,
        "accuracy_curve": tracker.curve,
        "steps": steps,
    }


# --- summaries ------------------------------------------------------------------------------------------------------


def _interp(x: float, xs: list[float], ys: list[float]) -> float:
    if x <= xs[0]:
        return ys[0]
    for (x0, y0), (x1, y1) in zip(zip(xs, ys), zip(xs[1:], ys[1:])):
        if x <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return ys[-1]


def _first_crossing(threshold: float, xs: list[float], ys: list[float]) -> float | None:
    """The first x at which the piecewise-linear curve (xs, ys) reaches `threshold`."""
    if ys[0] >= threshold:
        return xs[0]
    for (x0, y0), (x1, y1) in zip(zip(xs, ys), zip(xs[1:], ys[1:])):
        if y1 >= threshold:
            return x0 + (x1 - x0) * (threshold - y0) / (y1 - y0)
    return None


def mean_accuracy_curve(task: Task, runs: list[dict]) -> tuple[list[int], list[float]]:
    grid = list(range(0, task.budget + 1, task.eval_every))
    if grid[-1] != task.budget:
        grid.append(task.budget)
    curves = [
        [_interp(x, [p["completions"] for p in r["accuracy_curve"]], [p["accuracy"] for p in r["accuracy_curve"]])
         for x in grid]
        for r in runs
    ]  # fmt: skip
    return grid, [statistics.mean(values) for values in zip(*curves)]


def reward_bins(task: Task, runs: list[dict], bins: int) -> tuple[list[float], list[float | None]]:
    """Bin ends and the seed-mean of each run's training reward over the completions generated in each bin."""
    ends = [task.budget * (k + 1) / bins for k in range(bins)]
    per_run = []
    for run in runs:
        totals = [[0.0, 0] for _ in ends]
        for step in run["steps"]:
            if step["reward"] is None or step["generated"] == 0:
                continue
            k = min(next((i for i, end in enumerate(ends) if step["completions"] <= end), bins - 1), bins - 1)
            totals[k][0] += step["reward"] * step["generated"]
            totals[k][1] += step["generated"]
        per_run.append([total / count if count else None for total, count in totals])
    means = []
    for k in range(bins):
        values = [r[k] for r in per_run if r[k] is not None]
        means.append(statistics.mean(values) if values else None)
    return ends, means


def summarize(task: Task, runs: list[dict], baseline: dict | None, bins: int) -> dict:
    grid, curve = mean_accuracy_curve(task, runs)
    ends, rewards = reward_bins(task, runs, bins)
    summary = {
        "seeds": [r["seed"] for r in runs],
        "accuracy_at_start": curve[0],
        "accuracy_at_budget": curve[-1],
        "mean_accuracy_curve": {"completions": grid, "accuracy": curve},
        "mean_reward_bins": {"completions_end": ends, "reward": rewards},
        "final_reward": rewards[-1],
        "train_seconds": statistics.mean(r["train_seconds"] for r in runs),
        "completions_generated": statistics.mean(r["completions"] for r in runs),
        "optimizer_steps": statistics.mean(r["optimizer_steps"] for r in runs),
    }
    base = baseline or summary
    summary["accuracy_threshold"] = base["accuracy_at_budget"]
    summary["reward_threshold"] = base["final_reward"]
    to_accuracy = _first_crossing(base["accuracy_at_budget"], grid, curve)
    # Reached at 0 completions means the baseline did not improve on the starting model: no ratio is meaningful.
    summary["completions_to_accuracy"] = to_accuracy if to_accuracy not in (None, 0) else None
    summary["completions_to_reward"] = next(
        (end for end, reward in zip(ends, rewards) if reward is not None and base["final_reward"] is not None
         and reward >= base["final_reward"]),
        None,
    )  # fmt: skip
    if summary["completions_to_accuracy"] is not None:
        seconds = [
            _interp(summary["completions_to_accuracy"], [0] + [s["completions"] for s in r["steps"]],
                    [0.0] + [s["train_seconds"] for s in r["steps"]])
            for r in runs
        ]  # fmt: skip
        summary["train_seconds_to_accuracy"] = statistics.mean(seconds)
    else:
        summary["train_seconds_to_accuracy"] = None
    return summary


def ratios(summary: dict, base: dict) -> dict[str, float | None]:
    def ratio(key):
        ours, theirs = summary.get(key), base.get(key)
        return ours / theirs if ours is not None and theirs else None

    return {
        "completions_to_accuracy": ratio("completions_to_accuracy"),
        "completions_to_reward": ratio("completions_to_reward"),
        "accuracy_at_budget": ratio("accuracy_at_budget"),
        "accuracy_at_budget_points": 100 * (summary["accuracy_at_budget"] - base["accuracy_at_budget"]),
        "train_seconds": ratio("train_seconds"),
        "train_seconds_to_accuracy": ratio("train_seconds_to_accuracy"),
    }


def choose_combination(summaries: dict[str, dict]) -> tuple[dict[str, Any], list[str], str]:
    """The best option of each family by accuracy at the budget, if it beats the baseline; see the docstring."""
    base = summaries["baseline"]["accuracy_at_budget"]
    picks = {}
    for family, names in FAMILIES.items():
        best = max(names, key=lambda n: summaries[n]["accuracy_at_budget"])
        if summaries[best]["accuracy_at_budget"] > base:
            picks[family] = best
    notes = []
    if picks.get("sampling") == "filter+dynamic_sampling" and "schedule" in picks:
        if (
            summaries["filter+dynamic_sampling"]["accuracy_at_budget"]
            >= summaries[picks["schedule"]]["accuracy_at_budget"]
        ):
            notes.append(f"{picks.pop('schedule')} dropped: the trainer refuses dynamic sampling with schedules")
        else:
            picks["sampling"] = "filter"
            notes.append("dynamic sampling dropped for filter alone: the trainer refuses it with schedules")
            if summaries["filter"]["accuracy_at_budget"] <= base:
                picks.pop("sampling")
    options = {key: value for name in picks.values() for key, value in SINGLE_CONFIGS[name].items()}
    reason = (
        "best of each family by held-out accuracy at the budget, where it beats the baseline: "
        + (", ".join(f"{family}: {name}" for family, name in picks.items()) or "none does")
        + ("; " + "; ".join(notes) if notes else "")
    )
    return options, list(picks.values()), reason


# --- the study ------------------------------------------------------------------------------------------------------


def run_task(task: Task, cli: argparse.Namespace) -> dict:
    seeds = list(range(cli.seeds))
    print(f"\n== {task.name}: {task.description}", flush=True)
    print(
        f"   {task.budget} completions per run ({task.prompts_per_step} prompts x {task.num_generations} a step), "
        f"held-out accuracy every {task.eval_every}, seeds {seeds}",
        flush=True,
    )
    setups, start_accuracy, setup_seconds = {}, {}, {}
    for seed in seeds:
        setups[seed] = task.setup(seed)
        start_accuracy[seed] = setups[seed].evaluate(setups[seed].model)
        setup_seconds[seed] = setups[seed].seconds
        print(f"   seed {seed}: starting held-out accuracy {start_accuracy[seed]:.3f}", flush=True)

    runs: dict[str, list[dict]] = {}
    config_options: dict[str, dict] = {}

    def run(name: str, options: dict[str, Any]):
        config_options[name] = options
        runs[name] = []
        for seed in seeds:
            record = run_config(task, setups[seed], options, name == "baseline", seed, start_accuracy[seed])
            runs[name].append(record)
            print(
                f"   {name:<26} seed {seed}: held-out {record['accuracy_curve'][0]['accuracy']:.3f} -> "
                f"{record['accuracy_curve'][-1]['accuracy']:.3f}, {record['completions']} completions, "
                f"{record['optimizer_steps']} steps, {record['train_seconds']:.0f} s",
                flush=True,
            )

    singles = [name for name in SINGLE_CONFIGS if name in cli.configs or name == "baseline"]
    for name in singles:
        run(name, SINGLE_CONFIGS[name])
    summaries = {}
    summaries["baseline"] = summarize(task, runs["baseline"], None, cli.reward_bins)
    for name in singles[1:]:
        summaries[name] = summarize(task, runs[name], summaries["baseline"], cli.reward_bins)

    combination = None
    if "combination" in cli.configs:
        if cli.combination is not None:
            options, parts, reason = cli.combination, [], "given with --combination"
        elif all(name in summaries for names in FAMILIES.values() for name in names):
            options, parts, reason = choose_combination(summaries)
        else:
            options, parts, reason = None, [], "not chosen: needs every single configuration"
        same = (
            next((name for name in singles if SINGLE_CONFIGS[name] == options), None) if options is not None else None
        )
        if options is None:
            pass
        elif same is not None:
            runs["combination"], config_options["combination"] = runs[same], options
            summaries["combination"] = summaries[same]
            reason += f"; equal to `{same}`, whose runs it reuses"
        else:
            run("combination", options)
            summaries["combination"] = summarize(task, runs["combination"], summaries["baseline"], cli.reward_bins)
        combination = {"options": options, "parts": parts, "reason": reason}
        print(f"   combination: {reason}", flush=True)

    base = summaries["baseline"]
    for name, summary in summaries.items():
        summary["options"] = config_options[name]
        summary["ratios_to_baseline"] = ratios(summary, base)
    return {
        "task": task.name,
        "description": task.description,
        "settings": task.settings(),
        "setup_seconds": setup_seconds,
        "starting_accuracy": start_accuracy,
        "combination": combination,
        "summaries": summaries,
        "runs": runs,
    }


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [t for t in results["tasks"].values() if "summaries" in t]
    figure, axes = plt.subplots(len(tasks), 2, figsize=(13, 4.5 * len(tasks)), squeeze=False)
    colors = plt.get_cmap("tab10")
    for row, task in zip(axes, tasks):
        for index, (name, runs) in enumerate(task["runs"].items()):
            color = colors(index % 10)
            style = "-" if name in ("baseline", "combination") else "--"
            width = 2.5 if name in ("baseline", "combination") else 1.2
            budget = task["settings"]["budget"]
            bins = len(task["summaries"][name]["mean_reward_bins"]["reward"])
            ends = [budget * (k + 1) / bins for k in range(bins)]
            per_run = []
            for run in runs:
                values = []
                for k, end in enumerate(ends):
                    lo = 0 if k == 0 else ends[k - 1]
                    steps = [s for s in run["steps"] if lo < s["completions"] <= end and s["reward"] is not None]
                    total = sum(s["generated"] for s in steps)
                    values.append(sum(s["reward"] * s["generated"] for s in steps) / total if total else math.nan)
                per_run.append(values)
            _line_with_band(row[0], ends, per_run, color, style, width, name)
            grid = task["summaries"][name]["mean_accuracy_curve"]["completions"]
            curves = [
                [_interp(x, [p["completions"] for p in r["accuracy_curve"]], [p["accuracy"] for p in r["accuracy_curve"]])
                 for x in grid]
                for r in runs
            ]  # fmt: skip
            _line_with_band(row[1], grid, curves, color, style, width, name)
        row[0].set_title(f"{task['task']}: training reward ({task['settings']['main_reward']})")
        row[1].set_title(f"{task['task']}: held-out accuracy (greedy)")
        threshold = task["summaries"]["baseline"]["accuracy_at_budget"]
        row[1].axhline(threshold, color="gray", linewidth=0.8, linestyle=":")
        for axis in row:
            axis.set_xlabel("completions generated")
            axis.grid(alpha=0.3)
        row[1].legend(fontsize=7, loc="best")
    figure.suptitle(
        f"learning per completion generated: mean over seeds 0-{results['settings']['seeds'] - 1}, band = min-max"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _line_with_band(axis, xs, curves, color, style, width, label):
    import numpy as np

    values = np.array(curves, dtype=float)
    axis.plot(xs, np.nanmean(values, axis=0), style, color=color, linewidth=width, label=label)
    if len(curves) > 1:
        axis.fill_between(xs, np.nanmin(values, axis=0), np.nanmax(values, axis=0), color=color, alpha=0.12)


def print_table(task_result: dict) -> None:
    print(f"\n{task_result['task']}: ratios to the baseline (completions / seconds: < 1 better; accuracy: > 1 better)")
    header = ("configuration", "acc@budget", "Δ points", "compl→acc", "compl→reward", "train s", "s→acc")
    print(f"{header[0]:<26}" + "".join(f"{h:>13}" for h in header[1:]))
    for name, summary in task_result["summaries"].items():
        r = summary["ratios_to_baseline"]
        cells = [f"{summary['accuracy_at_budget']:.3f}", f"{r['accuracy_at_budget_points']:+.1f}"]
        for key in ("completions_to_accuracy", "completions_to_reward", "train_seconds", "train_seconds_to_accuracy"):
            cells.append("-" if r[key] is None else f"{r[key]:.2f}")
        print(f"{name:<26}" + "".join(f"{c:>13}" for c in cells))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes and 1 seed: seconds, for the test")
    parser.add_argument("--tasks", nargs="+", default=["word_problems", "stories_object"])
    parser.add_argument("--configs", nargs="+", default=list(CONFIG_NAMES), choices=CONFIG_NAMES)
    parser.add_argument("--combination", type=json.loads, default=None, help="GRPOConfig options as JSON")
    parser.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1 (default 3; 1 with --smoke)")
    parser.add_argument("--reward-bins", type=int, default=None, help="bins of completions for the reward (12)")
    parser.add_argument("--stories-model", type=Path, default=STORIES260K)
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "results" / "learning.json")
    parser.add_argument("--plot", type=Path, default=None, help="PNG path (default: the JSON's, .png)")
    cli = parser.parse_args(argv)
    cli.seeds = cli.seeds or (1 if cli.smoke else 3)
    cli.reward_bins = cli.reward_bins or (2 if cli.smoke else 12)
    cli.plot = cli.plot or cli.output.with_suffix(".png")
    warnings.filterwarnings("ignore")
    transformers.logging.set_verbosity_error()

    started = time.perf_counter()
    results: dict[str, Any] = {
        "benchmark": "learning per completion generated: trl.GRPOTrainer vs this package's features",
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "settings": {
            "smoke": cli.smoke,
            "seeds": cli.seeds,
            "reward_bins": cli.reward_bins,
            "configs": {name: SINGLE_CONFIGS.get(name, "chosen per task") for name in cli.configs},
            "common": {"beta": 0.0, "lr_scheduler_type": "constant", "bf16": False, "use_cpu": True},
        },
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "trl": trl.__version__,
            "transformers": transformers.__version__,
        },
        "tasks": {},
    }
    for name in cli.tasks:
        if name == "word_problems":
            task = word_problems_task(cli.smoke)
        elif name == "stories_object":
            if not (cli.stories_model / "config.json").is_file():
                reason = f"skipped: the stories260K checkpoint is absent ({cli.stories_model}; it lives in ../shared)"
                print(f"\n== stories_object {reason}", flush=True)
                results["tasks"][name] = {"task": name, "skipped": reason}
                continue
            task = stories_task(cli.smoke, cli.stories_model)
        else:
            parser.error(f"unknown task {name!r}: word_problems, stories_object")
        results["tasks"][name] = run_task(task, cli)
        print_table(results["tasks"][name])
    results["total_seconds"] = time.perf_counter() - started
    cli.output.parent.mkdir(parents=True, exist_ok=True)
    cli.output.write_text(json.dumps(results, indent=1) + "\n")
    if any("summaries" in t for t in results["tasks"].values()):
        plot(results, cli.plot)
    print(f"\nwrote {cli.output} and {cli.plot} ({results['total_seconds'] / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
