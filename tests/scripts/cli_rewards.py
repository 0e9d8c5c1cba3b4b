"""A reward importable by dotted path (`cli_rewards.text_hash`), as `trl grpo --reward_funcs` takes one."""

import hashlib


def text_hash(completions, **kwargs):
    """Differs between any two distinct completions, so every group has signal and training moves the model."""
    texts = [c if isinstance(c, str) else c[-1]["content"] for c in completions]
    return [int(hashlib.sha256(t.encode()).hexdigest()[:8], 16) / 16**8 for t in texts]
