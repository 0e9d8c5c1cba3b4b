"""trl-grpo-plus plugin: the `math_verify` reward, symbolic answer equivalence through `math-verify`."""

from __future__ import annotations

from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

from trl_grpo_plus import hookimpl
from trl_grpo_plus.default_plugins.rewards import completion_text

__version__ = "0.1.0"

_EXTRACTION = [LatexExtractionConfig(), ExprExtractionConfig()]


def _gold_text(gold: str) -> str:
    # GSM8K golds carry their reasoning before "#### answer"; only the answer is compared.
    return gold.rsplit("####", 1)[1].strip() if "####" in gold else gold


def math_verify(completions, solution=None, answer=None, timeout_seconds: int = 5, **kwargs) -> list[float | None]:
    """1.0 when the completion's answer is mathematically equivalent to the gold one, else 0.0; None without gold."""
    golds = solution if solution is not None else answer
    if golds is None:
        return [None] * len(completions)
    rewards: list[float | None] = []
    for completion, gold in zip(completions, golds, strict=True):
        gold_parsed = parse(_gold_text(str(gold)), extraction_config=_EXTRACTION) if gold is not None else []
        if not gold_parsed:
            rewards.append(None)
            continue
        predicted = parse(completion_text(completion), extraction_config=_EXTRACTION)
        rewards.append(1.0 if predicted and verify(gold_parsed, predicted, timeout_seconds=timeout_seconds) else 0.0)
    return rewards


def _validate_options(timeout_seconds: int = 5):
    if not isinstance(timeout_seconds, int) or timeout_seconds < 1:
        raise ValueError(f"option 'timeout_seconds' must be a positive integer, got {timeout_seconds!r}")


math_verify.validate_options = _validate_options


@hookimpl
def register_reward_functions(register):
    register(math_verify)
