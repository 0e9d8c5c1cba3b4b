"""Benchmark: group-size schedules at the same completion budget, on prompts solved always, never or sometimes.

The policy is simulated so the comparison is about allocation alone and runs in seconds on a CPU: each prompt i is a
Bernoulli "solve" with probability sigmoid(theta_i), and a GRPO step moves theta_i along the policy gradient
sum_j A_j (y_j - p_i) with the advantages A of the real `grpo` estimator. Batches are planned by the real planner and
schedules (`trl_grpo_plus.group_size_planning`, the built-in `schedules` plugin), exactly as in the trainer. A third of the
prompts are always solved (theta 5), a third never (theta -7), a third sometimes (theta uniform in [-3, 1]).

Reported per schedule, averaged over seeds, with ratios to `constant` from the same run:
- share of generated groups with non-zero variance (groups that carry a gradient), how many such groups a batch
  holds, and the share of completions that sit in them (the part of the budget that produces a gradient);
- expected pass rate over all prompts after the full budget of completions;
- completions needed until the expected pass rate first reaches the target.

    python benchmarks/group_sizes.py                 # -> benchmarks/results/group_sizes.json
    python benchmarks/group_sizes.py --steps 100 --seeds 2   # quicker
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
from pathlib import Path

import torch

from trl_grpo_plus.advantage_estimation import AdvantageEstimator
from trl_grpo_plus.group_size_planning import GroupSizeSchedule
from trl_grpo_plus.ragged_groups import group_spread
from trl_grpo_plus.group_size_planning import GroupSizePlanner
from trl_grpo_plus.plugin_manager import build_plugin_manager
from trl_grpo_plus.registry import get_registry

SCHEDULES = ("constant", "per_prompt_adaptive", "adaptive_zero_variance")


def initial_logits(num_prompts: int, generator: torch.Generator) -> torch.Tensor:
    kind = torch.arange(num_prompts) % 3
    sometimes = torch.rand(num_prompts, generator=generator) * 4 - 3
    return torch.where(kind == 0, torch.tensor(5.0), torch.where(kind == 1, torch.tensor(-7.0), sometimes))


def run(schedule_name: str, seed: int, cli: argparse.Namespace) -> dict:
    registry = get_registry(build_plugin_manager(load_entrypoints=False))
    estimator = AdvantageEstimator.resolve("grpo", registry.advantage_estimators)
    generator = torch.Generator().manual_seed(seed)
    logits = initial_logits(cli.prompts, generator)
    planner = GroupSizePlanner(
        GroupSizeSchedule.resolve(schedule_name, registry.group_size_schedules),
        [{"prompt": str(i)} for i in range(cli.prompts)],
        completions=cli.budget,
        num_prompts=None,
        num_generations=cli.num_generations,
        num_processes=1,
        seed=seed,
    )
    groups = live_groups = live_completions = 0
    curve = []  # expected pass rate over all prompts after each step
    for step in range(cli.steps):
        plan = planner.plan(step)
        rows = torch.tensor(plan.rows)
        probabilities = torch.sigmoid(logits[rows])
        rewards = (torch.rand(len(rows), generator=generator) < probabilities).float()
        advantages = estimator(rewards[:, None], torch.ones(1), plan.group_ids)
        # policy gradient of sum_j A_j log p(y_j) for a Bernoulli policy, token-mean over the batch
        gradient = torch.zeros_like(logits).index_add_(0, rows, advantages * (rewards - probabilities))
        logits += cli.learning_rate * gradient / len(rows)
        planner.record(plan, rewards)
        live = group_spread(rewards, plan.group_ids) > 0  # per completion: its group's rewards differ
        groups += len(plan.sizes)
        live_groups += int(live[torch.tensor(plan.sizes).cumsum(0) - 1].sum())  # one row per group: its last
        live_completions += int(live.sum())
        curve.append(torch.sigmoid(logits).mean().item())
    reached = next((step for step, rate in enumerate(curve) if rate >= cli.target), None)
    return {
        "non_zero_variance_share": live_groups / groups,
        "non_zero_variance_groups_per_batch": live_groups / cli.steps,
        "completions_in_non_zero_variance_groups": live_completions / (cli.steps * cli.budget),
        "final_pass_rate": curve[-1],
        "completions_to_target": None if reached is None else (reached + 1) * cli.budget,
        "mean_group_size": cli.budget * cli.steps / groups,
    }


def summarize(runs: list[dict]) -> dict:
    reached = [r["completions_to_target"] for r in runs if r["completions_to_target"] is not None]
    return {
        **{
            key: statistics.mean(r[key] for r in runs)
            for key in (
                "non_zero_variance_share",
                "non_zero_variance_groups_per_batch",
                "completions_in_non_zero_variance_groups",
            )
        },
        "final_pass_rate": statistics.mean(r["final_pass_rate"] for r in runs),
        "completions_to_target": statistics.mean(reached) if len(reached) == len(runs) else None,
        "runs_reaching_target": len(reached),
        "mean_group_size": statistics.mean(r["mean_group_size"] for r in runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=240)
    parser.add_argument("--budget", type=int, default=64, help="completions per generation batch")
    parser.add_argument("--num-generations", type=int, default=8)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--learning-rate", type=float, default=20.0)
    parser.add_argument("--target", type=float, default=0.6, help="expected pass rate over all prompts")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "results" / "group_sizes.json")
    cli = parser.parse_args()

    results = {name: summarize([run(name, seed, cli) for seed in range(cli.seeds)]) for name in SCHEDULES}
    base = results["constant"]
    ratios = {}
    for name in SCHEDULES[1:]:
        ours = results[name]
        ratios[name] = {
            key: ours[key] / base[key]
            for key in (
                "non_zero_variance_share",
                "non_zero_variance_groups_per_batch",
                "completions_in_non_zero_variance_groups",
                "final_pass_rate",
            )
        } | {
            "completions_to_target": (
                ours["completions_to_target"] / base["completions_to_target"]
                if ours["completions_to_target"] and base["completions_to_target"]
                else None
            ),
        }
    report = {
        "setup": {**vars(cli), "output": str(cli.output), "completions": cli.budget * cli.steps},
        "machine": {"python": platform.python_version(), "torch": torch.__version__, "cpu": platform.processor()},
        "results": results,
        "ratios_vs_constant": ratios,
    }
    cli.output.parent.mkdir(parents=True, exist_ok=True)
    cli.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{cli.steps} batches x {cli.budget} completions, {cli.seeds} seeds, target pass rate {cli.target}")
    header = ("schedule", "mixed groups", "mixed/batch", "budget in mixed", "final pass", "to target")
    print(f"{header[0]:<24}" + "".join(f"{h:>16}" for h in header[1:]))
    for name, r in results.items():
        to_target = f"{r['completions_to_target']:.0f}" if r["completions_to_target"] else "not reached"
        values = (r["non_zero_variance_share"], r["non_zero_variance_groups_per_batch"])
        values += (r["completions_in_non_zero_variance_groups"], r["final_pass_rate"])
        print(f"{name:<24}" + "".join(f"{v:>16.3f}" for v in values) + f"{to_target:>16}")
    for name, ratio in ratios.items():
        print(f"{name} / constant: " + ", ".join(f"{k} {v:.2f}" if v else f"{k} n/a" for k, v in ratio.items()))
    print(f"wrote {cli.output}")


if __name__ == "__main__":
    main()
