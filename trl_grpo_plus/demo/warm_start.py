"""A brief supervised warm start: next-token loss on the completions of (prompt, completion) pairs.

GRPO only learns from completions that sometimes earn a reward; a model that never answers right gets no signal.
The demo's model starts random, so a few dozen steps of supervised training first teach it the answer format and
some of the arithmetic, and GRPO takes it from there.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch


def completion_batch(tokenizer, prompts: Sequence[str], completions: Sequence[str]) -> dict[str, torch.Tensor]:
    """Left-padded prompt + completion + EOS token ids, with labels only on the completion and EOS tokens."""
    sequences, labels = [], []
    for prompt, completion in zip(prompts, completions, strict=True):
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        sequences.append(prompt_ids + completion_ids)
        labels.append([-100] * len(prompt_ids) + completion_ids)
    width = max(map(len, sequences))
    pad = tokenizer.pad_token_id
    input_ids = torch.tensor([[pad] * (width - len(s)) + s for s in sequences])
    attention_mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in sequences])
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "labels": torch.tensor([[-100] * (width - len(lab)) + lab for lab in labels]),
    }


def supervised_warm_start(
    model,
    tokenizer,
    prompts: Sequence[str],
    completions: Sequence[str],
    *,
    steps: int,
    batch_size: int = 64,
    learning_rate: float = 3e-3,
    seed: int = 0,
    progress: bool = True,
) -> list[float]:
    """Train `model` for `steps` AdamW steps on random batches of the pairs; returns the loss of each step."""
    if steps < 0 or batch_size < 1:
        raise ValueError(f"steps must be >= 0 and batch_size >= 1, got steps={steps}, batch_size={batch_size}")
    if len(prompts) != len(completions) or not prompts:
        raise ValueError(f"need as many completions as prompts, and some; got {len(prompts)} and {len(completions)}")
    from tqdm.auto import tqdm

    rng = random.Random(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.0)
    model.train()
    losses = []
    bar = tqdm(range(steps), desc="supervised warm start", unit="step", disable=not progress)
    for _ in bar:
        picks = [rng.randrange(len(prompts)) for _ in range(batch_size)]
        batch = completion_batch(tokenizer, [prompts[i] for i in picks], [completions[i] for i in picks])
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
    return losses
