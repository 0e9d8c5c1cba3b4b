"""The answer-extraction helpers plugin authors build answer rewards on (`trl_grpo_plus.answers`)."""

from decimal import Decimal

import pytest

from trl_grpo_plus.answers import (
    after_final_marker,
    answer_block,
    completion_text,
    last_boxed,
    marked_answer,
    plain_number,
)


def test_answer_block_is_the_last_block_of_the_named_tags():
    text = "<think>maybe <answer>1</answer></think>\n<answer>\n72 clips\n</answer>"
    assert answer_block(text) == "\n72 clips\n"
    assert answer_block("<final>7</final>", "final") == "7"
    assert answer_block("<answer>72") is None


def test_last_boxed_keeps_nested_braces_and_skips_unclosed_boxes():
    assert last_boxed("\\boxed{1} then \\boxed{\\frac{1}{2}}.") == "\\frac{1}{2}"
    assert last_boxed("\\fbox{3}") == "3"
    assert last_boxed("\\boxed{5} and \\boxed{") == "5"
    assert last_boxed("no box") is None


def test_after_final_marker_is_the_rest_of_the_last_marked_line():
    assert after_final_marker("#### 3\nreasoning\n####  $1,000 \nDone.") == "$1,000"
    assert after_final_marker("72") is None


def test_marked_answer_prefers_tags_then_boxes_then_the_marker():
    assert marked_answer("\\boxed{2}\n#### 3 <answer>1</answer>") == "1"
    assert marked_answer("\\boxed{2}\n#### 3") == "2"
    assert marked_answer("#### 3") == "3"
    assert marked_answer("<final>4</final> \\boxed{2}", answer_tag="final") == "4"
    assert marked_answer("The answer is 72.") is None


@pytest.mark.parametrize(
    "answer, value",
    [
        ("72", "72"),
        ("  -4 ", "-4"),
        ("0.5", "0.5"),
        (".5", "0.5"),
        ("$1,000", "1000"),
        ("\\$18.50", "18.5"),
        ("-$5", "-5"),
        ("1,234,567.00 dollars.", "1234567"),
        ("72 clips", "72"),
        ("50%", "50"),
        ("50\\%", "50"),
        ("\\frac{1}{2}", None),
        ("3/4", None),
        ("2x", None),
        ("1,2,3", None),
        ("The answer is 72", None),
        ("72 or 73", None),
        ("", None),
    ],
)
def test_plain_number_reads_numbers_as_people_write_them_and_nothing_else(answer, value):
    assert plain_number(answer) == (Decimal(value) if value is not None else None)


def test_long_runs_of_spaces_and_open_boxes_are_read():
    # Degenerate generations repeat whitespace and leave boxes open. The patterns are written so that these read in
    # linear time; a pattern that backtracks over each run of spaces takes time cubic in its length on these.
    assert plain_number("72 clips" + " " * 2_000 + "#") is None
    assert plain_number(" " * 2_000 + "72 %" + " " * 2_000 + ".") == 72
    assert last_boxed("\\boxed{1}" + "\\boxed{{" * 5_000) == "1"


def test_completion_text_reads_standard_and_conversational_completions():
    assert completion_text("72") == "72"
    assert completion_text([{"role": "assistant", "content": "72"}]) == "72"
    assert completion_text([{"role": "assistant", "content": [{"type": "text", "text": "7"}, {"text": "2"}]}]) == "72"
    assert completion_text([]) == ""
