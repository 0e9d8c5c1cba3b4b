"""Tokenizers and models built from nothing, offline: for the tests, the demo, and runs without Hub access.

Weights are random and seeded, vocabularies are given; nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tokenizers import Tokenizer, models
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
