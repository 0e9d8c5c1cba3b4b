"""The built-in rewards: GSM8K answer accuracy, output format, DAPO's soft overlong penalty."""

import pytest

from trl_grpo_plus.default_plugins.rewards import accuracy, extract_final_answer, format, overlong_penalty


@pytest.mark.parametrize(
    "text, value",
    [
        ("She sold 48+24 = 72 clips.\n#### 72", "72"),
        ("#### 1,000 dollars", "1000"),
        ("The total is $1,234.50.", "1234.5"),
        ("It dropped to -3 degrees", "-3"),
        ("Each costs 0.25 and we need 3.50", "3.5"),
        ("#### 5 apples, after 2 days", "5"),
        ("<answer>42</answer> (checked in 3 steps)", "42"),
        ("so \\boxed{18} is the answer, not 7", "18"),
        ("He grew 5% this year", "5"),
        ("no digits here", None),
    ],
)
def test_the_final_answer_is_the_first_number_after_hashes_else_the_last_number(text, value):
    from decimal import Decimal

    assert extract_final_answer(text) == (Decimal(value) if value is not None else None)


def test_accuracy_compares_numbers_by_value_against_the_gsm8k_answer_column():
    golds = ["reasoning... #### 1000", "#### 72", "#### -5", "#### 0.5"]
    completions = ["#### $1,000.00", "I think 71", "the result is -5 degrees", ".5"]
    assert accuracy(completions, answer=golds) == [1.0, 0.0, 1.0, 1.0]


def test_accuracy_is_none_where_there_is_no_gold_answer():
    assert accuracy(["#### 3", "#### 3"], answer=["#### 3", "no number"]) == [1.0, None]
    assert accuracy(["#### 3"]) == [None]


def test_accuracy_reads_the_solution_column_and_conversational_completions():
    completion = [{"role": "assistant", "content": "#### 9"}]
    assert accuracy([completion], solution=["9"]) == [1.0]


def test_format_wants_reasoning_then_answer_tags():
    completions = [
        "<think>2+2</think>\n<answer>4</answer>",
        "<answer>4</answer>",
        "<think>x</think><answer>4</answer> extra",
    ]
    assert format(completions) == [1.0, 0.0, 0.0]


def test_format_tags_and_pattern_are_options():
    assert format(["<reason>r</reason><final>4</final>"], reasoning_tag="reason", answer_tag="final") == [1.0]
    assert format(["<answer>4</answer>"], reasoning_tag="") == [1.0]
    assert format(["#### 4", "4"], pattern=r".*#### -?\d+") == [1.0, 0.0]


def test_format_rejects_a_bad_pattern_before_training():
    with pytest.raises(ValueError, match="'pattern' is not a valid regular expression"):
        format.validate_options(pattern="(")


def test_overlong_penalty_follows_dapo():
    lengths = [4, 6, 7, 9, 10, 11]  # max_length 10, soft zone of 4 tokens starting after 6
    rewards = overlong_penalty([[0] * n for n in lengths], max_length=10, cache_length=4)
    assert rewards == pytest.approx([0.0, 0.0, -0.25, -0.75, -1.0, -1.0])


def test_overlong_penalty_matches_trls_own_implementation():
    from trl.rewards import get_soft_overlong_punishment

    trl_penalty = get_soft_overlong_punishment(max_completion_len=10, soft_punish_cache=4)
    ids = [[0] * n for n in range(1, 14)]
    assert overlong_penalty(ids, max_length=10, cache_length=4) == pytest.approx(trl_penalty(completion_ids=ids))
