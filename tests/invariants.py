"""What must hold between what a run scored and what its loss trained, checked on `TrainingRecorder` records.

For every generation batch, over all processes:

- every row the loss received is a completion the reward functions scored, with its own prompt;
- its advantage is the configured estimator's value for that completion's reward, within its (possibly ragged)
  group, over the batch the estimator saw: the whole generation batch, or under zero-variance filtering the kept
  groups (chosen here from the scored rewards: groups with spread, in order, while they fit);
- the rows trained, over all processes and micro-batches, are exactly that batch (each `num_iterations` times),
  less at most `num_processes - 1` trailing rows filtering drops so that every process gets an equal share.

The estimators are re-implemented here in plain Python from their papers' formulas, independently of the product.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter

EPS = 1e-4


def _grpo(group):
    if len(group) < 2:
        return [0.0] * len(group)
    mean, std = statistics.fmean(group), statistics.stdev(group)
    return [(r - mean) / (std + EPS) for r in group]


def _dr_grpo(group):
    mean = statistics.fmean(group)
    return [r - mean for r in group]


def _rloo(group):
    if len(group) < 2:
        return [0.0] * len(group)
    total = sum(group)
    return [r - (total - r) / (len(group) - 1) for r in group]


def _rank(group):
    if len(group) < 2:
        return [0.0] * len(group)
    ranks = [sum(o < r for o in group) + (sum(o == r for o in group) - 1) / 2 for r in group]
    return [2 * rank / (len(group) - 1) - 1 for rank in ranks]


def _batch_normalized(values):
    mean, std = statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0
    return [(v - mean) / (std + EPS) for v in values]


def _per_group(func):
    def estimator(groups):
        return [a for group in groups for a in func(group)]

    return estimator


def _batch_std(groups):
    std = statistics.stdev([r for group in groups for r in group])
    return [a / (std + EPS) for a in _per_group(_dr_grpo)(groups)]


REFERENCE_ESTIMATORS = {
    "grpo": _per_group(_grpo),
    "dr_grpo": _per_group(_dr_grpo),
    "rloo": _per_group(_rloo),
    "rank": _per_group(_rank),
    "batch_std": _batch_std,
    "reinforce_pp": lambda groups: _batch_normalized(_per_group(_dr_grpo)(groups)),
    # one reward function: normalized in its group, then over the batch
    "gdpo": lambda groups: _batch_normalized(_per_group(_grpo)(groups)),
}


def scored_groups(rounds_per_rank: list[list[list[dict]]], sizes: list[int] | None = None) -> list[list[dict]]:
    """The groups of one generation batch, in order: each scoring round's rows in global order (rank 0's first),
    cut into runs of one prompt (a group may span processes), or into the planned `sizes` of a schedule's batch,
    whose adjacent groups may share a prompt."""
    groups = []
    for round_index in range(len(rounds_per_rank[0])):
        rows = [{**row, "round": round_index} for rounds in rounds_per_rank for row in rounds[round_index]]
        if sizes is not None and round_index == 0:
            assert sum(sizes) == len(rows), f"planned {sum(sizes)} completions, scored {len(rows)}"
            starts = [sum(sizes[:g]) for g in range(len(sizes))]
            planned = [rows[start : start + size] for start, size in zip(starts, sizes, strict=True)]
            assert all(len({row["prompt"] for row in group}) == 1 for group in planned), "a group mixes prompts"
            groups += planned
            continue
        for row in rows:
            if groups and groups[-1][0]["prompt"] == row["prompt"] and groups[-1][0]["round"] == round_index:
                groups[-1].append(row)
            else:
                groups.append([row])
    return groups


def kept_groups(groups: list[list[dict]], target_rows: int, tolerance: float = 1e-6) -> list[list[dict]]:
    """Zero-variance filtering as specified: whole groups whose rewards spread, in order, while they fit."""
    kept, size = [], 0
    for group in groups:
        rewards = [row["reward"] for row in group if not math.isnan(row["reward"])]
        if len(rewards) >= 2 and max(rewards) - min(rewards) > tolerance and size + len(group) <= target_rows:
            kept.append(group)
            size += len(group)
    return kept


def _key(row) -> tuple:
    return row["prompt"], tuple(row["completion_ids"])


def check_trained_on_scored(
    records: list[dict],
    estimator: str = "grpo",
    *,
    filtered: bool = False,
    num_iterations: int = 1,
    atol: float = 1e-4,
) -> int:
    """Assert the invariants above on one run's records (one per process, as `TrainingRecorder.generations` in a
    dict under "generations"); `filtered` when zero-variance filtering is on: the batch is then full when its kept
    groups hold as many completions as its first round.
    Returns the number of loss rows checked, so a caller can tell the check was not vacuous."""
    num_processes = len(records)
    generations = [record["generations"] for record in records]
    assert len({len(g) for g in generations}) == 1, "processes saw different numbers of generation batches"
    checked = 0
    for index in range(len(generations[0])):
        per_rank = [g[index] for g in generations]
        groups = scored_groups([generation["rounds"] for generation in per_rank], per_rank[0].get("group_sizes"))
        assert groups, f"generation {index}: nothing was scored"
        if not filtered:
            assert all(len(g["rounds"]) == 1 for g in per_rank), "an unfiltered batch is scored once"
            batch = groups
        else:
            batch = kept_groups(groups, sum(len(g["rounds"][0]) for g in per_rank))
        rewards = [[row["reward"] for row in group] for group in batch]
        expected_rows = [row for group in batch for row in group]
        advantages = REFERENCE_ESTIMATORS[estimator](rewards) if rewards else []
        expected = {}
        for row, advantage in zip(expected_rows, advantages, strict=True):
            expected.setdefault(_key(row), set()).add(round(advantage, 6))

        trained = [row for generation in per_rank for loss in generation["losses"] for row in loss]
        for row in trained:
            key = _key(row)
            assert key in expected, (
                f"generation {index}: the loss trained a completion no reward scored in the batch: {key}"
            )
            assert any(abs(row["advantage"] - a) <= atol for a in expected[key]), (
                f"generation {index}: completion {key} trained with advantage {row['advantage']}, but its reward "
                f"gives {sorted(expected[key])} under {estimator}"
            )
        checked += len(trained)

        # Exactly the batch, each row num_iterations times, less the trailing rows an equal share drops.
        used = len(expected_rows) - (len(expected_rows) % num_processes if filtered else 0)
        want = Counter(
            {key: count * num_iterations for key, count in Counter(map(_key, expected_rows[:used])).items()}
        )
        assert Counter(map(_key, trained)) == want, f"generation {index}: the rows trained are not the scored batch"
        # Every process trains an equal share.
        per_process = [sum(len(loss) for loss in generation["losses"]) for generation in per_rank]
        assert len(set(per_process)) == 1, f"generation {index}: unequal shares per process {per_process}"
    return checked
