"""Tiny models, tokenizers and datasets built fully offline, for tests and demos.

Nothing here touches the network: the tokenizer is built from a fixed alphabet with `tokenizers`, the model from
a config with seeded random weights. Everything is deterministic for a given seed.
"""

from __future__ import annotations

import string

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

SPECIAL_TOKENS = ("<pad>", "<unk>", "<bos>", "<eos>")

# Enough of a chat template for conversational datasets: role headers, then the assistant turn is opened.
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] }}: {{ message['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant: {% endif %}"
)


def tiny_tokenizer(alphabet: str = string.printable) -> PreTrainedTokenizerFast:
    """A character-level tokenizer over `alphabet`, with pad/unk/bos/eos tokens and a minimal chat template.

    Character level keeps the vocabulary tiny and makes every string encodable, so tests and the demo never meet
    unknown tokens. Left padding, as GRPO needs for generation.
    """
    chars = sorted(set(alphabet))
    vocab = {token: i for i, token in enumerate((*SPECIAL_TOKENS, *chars))}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    # Each character is its own word; Fuse joins decoded tokens back without separators.
    backend.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    backend.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token="<bos>",
        eos_token="<eos>",
        padding_side="left",
        truncation_side="left",
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def tiny_model(
    tokenizer: PreTrainedTokenizerFast | None = None,
    *,
    seed: int = 0,
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int = 64,
    max_position_embeddings: int = 512,
) -> Qwen2ForCausalLM:
    """A randomly initialised Qwen2 causal LM sized for CPU tests (about 20K parameters by default).

    Two calls with the same arguments return models with identical weights.
    """
    tokenizer = tokenizer or tiny_tokenizer()
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    return model


def tiny_prompt_dataset(num_prompts: int = 16, *, seed: int = 0):
    """A `datasets.Dataset` of short arithmetic prompts with GSM8K-style `answer` columns (`"... #### N"`)."""
    from datasets import Dataset

    generator = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(num_prompts):
        a, b = (int(x) for x in torch.randint(0, 10, (2,), generator=generator))
        rows.append({"prompt": f"{a}+{b}=", "answer": f"{a}+{b}={a + b} #### {a + b}"})
    return Dataset.from_list(rows)
