"""The `math_verify` reward, and that installing the distribution makes it usable by name."""

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

pytest.importorskip("math_verify", reason="needs `pip install ./plugins/trl-grpo-plus-math`")

from trl_grpo_plus_math import math_verify

from trl_grpo_plus import GRPOTrainer, build_plugin_manager, get_registry
from trl_grpo_plus.testing import tiny_grpo_config, tiny_model, tiny_prompt_dataset, tiny_tokenizer


def test_equivalent_forms_of_the_answer_score_one():
    completions = ["so it is $\\frac{1}{2}$", "0.5", "$\\frac{2}{4}$"]
    assert math_verify(completions, solution=["$0.5$"] * 3) == [1.0, 1.0, 1.0]


def test_a_different_answer_scores_zero():
    assert math_verify(["$x = 3$"], solution=["$4$"]) == [0.0]


def test_gsm8k_gold_answers_are_read_after_the_hashes():
    assert math_verify(["The answer is 72."], answer=["48+24=72 clips.\n#### 72"]) == [1.0]


def test_rows_without_a_parseable_gold_answer_are_none():
    assert math_verify(["1"], solution=["no answer here"]) == [None]
    assert math_verify(["1"]) == [None]


def test_the_installed_distribution_registers_the_reward_through_its_entry_point():
    registry = get_registry(build_plugin_manager())
    assert registry.reward_functions["math_verify"] is math_verify
    info = registry.plugin_manager.info(registry.reward_functions.plugin_of("math_verify"))
    assert info.distribution == "trl-grpo-plus-math"


def test_it_trains_by_name(tmp_path):
    tokenizer = tiny_tokenizer()
    trainer = GRPOTrainer(
        model=tiny_model(tokenizer),
        reward_funcs=["math_verify"],
        args=tiny_grpo_config(tmp_path),
        train_dataset=tiny_prompt_dataset(),
        processing_class=tokenizer,
    )
    trainer.train()
    assert "rewards/math_verify/mean" in trainer.state.log_history[0]
