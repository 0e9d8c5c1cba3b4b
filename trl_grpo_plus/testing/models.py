"""Tiny models, tokenizers and datasets built fully offline, for tests and the demo; importable without pytest.

Nothing here touches the network: tokenizers are built from a fixed alphabet or word list with `tokenizers`, models
from a config with seeded random weights. Everything is deterministic for a given seed.
"""

from __future__ import annotations

import string
from collections.abc import Sequence

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

SPECIAL_TOKENS = ("<pad>", "<unk>", "<bos>", "<eos>")


def word_level_tokenizer(words: Sequence[str], configure=None, **options) -> PreTrainedTokenizerFast:
    """A tokenizer with one token per entry of `words` (after pad/unk/bos/eos), left padding as GRPO needs.

    `configure(backend)` sets the `tokenizers` pre-tokenizer and decoder; `options` go to `PreTrainedTokenizerFast`.
    """
    vocab = {token: index for index, token in enumerate((*SPECIAL_TOKENS, *words))}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    if configure is not None:
        configure(backend)
    pad, unk, bos, eos = SPECIAL_TOKENS
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=pad,
        unk_token=unk,
        bos_token=bos,
        eos_token=eos,
        padding_side="left",
        **options,
    )


def qwen2_from_scratch(
    tokenizer: PreTrainedTokenizerFast,
    *,
    seed: int,
    hidden_size: int,
    num_layers: int,
    num_heads: int,
    num_kv_heads: int,
    intermediate_size: int,
    max_position_embeddings: int,
) -> Qwen2ForCausalLM:
    """A Qwen2 causal LM with tied embeddings and seeded random weights over `tokenizer`'s vocabulary.

    Two calls with the same arguments return models with identical weights; the global RNG is left untouched.
    """
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

    def characters(backend):
        # Each character is its own word; Fuse joins decoded tokens back without separators.
        backend.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
        backend.decoder = decoders.Fuse()

    tokenizer = word_level_tokenizer(sorted(set(alphabet)), characters, truncation_side="left")
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
    return qwen2_from_scratch(
        tokenizer or tiny_tokenizer(),
        seed=seed,
        hidden_size=hidden_size,
        num_layers=num_layers,
        num_heads=num_heads,
        num_kv_heads=num_kv_heads,
        intermediate_size=intermediate_size,
        max_position_embeddings=max_position_embeddings,
    )


def tiny_prompt_dataset(num_prompts: int = 16, *, seed: int = 0):
    """A `datasets.Dataset` of short arithmetic prompts with GSM8K-style `answer` columns (`"... #### N"`)."""
    from datasets import Dataset

    generator = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(num_prompts):
        a, b = (int(x) for x in torch.randint(0, 10, (2,), generator=generator))
        rows.append({"prompt": f"{a}+{b}=", "answer": f"{a}+{b}={a + b} #### {a + b}"})
    return Dataset.from_list(rows)


def save_tiny_checkpoint(path, *, seed: int = 0, **model_kwargs) -> str:
    """Save `tiny_model` and `tiny_tokenizer` to `path` as a Hub-style folder that loads by path, like a model id.

    For tests of scripts that take `--model_name_or_path`. `model_kwargs` go to `tiny_model`.
    """
    tokenizer = tiny_tokenizer()
    tiny_model(tokenizer, seed=seed, **model_kwargs).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)
