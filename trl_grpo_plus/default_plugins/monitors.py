"""Built-in rollout monitors, registered through `register_rollout_monitors` like any plugin's.

All share one signature::

    monitor(batch: RolloutBatch, state: dict, **options) -> MonitorResult

Each reads only the batch (token ids, lengths, rewards, groups): no model forward pass, linear in the batch's tokens.
Its state holds JSON values, so it survives a checkpoint resume. Options are keyword-only parameters, set with
`GRPOConfig.monitor_kwargs`; each monitor's docstring states its rule.
"""

from __future__ import annotations

import json
import math
import os
import statistics
from collections import Counter
from collections.abc import Sequence

import torch

from ..hookspecs import hookimpl
from ..rollout_monitoring import Alert, MonitorResult, RolloutBatch

EXAMPLES = 8  # rows named as examples behind an alert


def _ngrams(ids: Sequence[int], n: int) -> list[tuple[int, ...]]:
    return [tuple(ids[i : i + n]) for i in range(len(ids) - n + 1)]


def _mean(values: Sequence[float]) -> float:
    return statistics.fmean(values) if values else math.nan


def _push(window: list, value, size: int) -> None:
    window.append(value)
    del window[: max(len(window) - size, 0)]


# --- length_drift ------------------------------------------------------------------------------------------------


def length_drift(
    batch: RolloutBatch,
    state: dict,
    *,
    factor: float = 1.5,
    baseline_batches: int = 5,
    window: int = 5,
    direction: str = "both",
) -> MonitorResult:
    """Completion length moving away from its early-run level by more than `factor`, either way.

    Rule: the early-run level is the mean completion length (tokens) over the first `baseline_batches` batches; the
    current level is the mean over the last `window` batches. Alert `shrank` when current < early / `factor`, `grew`
    when current > early x `factor` (`direction`: "both", "shrink" or "grow"). Examples: the shortest (or longest)
    completions of the batch. A model that drops its working to please an answer-only reward shrinks; one that pads or
    loops grows.
    """
    lengths = batch.completion_lengths.float()
    if len(lengths) == 0:  # nothing generated: nothing to measure
        return MonitorResult({})
    mean = lengths.mean().item()
    early, recent = state.setdefault("early", []), state.setdefault("recent", [])
    if len(early) < baseline_batches:
        early.append(mean)
    _push(recent, mean, window)
    metrics = {"mean_length": mean}
    if len(early) < baseline_batches or len(recent) < window:
        return MonitorResult(metrics)
    level, current = _mean(early), _mean(recent)
    metrics["early_length"] = level
    if level > 0:
        metrics["ratio"] = current / level
    alerts = []
    if direction in ("both", "shrink") and current * factor < level:
        rows = torch.argsort(lengths, stable=True)[:EXAMPLES].tolist()
        alerts.append(
            Alert(
                "shrank",
                f"mean completion length {current:.1f} tokens over the last {window} batches, "
                f"{f'{level / current:.2f}x' if current > 0 else 'down to 0,'} below its early-run level of {level:.1f} (first {baseline_batches} batches; limit {factor}x)",
                tuple(rows),
            )
        )
    if direction in ("both", "grow") and current > level * factor:
        rows = torch.argsort(lengths, descending=True, stable=True)[:EXAMPLES].tolist()
        alerts.append(
            Alert(
                "grew",
                f"mean completion length {current:.1f} tokens over the last {window} batches, "
                f"{f'{current / level:.2f}x' if level > 0 else 'up from 0,'} its early-run level of {level:.1f} (first {baseline_batches} batches; limit {factor}x)",
                tuple(rows),
            )
        )
    return MonitorResult(metrics, alerts)


def _counts(**counts):
    # Window sizes and n-gram lengths count batches or tokens: whole numbers, or a window is never full
    for name, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be a whole number, got {value!r}")  # noqa: TRY004 (an option error)


def _validate_length_drift(factor=1.5, baseline_batches=1, window=1, direction="both"):
    _counts(baseline_batches=baseline_batches, window=window)
    if not factor > 1:
        raise ValueError(f"factor must be > 1 (a ratio of lengths), got {factor!r}")
    if baseline_batches < 1 or window < 1:
        raise ValueError(f"baseline_batches and window must be >= 1, got {baseline_batches!r} and {window!r}")
    if direction not in ("both", "shrink", "grow"):
        raise ValueError(f"direction must be 'both', 'shrink' or 'grow', got {direction!r}")


length_drift.validate_options = _validate_length_drift


# --- diversity ---------------------------------------------------------------------------------------------------


def diversity(
    batch: RolloutBatch,
    state: dict,
    *,
    identical_share: float = 1.0,
    max_collapsed_share: float = 0.5,
    window: int = 5,
    n: int = 2,
) -> MonitorResult:
    """Groups whose completions are (near-)identical: GRPO learns nothing from a group that all says one thing.

    Rule: a group is collapsed when one completion (the same token ids) makes up at least `identical_share` of it
    (1.0: all identical). Alert `collapsed` when the share of collapsed groups, averaged over the last `window`
    batches, exceeds `max_collapsed_share`. Also logged: `distinct_n`, the mean over groups of distinct n-grams /
    n-grams within the group (1.0: no n-gram repeats across the group's completions). Examples: one collapsed group.
    """
    groups = [rows for rows in batch.groups() if len(rows) > 1]
    collapsed, distinct = [], []
    for rows in groups:
        sequences = [tuple(batch.completion_ids[row]) for row in rows]
        if Counter(sequences).most_common(1)[0][1] >= identical_share * len(rows):
            collapsed.append(rows)
        grams = [gram for sequence in sequences for gram in _ngrams(sequence, n)]
        if grams:
            distinct.append(len(set(grams)) / len(grams))
    share = len(collapsed) / len(groups) if groups else 0.0
    recent = state.setdefault("recent", [])
    _push(recent, share, window)
    metrics = {"collapsed_share": share}
    if distinct:
        metrics["distinct_n"] = _mean(distinct)
    alerts = []
    level = _mean(recent)
    if len(recent) == window and level > max_collapsed_share:
        alerts.append(
            Alert(
                "collapsed",
                f"{level:.0%} of groups over the last {window} batches are collapsed (one completion is at least "
                f"{identical_share:.0%} of the group; limit {max_collapsed_share:.0%}): their advantages are zero",
                tuple(collapsed[0][:EXAMPLES]),
            )
        )
    return MonitorResult(metrics, alerts)


def _validate_diversity(identical_share=1.0, max_collapsed_share=0.5, window=1, n=2):
    _counts(window=window, n=n)
    if not 0 < identical_share <= 1 or not 0 <= max_collapsed_share < 1:
        raise ValueError(
            f"identical_share must be in (0, 1] and max_collapsed_share in [0, 1), got {identical_share!r} and "
            f"{max_collapsed_share!r}"
        )
    if window < 1 or n < 1:
        raise ValueError(f"window and n must be >= 1, got {window!r} and {n!r}")


diversity.validate_options = _validate_diversity


# --- repetition --------------------------------------------------------------------------------------------------


def repetition(
    batch: RolloutBatch,
    state: dict,
    *,
    n: int = 3,
    max_repeated_share: float = 0.5,
    max_repetitive_completions: float = 0.1,
    window: int = 3,
) -> MonitorResult:
    """n-gram repetition within completions: loops and stutters.

    Rule: a completion's repeated share is 1 - distinct n-grams / n-grams (0 when it has fewer than two n-grams); it
    is repetitive above `max_repeated_share`. Alert `looping` when the share of repetitive completions, averaged over
    the last `window` batches, exceeds `max_repetitive_completions`. Examples: the most repetitive completions.
    """
    shares = []
    for ids in batch.completion_ids:
        grams = _ngrams(ids, n)
        shares.append(1 - len(set(grams)) / len(grams) if len(grams) > 1 else 0.0)
    repeated = torch.tensor(shares)
    repetitive = (repeated > max_repeated_share).float().mean().item() if shares else 0.0
    recent = state.setdefault("recent", [])
    _push(recent, repetitive, window)
    metrics = {"repeated_share": repeated.mean().item() if shares else 0.0, "repetitive_share": repetitive}
    alerts = []
    level = _mean(recent)
    if len(recent) == window and level > max_repetitive_completions:
        rows = torch.argsort(repeated, descending=True, stable=True)[:EXAMPLES].tolist()
        alerts.append(
            Alert(
                "looping",
                f"{level:.0%} of completions over the last {window} batches repeat more than "
                f"{max_repeated_share:.0%} of their {n}-grams (limit {max_repetitive_completions:.0%} of completions)",
                tuple(rows),
            )
        )
    return MonitorResult(metrics, alerts)


def _validate_repetition(n=3, max_repeated_share=0.5, max_repetitive_completions=0.1, window=1):
    _counts(window=window, n=n)
    if n < 1 or window < 1:
        raise ValueError(f"n and window must be >= 1, got {n!r} and {window!r}")
    if not 0 <= max_repeated_share < 1 or not 0 <= max_repetitive_completions < 1:
        raise ValueError("max_repeated_share and max_repetitive_completions must be shares in [0, 1)")


repetition.validate_options = _validate_repetition


# --- reward_divergence -------------------------------------------------------------------------------------------


def reward_divergence(
    batch: RolloutBatch,
    state: dict,
    *,
    window: int = 20,
    min_rise: float = 0.05,
    audit_tolerance: float = 0.0,
    trained: str | None = None,
    audit: list[str] | None = None,
) -> MonitorResult:
    """The trained reward rising while an audit reward falls or stays flat: the model pleases the reward, not the
    verifier.

    Rule: over the last `window` batches, the rise of a reward is the mean of its batch means in the newer half minus
    the mean in the older half. Alert `diverged` when the trained reward (the weighted trained total the estimator
    sees, or the trained reward named `trained`) rose by at least `min_rise` while an audit reward (each of `audit`,
    default every audit reward) rose by at most `audit_tolerance` (0: it fell or stayed flat). Rises are in reward
    units; the defaults suit rewards in [0, 1]. Examples: the completions the trained reward likes most and the
    audit reward least. Needs at least one audit reward (`GRPOConfig.audit_rewards`).
    """
    values = batch.rewards[trained] if trained is not None else batch.total_reward()
    history = state.setdefault("trained", [])
    _push(history, _finite_mean(values), window)
    audits = state.setdefault("audit", {})
    names = list(audit) if audit is not None else list(batch.audit_rewards)
    for name in names:
        _push(audits.setdefault(name, []), _finite_mean(batch.rewards[name]), window)
    metrics = {}
    if len(history) < window:
        return MonitorResult(metrics)
    rise = _rise(history)
    if rise is not None:
        metrics["trained_rise"] = rise
    alerts = []
    for name in names:
        change = _rise(audits[name])
        if change is None:
            continue
        metrics[f"{name}_rise"] = change
        if rise is not None and rise >= min_rise and change <= audit_tolerance:
            gap = torch.nan_to_num(values, nan=-math.inf) - torch.nan_to_num(batch.rewards[name], nan=math.inf)
            rows = torch.argsort(gap, descending=True, stable=True)[:EXAMPLES].tolist()
            alerts.append(
                Alert(
                    "diverged",
                    f"over the last {window} batches the trained reward{f' {trained!r}' if trained else ''} rose "
                    f"{rise:+.3f} while audit reward '{name}' changed {change:+.3f}: the model pleases the reward, "
                    f"not the verifier",
                    tuple(rows),
                )
            )
    return MonitorResult(metrics, alerts)


def _finite_mean(values: torch.Tensor) -> float | None:
    mean = torch.nanmean(values.float()).item()
    return mean if math.isfinite(mean) else None


def _rise(history: list) -> float | None:
    half = len(history) // 2
    older = [v for v in history[:half] if v is not None]
    newer = [v for v in history[len(history) - half :] if v is not None]
    if not older or not newer:
        return None
    return _mean(newer) - _mean(older)


def _validate_reward_divergence(window=20, min_rise=0.05, audit_tolerance=0.0, trained=None, audit=None):
    _counts(window=window)
    if audit is not None and (isinstance(audit, str) or not all(isinstance(name, str) for name in audit)):
        raise ValueError(f"audit must be a list of audit reward names, e.g. [{audit!r}]; got {audit!r}")
    if window < 2:
        raise ValueError(f"window must be >= 2 batches (an older and a newer half), got {window!r}")
    if not min_rise > 0:
        raise ValueError(f"min_rise must be > 0, got {min_rise!r}")


def _check_divergence_run(trained_rewards, audit_rewards, trained=None, audit=None, **options):
    if not audit_rewards:
        raise ValueError(
            "it compares the trained reward with audit rewards, and this run has none. Name one in "
            "GRPOConfig.audit_rewards (a reward scored and logged, never trained on), or drop reward_divergence."
        )
    if trained is not None and trained not in trained_rewards:
        raise ValueError(f"option trained={trained!r} is not a trained reward ({', '.join(trained_rewards)})")
    unknown = sorted(set(audit or ()) - set(audit_rewards))
    if unknown:
        raise ValueError(
            f"option audit names {', '.join(map(repr, unknown))}, not audit rewards ({', '.join(audit_rewards)})"
        )


reward_divergence.validate_options = _validate_reward_divergence
reward_divergence.check_run = _check_divergence_run


# --- flagged_samples ---------------------------------------------------------------------------------------------


def flagged_samples(
    batch: RolloutBatch,
    state: dict,
    *,
    path: str | None = None,
    max_samples: int = 8,
    max_alerts_per_kind: int = 20,
) -> MonitorResult:
    """Writes the completions behind each alert of the other monitors to `<output_dir>/monitor_samples.jsonl`.

    Rule: one JSON line per alert (step, monitor, kind, message, and up to `max_samples` of its completions with
    prompt, length, group, every reward, advantage and whether it trained), for the first `max_alerts_per_kind`
    alerts of each monitor and kind; `path` overrides the file. Written by the main process; raises no alert itself.
    """
    written = state.setdefault("written", {})
    target = path or os.path.join(batch.output_dir or ".", "monitor_samples.jsonl")
    lines = []
    for alert in batch.alerts:
        key = f"{alert.monitor}/{alert.kind}"
        if written.get(key, 0) >= max_alerts_per_kind:
            continue
        written[key] = written.get(key, 0) + 1
        record = {"step": alert.step, "monitor": alert.monitor, "kind": alert.kind, "message": alert.message}
        lines.append(json.dumps({**record, "samples": list(alert.examples[:max_samples])}))
    if lines and batch.is_main_process:
        os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
        with open(target, "a") as file:
            file.write("\n".join(lines) + "\n")
    return MonitorResult({"written": float(len(lines))})


flagged_samples.reads_alerts = True


def _validate_flagged_samples(path=None, max_samples=8, max_alerts_per_kind=20):
    if max_samples < 1 or max_alerts_per_kind < 1:
        raise ValueError(
            f"max_samples and max_alerts_per_kind must be >= 1, got {max_samples!r}, {max_alerts_per_kind!r}"
        )


flagged_samples.validate_options = _validate_flagged_samples


@hookimpl
def register_rollout_monitors(register):
    register(length_drift)
    register(diversity)
    register(repetition)
    register(reward_divergence)
    register(flagged_samples)
