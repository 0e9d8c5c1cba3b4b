"""A generation batch's rows split across processes and micro-batches when they need not divide evenly.

TRL splits a batch with `split_tensor_dict`, which needs equal parts; kept groups (filtering) and planned batches
(a fixed number of prompts) come in any number of rows.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import torch


def process_share(num_rows: int, num_processes: int, process_index: int) -> slice:
    """This process's rows of `num_rows`: an equal share for every process, in order.

    Every rank must run the same forward/backward passes, so the `num_rows % num_processes` trailing rows (fewer
    than one per process) are left out.
    """
    share = num_rows // num_processes
    return slice(process_index * share, (process_index + 1) * share)


def split_rows(batch: Mapping[str, Any], num_chunks: int) -> list[dict[str, Any]]:
    """Split a batch's per-row values into `num_chunks` consecutive chunks whose sizes differ by at most one.

    Unlike TRL's `split_tensor_dict`, which needs the rows to divide evenly, no row is lost; chunks may be empty when
    there are fewer rows than chunks. Scalars (0-d tensors) and `None` are passed to every chunk.
    """
    num_rows = next(len(value) for value in batch.values() if _is_per_row(value))
    base, extra = divmod(num_rows, num_chunks)
    bounds = [0]
    for chunk in range(num_chunks):
        bounds.append(bounds[-1] + base + (1 if chunk < extra else 0))
    return [
        {key: value[start:stop] if _is_per_row(value) else value for key, value in batch.items()}
        for start, stop in zip(bounds, bounds[1:], strict=False)
    ]


def _is_per_row(value: Any) -> bool:
    return isinstance(value, list) or (isinstance(value, torch.Tensor) and value.dim() > 0)


@contextlib.contextmanager
def trl_sees_groups_of_one(trainer: Any, ragged: bool = True) -> Iterator[None]:
    """While TRL scores ragged groups (when `ragged`), make it see groups of one completion.

    TRL's own advantages and zero-std metric reshape rows into groups of `num_generations`, which ragged groups
    need not fill; we replace both, so TRL may as well see groups of one while it scores.
    """
    if not ragged:
        yield
        return
    saved, trainer.num_generations = trainer.num_generations, 1
    try:
        yield
    finally:
        trainer.num_generations = saved
