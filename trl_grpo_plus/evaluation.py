"""Greedy pass@1: one greedy completion per problem, scored by a reward function (default: `accuracy`).

Used by the GSM8K recipe (before and after training) and the offline demo (during training). Prompts are handed out
to the processes in equal-sized shards, so every rank runs the same number of `generate` calls (which ZeRO-3 and
FSDP need, as every forward gathers parameters from all ranks); the scores are gathered back on every rank.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from .default_plugins.rewards import accuracy


@dataclass
class Evaluation:
    """The outcome of `greedy_pass_at_1`: accuracy over `total` problems, and each problem's record."""

    accuracy: float
    correct: int
    total: int
    samples: list[dict[str, Any]] = field(default_factory=list, repr=False)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def prompt_texts(prompts: Sequence[Any], tokenizer) -> list[str]:
    """Prompts as the model sees them: conversations through the chat template (assistant turn opened), text as is."""
    return [
        tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        if isinstance(prompt, list)
        else prompt
        for prompt in prompts
    ]


def shard_indices(count: int, rank: int, world: int) -> list[int]:
    """The problem indices process `rank` of `world` decodes: equal-sized shards, the last index repeated as padding.

    Equal sizes keep every rank's `generate` calls in step; the repeats decode a problem twice and count once.
    """
    per_rank = math.ceil(count / world) if count else 0
    return [min(index, count - 1) for index in range(rank * per_rank, (rank + 1) * per_rank)]


@torch.no_grad()
def greedy_pass_at_1(
    model,
    tokenizer,
    prompts: Sequence[Any],
    answers: Sequence[str],
    *,
    reward: Callable[..., list[float | None]] = accuracy,
    columns: Mapping[str, Sequence[Any]] | None = None,
    max_new_tokens: int = 256,
    batch_size: int = 32,
    accelerator=None,
    progress: bool = True,
    description: str = "pass@1",
) -> Evaluation:
    """Greedy-decode one completion per prompt and score it with `reward` (TRL's reward contract).

    `prompts` are strings or conversations (lists of messages); `answers` are the gold answers handed to the reward
    as its ``answer`` column, and `columns` any other dataset columns it reads (one value per prompt, e.g. the unit
    tests a code reward runs). A completion is correct when its reward is 1.0. With an `accelerator` running several
    processes, each process decodes its share and all of them return the same `Evaluation`.
    """
    if len(prompts) != len(answers):
        raise ValueError(f"got {len(prompts)} prompts but {len(answers)} answers; pass one answer per prompt")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    texts = prompt_texts(prompts, tokenizer)
    rank, world = (accelerator.process_index, accelerator.num_processes) if accelerator else (0, 1)
    shard = shard_indices(len(texts), rank, world)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    completions: list[str] = []
    batches = range(0, len(shard), batch_size)
    try:
        from tqdm.auto import tqdm

        bar = tqdm(batches, desc=description, unit="batch", disable=not progress or rank != 0)
        for start in bar:
            batch = [texts[i] for i in shard[start : start + batch_size]]
            encoded = tokenizer(
                batch, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False
            )
            encoded = {key: value.to(device) for key, value in encoded.items()}
            output = model.generate(
                **encoded,
                do_sample=False,
                max_new_tokens=max_new_tokens,
                pad_token_id=tokenizer.pad_token_id,
                # sampling settings of the model's generation config would only warn under greedy decoding
                temperature=None,
                top_p=None,
                top_k=None,
            )
            completions += tokenizer.batch_decode(output[:, encoded["input_ids"].shape[1] :], skip_special_tokens=True)
    finally:
        model.train(was_training)
    records = [
        {"index": index, "completion": completion} for index, completion in zip(shard, completions, strict=True)
    ]
    if world > 1:
        from accelerate.utils import gather_object

        records = gather_object(records)
    completions_by_index = {record["index"]: record["completion"] for record in records}
    ordered = [completions_by_index[i] for i in range(len(texts))]
    extra = {name: list(values) for name, values in (columns or {}).items()}
    scores = reward(prompts=list(prompts), completions=ordered, answer=list(answers), **extra) if texts else []
    samples = [
        {"prompt": text, "completion": completion, "answer": answer, "correct": score == 1.0}
        for text, completion, answer, score in zip(texts, ordered, answers, scores, strict=True)
    ]
    correct = sum(sample["correct"] for sample in samples)
    return Evaluation(
        accuracy=correct / len(samples) if samples else 0.0, correct=correct, total=len(samples), samples=samples
    )


def evaluate_trainer(trainer, prompts: Sequence[Any], answers: Sequence[str], **kwargs) -> Evaluation:
    """`greedy_pass_at_1` on a trainer's model, gathered for generation as TRL gathers it (ZeRO-3, FSDP)."""
    from trl.models.utils import unwrap_model_for_generation

    summon_full_params = getattr(getattr(trainer, "_dist", None), "summon_full_params", None)
    with (
        unwrap_model_for_generation(
            trainer.model_wrapped, trainer.accelerator, gather_deepspeed3_params=trainer.args.ds3_gather_for_generation
        ) as model,
        summon_full_params(trainer.model_wrapped, recurse=False) if summon_full_params else contextlib.nullcontext(),
    ):
        return greedy_pass_at_1(
            model, trainer.processing_class, prompts, answers, accelerator=trainer.accelerator, **kwargs
        )


def write_report(path: str | Path, evaluations: dict[str, Evaluation]) -> Path:
    """Write ``{"<label>": {"accuracy": ..., "samples": [...]}, ...}`` and, with `before` and `after`, their delta."""
    report: dict[str, Any] = {label: evaluation.to_json() for label, evaluation in evaluations.items()}
    if "before" in evaluations and "after" in evaluations:
        report["delta"] = evaluations["after"].accuracy - evaluations["before"].accuracy
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))
    return path


def report_table(evaluations: dict[str, Evaluation], title: str = "pass@1 (greedy)") -> str:
    """A plain-text table: one column per evaluation (before / after), then the delta when both are there."""
    columns = [(label, f"{e.accuracy:.1%} ({e.correct}/{e.total})") for label, e in evaluations.items()]
    if "before" in evaluations and "after" in evaluations:
        delta = evaluations["after"].accuracy - evaluations["before"].accuracy
        columns.append(("delta", f"{100 * delta:+.1f} points"))
    widths = [max(len(label), len(value)) for label, value in columns]
    header = " | ".join(label.ljust(width) for (label, _), width in zip(columns, widths, strict=True))
    rule = "-+-".join("-" * width for width in widths)
    values = " | ".join(value.ljust(width) for (_, value), width in zip(columns, widths, strict=True))
    return f"{title}\n{header}\n{rule}\n{values}"
