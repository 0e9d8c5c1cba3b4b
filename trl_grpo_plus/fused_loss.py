"""Liger's fused linear GRPO loss, fed so that it computes what TRL's `GRPOTrainer._compute_loss` computes.

`LigerFusedLinearGRPOFunction` projects the last hidden states through the LM head and applies the GRPO loss chunk by
chunk, computing the gradients of the hidden states and the head during the forward, so the (batch, length, vocab)
logits never exist at once. This module only adapts inputs and outputs; the trainer decides when to use it
(`use_liger_loss`), and `tests/test_liger_loss_parity.py` holds it to TRL's loss.

Imported only when `use_liger_loss=True`: liger-kernel is an optional dependency (`pip install trl-grpo-plus[liger]`).
"""

from __future__ import annotations

import inspect
from dataclasses import asdict, dataclass

import torch
from liger_kernel.chunked_loss.grpo_loss import LigerFusedLinearGRPOFunction

# Per-sequence statistics the loss hands back for logging, one column each (see `_sequence_stats`).
KL_SUM, TOKENS, CLIP_LOW, CLIP_HIGH, CLIP_REGION, CLIP_COUNT = range(6)
NUM_STATS = 6

# Loss types whose per-token objective clips the ratio to [1 - epsilon_low, 1 + epsilon_high], as TRL groups them.
CLIPPED_LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo", "luspo")


@dataclass(frozen=True)
class FusedLossSettings:
    """The loss's fixed settings, named as `LigerFusedLinearGRPOFunction.forward` names them; defaults are TRL's."""

    loss_type: str = "dapo"
    beta: float = 0.0
    epsilon_low: float = 0.2
    epsilon_high: float = 0.2
    delta: float | None = None
    importance_sampling_level: str = "token"
    temperature: float = 1.0
    max_completion_length: int | None = None  # dr_grpo's normalizer
    use_bias_correction_kl: bool = False
    sapo_temperature_pos: float = 1.0
    sapo_temperature_neg: float = 1.05
    vespo_k_pos: float = 2.0
    vespo_lambda_pos: float = 3.0
    vespo_k_neg: float = 3.0
    vespo_lambda_neg: float = 2.0
    chunk_size: int = 1
    compiled: bool = False

    @classmethod
    def from_trainer(cls, trainer) -> FusedLossSettings:
        """The settings TRL's `_compute_loss` reads from `trainer` and its args, plus the Liger options."""
        args = trainer.args
        return cls(
            loss_type=trainer.loss_type,
            beta=trainer.beta,
            epsilon_low=trainer.epsilon_low,
            epsilon_high=trainer.epsilon_high,
            delta=args.delta,
            importance_sampling_level=trainer.importance_sampling_level,
            temperature=trainer.temperature,
            max_completion_length=trainer.max_completion_length,
            use_bias_correction_kl=args.use_bias_correction_kl,
            sapo_temperature_pos=args.sapo_temperature_pos,
            sapo_temperature_neg=args.sapo_temperature_neg,
            vespo_k_pos=args.vespo_k_pos,
            vespo_lambda_pos=args.vespo_lambda_pos,
            vespo_k_neg=args.vespo_k_neg,
            vespo_lambda_neg=args.vespo_lambda_neg,
            chunk_size=args.liger_chunk_size,
            compiled=args.liger_compile,
        )


class FusedGRPOLoss:
    """`loss(hidden, weight, ...) -> (loss, stats)`: the GRPO loss of one micro-batch, from the LM head's input.

    The loss is scaled as TRL scales what `_compute_loss` returns (already divided for gradient accumulation);
    `stats` is a detached (batch, `NUM_STATS`) tensor of per-sequence sums from which TRL's loss metrics follow.
    """

    def __init__(self, settings: FusedLossSettings) -> None:
        self.settings = settings
        # `Function.apply` takes positional arguments only; bind ours by name so a reordering in Liger cannot
        # silently shift them.
        self._parameters = list(inspect.signature(_GRPOFunctionWithStats.forward).parameters)[1:]  # without ctx
        missing = [name for name in (*asdict(settings), "num_items_in_batch") if name not in self._parameters]
        if missing:
            raise ImportError(
                f"The installed liger-kernel's GRPO loss lacks {', '.join(missing)}; use_liger_loss needs "
                "liger-kernel>=0.8.5: pip install -U 'trl-grpo-plus[liger]'."
            )

    def __call__(
        self,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        completion_ids: torch.Tensor,
        mask: torch.Tensor,
        advantages: torch.Tensor,
        *,
        old_per_token_logps: torch.Tensor | None,
        ref_per_token_logps: torch.Tensor | None,
        importance_sampling_ratio: torch.Tensor | None,
        dapo_normalizer: torch.Tensor | None,
        accumulation_steps: float,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`hidden` (B, T, H) predicts `completion_ids` (B, T); `mask` (B, T) selects the tokens that count.

        `dapo_normalizer` is the per-process token count TRL divides the dapo/cispo/vespo loss by (already scaled
        to one accumulation window); `accumulation_steps` divides the other loss types, as TRL does in training.
        """
        if advantages.dim() != 1:
            raise ValueError(
                f"use_liger_loss takes one advantage per sequence, shape (batch,); got shape "
                f"{tuple(advantages.shape)}. Per-token advantages need TRL's loss: set use_liger_loss=False."
            )
        settings = self.settings
        per_token_normalized = settings.loss_type in ("dapo", "cispo", "vespo")
        arguments = {
            **asdict(settings),
            "_input": hidden,
            "weight": weight,
            "bias": bias,
            "selected_token_ids": completion_ids,
            "attention_mask": mask,
            "advantages": advantages,
            "ref_per_token_logps": ref_per_token_logps if settings.beta != 0.0 else None,
            "old_per_token_logps": old_per_token_logps,
            "use_ref_model": settings.beta != 0.0,
            "vllm_is_ratio": importance_sampling_ratio,
            # Liger divides this by the world size, as TRL divides its count by the number of processes
            "num_items_in_batch": dapo_normalizer if per_token_normalized else None,
        }
        loss, metrics = _GRPOFunctionWithStats.apply(*(arguments.get(name) for name in self._parameters))
        if not per_token_normalized:
            loss = loss / accumulation_steps
        return loss, metrics[0]


class _GRPOFunctionWithStats(LigerFusedLinearGRPOFunction):
    """Liger's GRPO loss with TRL's metric inputs as its metrics: per-sequence sums, not Liger's two means."""

    @staticmethod
    def ppo_loss_fn(per_token_logps, attention_mask, advantages, full_attention_mask, **kwargs):
        loss, _ = LigerFusedLinearGRPOFunction.ppo_loss_fn(
            per_token_logps, attention_mask, advantages, full_attention_mask, **kwargs
        )
        return loss, [_sequence_stats(per_token_logps.detach(), attention_mask, advantages, **kwargs)]


def _sequence_stats(
    per_token_logps,
    mask,
    advantages,
    *,
    ref_per_token_logps=None,
    old_per_token_logps=None,
    epsilon_low,
    epsilon_high,
    beta,
    loss_type,
    importance_sampling_level,
    delta=None,
    use_bias_correction_kl=False,
    vllm_is_ratio=None,
    vespo_k_pos=2.0,
    vespo_lambda_pos=3.0,
    vespo_k_neg=3.0,
    vespo_lambda_neg=2.0,
    **_,
) -> torch.Tensor:
    """Per-sequence sums of what TRL's `_compute_loss` logs (its KL and clip-ratio masked means), (B, NUM_STATS).

    Token-level quantities are summed over the sequence's masked tokens with the token count beside them; a
    sequence-level one ((B, 1) in TRL) is the value itself with a count of 1, since TRL averages those per sequence.
    """
    mask = mask.to(per_token_logps.dtype)
    old = per_token_logps if old_per_token_logps is None else old_per_token_logps
    log_ratio = per_token_logps - old
    if importance_sampling_level == "sequence":
        log_ratio = ((log_ratio * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).unsqueeze(-1)
    coef_1 = torch.exp(log_ratio)
    advantages = advantages.unsqueeze(1)
    stats = per_token_logps.new_zeros(per_token_logps.size(0), NUM_STATS)
    stats[:, TOKENS] = mask.sum(-1)

    def add(column: int, value: torch.Tensor) -> None:
        if value.size(1) == 1:
            stats[:, column] = value.squeeze(1)
        else:
            stats[:, column] = (value * mask).sum(-1)

    if beta != 0.0:
        kl = torch.exp(ref_per_token_logps - per_token_logps) - (ref_per_token_logps - per_token_logps) - 1
        add(KL_SUM, kl * coef_1 if use_bias_correction_kl else kl)
    stats[:, CLIP_COUNT] = stats[:, TOKENS] if coef_1.size(1) > 1 else 1.0
    if loss_type in CLIPPED_LOSS_TYPES:
        if delta is not None:
            coef_1 = torch.clamp(coef_1, max=delta)
        low = ((coef_1 < 1 - epsilon_low) & (advantages < 0)).to(mask.dtype)
        high = ((coef_1 > 1 + epsilon_high) & (advantages > 0)).to(mask.dtype)
        add(CLIP_LOW, low)
        add(CLIP_HIGH, high)
        add(CLIP_REGION, torch.maximum(low, high))
    elif loss_type == "cispo":
        add(CLIP_REGION, ((coef_1 > epsilon_high) & (advantages > 0)).to(mask.dtype))
    elif loss_type == "vespo":
        from liger_kernel.chunked_loss.grpo_loss import get_gamma_weights

        phi = get_gamma_weights(
            advantages.squeeze(1),
            per_token_logps - old,
            mask,
            vllm_is_ratio,
            vespo_k_pos,
            vespo_lambda_pos,
            vespo_k_neg,
            vespo_lambda_neg,
        )
        stats[:, CLIP_REGION] = phi.squeeze(1)
        stats[:, CLIP_COUNT] = 1.0
    return stats
