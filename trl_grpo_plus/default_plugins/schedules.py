"""Built-in group-size schedules, registered through `register_group_size_schedules` like any plugin's.

All share one signature::

    schedule(request: GroupSizeRequest, **options) -> list[int]

The result sizes the first prompts of `request.prompts`: with a fixed budget the sizes sum to `request.completions`,
with a fixed number of prompts there is one size per prompt. Options are keyword-only parameters, set with
`GRPOConfig.group_size_kwargs`; a `ValueError` raised while sizing names the schedule in the error the user sees.
"""

from __future__ import annotations

import bisect
import heapq
import math

from ..hookspecs import hookimpl
from ..schedule_requests import MIN_GROUP_SIZE, GroupSizeRequest


def constant(request: GroupSizeRequest, *, size: int | None = None) -> list[int]:
    """The same group size at every step: `size`, default `num_generations` (TRL's behaviour)."""
    return request.uniform(request.num_generations if size is None else size)


def linear(request: GroupSizeRequest, *, start: int, end: int, steps: int) -> list[int]:
    """From `start` at step 0 to `end` at step `steps` in a straight line (rounded), then held at `end`."""
    progress = min(request.step, steps) / steps
    return request.uniform(_rounded(start + (end - start) * progress))


def cosine(request: GroupSizeRequest, *, start: int, end: int, steps: int) -> list[int]:
    """From `start` at step 0 to `end` at step `steps` along half a cosine (rounded), then held at `end`."""
    progress = min(request.step, steps) / steps
    return request.uniform(_rounded(end + (start - end) * (1 + math.cos(math.pi * progress)) / 2))


def step(request: GroupSizeRequest, *, milestones: list[int], sizes: list[int]) -> list[int]:
    """Piecewise constant: `sizes[0]` before `milestones[0]`, `sizes[i]` from `milestones[i-1]` on."""
    return request.uniform(sizes[bisect.bisect_right(milestones, request.step)])


def adaptive_zero_variance(
    request: GroupSizeRequest,
    *,
    min_size: int = MIN_GROUP_SIZE,
    max_size: int | None = None,
    raise_above: float = 0.5,
    lower_below: float = 0.2,
    change: int = 1,
) -> list[int]:
    """Starts at `num_generations`; after each batch whose share of zero-variance groups is above `raise_above`
    the size grows by `change` (more samples make a mixed outcome likelier), below `lower_below` it shrinks by
    `change` (signal is cheap, so spend the budget on more prompts); always within [`min_size`, `max_size`].

    `max_size` defaults to 4 x `num_generations`, and never exceeds what the budget holds.
    """
    high = _max_size(request, max_size)
    state = request.history.state.setdefault("adaptive_zero_variance", {})
    size = state.get("size", request.num_generations)
    if request.history.batches and state.get("batches_seen") != len(request.history.batches):
        share = request.history.batches[-1].zero_variance_share
        if share > raise_above:
            size += change
        elif share < lower_below:
            size -= change
    size = max(min_size, min(high, size))
    state.update(size=size, batches_seen=len(request.history.batches))
    return request.uniform(size)


def per_prompt_adaptive(
    request: GroupSizeRequest,
    *,
    min_size: int = MIN_GROUP_SIZE,
    max_size: int | None = None,
    pass_threshold: float = 0.5,
    prior: float = 1.0,
    min_signal: float = 0.5,
) -> list[int]:
    """Per-prompt allocation at a fixed total, after Knapsack-RL (arXiv:2509.25849): spend the budget where a group
    is likely to carry signal.

    A prompt with pass rate p sampled n times has a mixed (non-zero-variance) outcome with probability
    1 - p^n - (1 - p)^n. p is the share of the prompt's recorded completions with total reward >= `pass_threshold`,
    smoothed by `prior` pseudo-counts toward 1/2 (an unseen prompt counts as 1/2).

    1. Prompts are taken in order. One whose chance of a mixed outcome at `num_generations` samples is below
       `min_signal` (it is nearly always or never solved) is *settled* and costs `min_size`; any other costs
       `num_generations`. Prompts are taken while their costs fit the budget, so the completions that settled
       prompts don't need go to more prompts (with a fixed number of prompts, that number is kept).
    2. The budget is then split among the taken prompts to maximize the expected number of mixed groups: each
       completion in turn goes to the prompt whose chance it raises most (optimal, as that chance is concave in n),
       between `min_size` and `max_size` (default: no cap).

    With no history every prompt is unsettled and gets `num_generations`, as `constant`.
    """
    history = request.history.prompts
    rates = [history[i].pass_rate(pass_threshold, prior) if i in history else 0.5 for i in request.prompts]
    generations = request.num_generations
    if request.num_prompts is not None:
        count, total = request.num_prompts, request.num_prompts * generations
    else:
        total, count, cost = request.completions, 0, 0
        for rate in rates:
            need = generations if _mixed(rate, generations) >= min_signal else min_size
            if cost + need > total:
                break
            cost, count = cost + need, count + 1
        count = max(count, 1)
    if count * min_size > total:
        raise ValueError(f"{count} prompts at min_size {min_size} need {count * min_size} completions, > {total}")
    high = total if max_size is None else max_size
    if count * high < total:
        raise ValueError(f"{count} prompts at max_size {high} hold only {count * high} of {total} completions")
    sizes = [min_size] * count
    heap = [(-_gain(rate, min_size), g) for g, rate in enumerate(rates[:count])]  # ties go to the earlier prompt
    heapq.heapify(heap)
    for _ in range(total - count * min_size):
        _, g = heapq.heappop(heap)
        sizes[g] += 1
        if sizes[g] < high:
            heapq.heappush(heap, (-_gain(rates[g], sizes[g]), g))
    return sizes


def _mixed(rate: float, size: int) -> float:
    return 1 - rate**size - (1 - rate) ** size


def _gain(rate: float, size: int) -> float:
    # P(mixed outcome | size + 1) - P(mixed outcome | size)
    return rate**size * (1 - rate) + (1 - rate) ** size * rate


def _rounded(value: float) -> int:
    return math.floor(value + 0.5)  # half up, unlike round()'s half-to-even


def _max_size(request: GroupSizeRequest, max_size: int | None) -> int:
    high = 4 * request.num_generations if max_size is None else max_size
    return high if request.completions is None else min(high, request.completions)


# --- option checks, run once before any model loads -----------------------------------------------------------------


def _check_size(name: str, value) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < MIN_GROUP_SIZE:
        raise ValueError(f"{name} must be an integer group size >= {MIN_GROUP_SIZE}, got {value!r}")


def _check_ramp(*, start, end, steps) -> None:
    _check_size("start", start)
    _check_size("end", end)
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1 (the step at which `end` is reached), got {steps!r}")


def _check_constant(*, size=None) -> None:
    if size is not None:
        _check_size("size", size)


def _check_step(*, milestones, sizes) -> None:
    if not isinstance(milestones, list) or not all(isinstance(m, int) and m >= 0 for m in milestones):
        raise ValueError(f"milestones must be a list of step numbers (integers >= 0), got {milestones!r}")
    if milestones != sorted(set(milestones)):
        raise ValueError(f"milestones must be strictly increasing, got {milestones!r}")
    if not isinstance(sizes, list) or len(sizes) != len(milestones) + 1:
        raise ValueError(
            f"sizes must list one group size more than milestones (the size before the first milestone, then one "
            f"per milestone): {len(milestones) + 1} sizes for {len(milestones)} milestones, got {sizes!r}"
        )
    for size in sizes:
        _check_size("each of sizes", size)


def _check_bounds(min_size, max_size) -> None:
    _check_size("min_size", min_size)
    if max_size is not None:
        _check_size("max_size", max_size)
        if max_size < min_size:
            raise ValueError(f"max_size ({max_size}) must be >= min_size ({min_size})")


def _check_adaptive_zero_variance(
    *, min_size=MIN_GROUP_SIZE, max_size=None, raise_above=0.5, lower_below=0.2, change=1
) -> None:
    _check_bounds(min_size, max_size)
    if not (0 <= lower_below <= raise_above <= 1):
        raise ValueError(
            f"need 0 <= lower_below <= raise_above <= 1 (shares of zero-variance groups), got lower_below="
            f"{lower_below!r}, raise_above={raise_above!r}"
        )
    if not isinstance(change, int) or change < 1:
        raise ValueError(f"change must be an integer >= 1 (group size change per batch), got {change!r}")


def _check_per_prompt_adaptive(
    *, min_size=MIN_GROUP_SIZE, max_size=None, pass_threshold=0.5, prior=1.0, min_signal=0.5
) -> None:
    _check_bounds(min_size, max_size)
    if not isinstance(min_signal, (int, float)) or not 0 <= min_signal <= 1:
        raise ValueError(f"min_signal must be a probability in [0, 1], got {min_signal!r}")
    if not isinstance(pass_threshold, (int, float)):
        raise ValueError(
            f"pass_threshold must be a number (the total reward that counts as a pass), got {pass_threshold!r}"
        )
    if not isinstance(prior, (int, float)) or prior <= 0:
        raise ValueError(f"prior must be a number > 0 (pseudo-counts toward a 1/2 pass rate), got {prior!r}")


constant.validate_options = _check_constant
# Says the size is always the same, so at num_generations the trainer leaves the data layout to TRL's sampler.
constant.fixed_size = lambda num_generations, size=None: num_generations if size is None else size
linear.validate_options = _check_ramp
cosine.validate_options = _check_ramp
step.validate_options = _check_step
adaptive_zero_variance.validate_options = _check_adaptive_zero_variance
per_prompt_adaptive.validate_options = _check_per_prompt_adaptive


@hookimpl
def register_group_size_schedules(register):
    for schedule in (constant, linear, cosine, step, adaptive_zero_variance, per_prompt_adaptive):
        register(schedule)
