"""The Liger fused-loss feature (`use_liger_loss`): Liger's fused linear GRPO loss, fed so that it computes what
TRL's `GRPOTrainer._compute_loss` computes, with its trainer glue, refusals and metrics.

`LigerFusedLinearGRPOFunction` projects the last hidden states through the LM head and applies the GRPO loss chunk by
chunk, computing the gradients of the hidden states and the head during the forward, so the (batch, length, vocab)
logits never exist at once. `tests/test_liger_loss_parity.py` holds it to TRL's loss.

TRL seam (see `trainer.py`): `_compute_loss` hands the micro-batch to `FusedLossStep.compute`, which runs the
backbone and the fused loss inside the wrapped model's forward, and logs TRL's loss metrics from the loss's stats.
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
from dataclasses import asdict, dataclass
from typing import Any

import torch
from accelerate.utils import is_peft_model
from torch.distributed.tensor import DTensor
from trl.models.utils import _ForwardRedirection
from trl.trainer.utils import maybe_gather_lm_head_ctx, nanmax, nanmin

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
        self._function = _grpo_function_with_stats()
        self._parameters = list(inspect.signature(self._function.forward).parameters)[1:]  # without ctx
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
        loss, metrics = self._function.apply(*(arguments.get(name) for name in self._parameters))
        if not per_token_normalized:
            loss = loss / accumulation_steps
        return loss, metrics[0]


@functools.cache
def _grpo_function_with_stats() -> type:
    """Liger's GRPO loss with TRL's metric inputs as its metrics: per-sequence sums, not Liger's two means.

    Built on first use: liger-kernel is optional, and imported only by runs that set use_liger_loss."""
    try:
        from liger_kernel.chunked_loss.grpo_loss import LigerFusedLinearGRPOFunction
    except Exception as error:  # installed but broken (a CUDA/Triton mismatch, say) is not "missing"
        raise ImportError(
            f"use_liger_loss=True needs liger-kernel, which failed to import: {type(error).__name__}: {error}. "
            "Reinstall it (pip install -U 'trl-grpo-plus[liger]'), or set use_liger_loss=False."
        ) from error

    class GRPOFunctionWithStats(LigerFusedLinearGRPOFunction):
        @staticmethod
        def ppo_loss_fn(per_token_logps, attention_mask, advantages, full_attention_mask, **kwargs):
            loss, _ = LigerFusedLinearGRPOFunction.ppo_loss_fn(
                per_token_logps, attention_mask, advantages, full_attention_mask, **kwargs
            )
            return loss, [_sequence_stats(per_token_logps.detach(), attention_mask, advantages, **kwargs)]

    return GRPOFunctionWithStats


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


# Loss types for which Liger's fused loss computes TRL's loss exactly (tests/test_liger_loss_parity.py); luspo only
# in its sequence-level form, see `liger_loss_conflicts`.
LIGER_LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo", "cispo", "sapo", "vespo", "luspo")


def liger_loss_conflicts(args: Any) -> list[str]:
    """The settings of `args` that Liger's fused loss cannot honour, each with the reason."""
    conflicts = []
    if args.loss_type not in LIGER_LOSS_TYPES:
        conflicts.append(f"loss_type={args.loss_type!r} (supported: {', '.join(LIGER_LOSS_TYPES)})")
    if args.loss_type == "luspo" and (
        args.importance_sampling_level != "sequence" or args.beta != 0.0 or args.use_vllm
    ):
        # Liger weights every position of luspo's per-token loss, padding included, where TRL masks them. The two
        # agree only when that loss is one value per sequence: sequence-level ratios, no KL term, no vLLM ratios.
        conflicts.append(
            "loss_type='luspo' unless importance_sampling_level='sequence', beta=0 and no vLLM (Liger's luspo "
            "counts padded positions when the per-token loss varies along the sequence)"
        )
    if args.top_entropy_quantile < 1.0:
        conflicts.append("top_entropy_quantile < 1 (it needs per-token entropies, which the fused loss never forms)")
    if args.entropy_coef != 0.0 or args.use_adaptive_entropy:
        conflicts.append("an entropy bonus (entropy_coef / use_adaptive_entropy need per-token entropies)")
    if args.off_policy_mask_threshold is not None:
        conflicts.append("off_policy_mask_threshold (Liger's loss has no off-policy sequence mask)")
    return conflicts


def check_config(args: Any) -> None:
    """Refuse bad fused-loss settings of a `GRPOConfig`, before any model is loaded."""
    if (
        not isinstance(args.liger_chunk_size, int)
        or isinstance(args.liger_chunk_size, bool)
        or (args.liger_chunk_size < 1)
    ):
        raise ValueError(
            f"liger_chunk_size must be an integer >= 1 (sequences per chunk of the fused loss), got "
            f"{args.liger_chunk_size!r}."
        )
    if not args.use_liger_loss:
        if args.liger_chunk_size != 1 or args.liger_compile:
            raise ValueError(
                "liger_chunk_size and liger_compile configure the fused loss, which is off. Set "
                "use_liger_loss=True, or drop them."
            )
        return
    if importlib.util.find_spec("liger_kernel") is None:
        raise ImportError(
            "use_liger_loss=True needs liger-kernel, which is not installed: pip install 'trl-grpo-plus[liger]'."
        )
    conflicts = liger_loss_conflicts(args)
    if conflicts:
        raise ValueError(
            "use_liger_loss=True cannot compute TRL's loss with " + "; ".join(conflicts) + ". Drop that "
            "setting, or set use_liger_loss=False."
        )


class FusedLossStep:
    """The trainer's side of the fused loss: the micro-batch's loss inside the wrapped model's forward, and TRL's
    loss metrics from its stats."""

    def __init__(self, loss: FusedGRPOLoss) -> None:
        self.loss = loss
        # The fused loss calls the backbone directly; routing it through the wrapper's forward keeps DDP's gradient
        # sync and FSDP/ZeRO-3's parameter gathering armed, as TRL does for its chunked distillation loss.
        self._forward_redirection = _ForwardRedirection()

    @classmethod
    def for_trainer(cls, trainer: Any) -> FusedLossStep:
        """The fused loss for `trainer`'s settings; refuses models whose LM head Liger's loss cannot reproduce."""
        model = trainer.accelerator.unwrap_model(trainer.model)
        if is_peft_model(model):
            model = model.get_base_model()
        config = model.config
        text_config = config.get_text_config()
        unsupported = []
        if text_config is not config:
            unsupported.append(f"a multimodal model ({type(model).__name__}; the fused loss takes text-only inputs)")
        if getattr(text_config, "final_logit_softcapping", None) is not None:
            unsupported.append("final logit softcapping (Liger's loss projects the logits without it)")
        scales = ("logit_scale", "output_multiplier", "lm_head_multiplier", "logits_scaling")
        if any(getattr(text_config, name, None) not in (None, 1, 1.0) for name in scales):
            unsupported.append("scaled logits (Liger's loss projects the logits without the model's logit scale)")
        if trainer.aux_loss_enabled:
            unsupported.append("the MoE router auxiliary loss (set router_aux_loss_coef=0.0 to train without it)")
        if unsupported:
            raise ValueError(
                "use_liger_loss=True does not support " + "; ".join(unsupported) + ". Set use_liger_loss=False to use "
                "TRL's loss."
            )
        return cls(FusedGRPOLoss(FusedLossSettings.from_trainer(trainer)))

    def describe(self, trainer: Any) -> str:
        return f"; loss: Liger fused linear GRPO ({trainer.loss_type}, chunk {trainer.args.liger_chunk_size})"

    def compute(self, trainer: Any, model: Any, inputs: dict[str, Any]) -> torch.Tensor:
        """TRL's `_compute_loss` for one micro-batch, fused."""
        unwrapped = trainer.accelerator.unwrap_model(model)
        loss, stats = self._forward_redirection(model, unwrapped, self._policy_loss, trainer, unwrapped, inputs)
        # After the redirected forward: collectives inside a DDP/FSDP-wrapped forward risk hangs
        self._log_metrics(trainer, stats)
        return loss

    def _policy_loss(self, trainer, unwrapped, inputs) -> tuple[torch.Tensor, torch.Tensor]:
        """TRL's `_compute_loss` for one micro-batch, with the LM head and the loss fused by Liger."""
        base = unwrapped.get_base_model() if is_peft_model(unwrapped) else unwrapped
        completion_ids = inputs["completion_ids"]
        input_ids = torch.cat([inputs["prompt_ids"], completion_ids], dim=1)
        attention_mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
        mask = inputs["completion_mask"]
        if "tool_mask" in inputs:
            mask = mask * inputs["tool_mask"]
        with trainer.accelerator.autocast():
            hidden = base.base_model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
        # position t predicts token t + 1: the states before each completion token
        hidden = hidden.last_hidden_state[:, -completion_ids.size(1) - 1 : -1]
        head = base.get_output_embeddings()
        weight, bias = head.weight, head.bias
        hidden = hidden.to(weight.device)
        if isinstance(weight, DTensor):  # FSDP2 shards the head; the fused loss needs it whole, as TRL's does
            weight = weight.full_tensor()
            bias = bias.full_tensor() if bias is not None else None
        autocast = trainer.accelerator.autocast()
        if trainer.args.cast_lm_head_to_fp32:
            hidden = hidden.float()
            autocast = torch.autocast(hidden.device.type, enabled=False)

        training = trainer.model.training
        accumulation_steps = trainer.current_gradient_accumulation_steps if training else 1.0
        dapo_normalizer = inputs["num_items_in_batch"].clamp(min=1.0)
        if training:  # TRL's count spans the generation batch; rescale it to one accumulation window
            dapo_normalizer = (
                dapo_normalizer * trainer.current_gradient_accumulation_steps / trainer.args.steps_per_generation
            )
        if trainer.loss_type == "vespo":
            importance_sampling_ratio = inputs.get("importance_sampling_ratio")
        elif trainer.use_vllm and trainer.vllm_importance_sampling_correction:
            importance_sampling_ratio = inputs["importance_sampling_ratio"]
        else:
            importance_sampling_ratio = None
        with autocast, maybe_gather_lm_head_ctx(weight, bias):
            return self.loss(
                hidden,
                weight,
                bias,
                completion_ids,
                mask,
                inputs["advantages"],
                old_per_token_logps=inputs.get("old_per_token_logps"),
                ref_per_token_logps=inputs.get("ref_per_token_logps"),
                importance_sampling_ratio=importance_sampling_ratio,
                dapo_normalizer=dapo_normalizer,
                accumulation_steps=accumulation_steps,
            )

    @staticmethod
    def _log_metrics(trainer, stats: torch.Tensor) -> None:
        """TRL's loss metrics (KL, clip ratios), from the fused loss's per-sequence sums; see `fused_loss.py`."""
        metrics = trainer._metrics["train" if trainer.model.training else "eval"]
        totals = trainer.accelerator.reduce(stats.sum(0), reduction="sum")

        def mean(column: int, count: int) -> float:
            return (totals[column] / totals[count].clamp(min=1.0)).item()

        if trainer.beta != 0.0:
            metrics["kl"].append(mean(KL_SUM, TOKENS))
        if trainer.loss_type in CLIPPED_LOSS_TYPES:
            metrics["clip_ratio/low_mean"].append(mean(CLIP_LOW, CLIP_COUNT))
            metrics["clip_ratio/high_mean"].append(mean(CLIP_HIGH, CLIP_COUNT))
            metrics["clip_ratio/region_mean"].append(mean(CLIP_REGION, CLIP_COUNT))
            per_sequence = trainer.accelerator.gather(stats[:, [CLIP_LOW, CLIP_HIGH]] / stats[:, [CLIP_COUNT]])
            metrics["clip_ratio/low_min"].append(nanmin(per_sequence[:, 0]).item())
            metrics["clip_ratio/high_max"].append(nanmax(per_sequence[:, 1]).item())
        elif trainer.loss_type == "cispo":
            metrics["cispo_clip_ratio"].append(mean(CLIP_REGION, CLIP_COUNT))
        elif trainer.loss_type == "vespo":
            metrics["vespo/phi_seq_mean"].append(mean(CLIP_REGION, CLIP_COUNT))
