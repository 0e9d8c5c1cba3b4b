"""The `math_verify` reward, and that installing the distribution makes it usable by name."""

import concurrent.futures
import itertools
import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

pytest.importorskip("math_verify", reason="needs `pip install ./plugins/trl-grpo-plus-math`")

from trl_grpo_plus_math import math_verify

from trl_grpo_plus import GRPOTrainer, PluginError, build_plugin_manager, get_registry
from trl_grpo_plus.rewards import extract_final_answer, score_batch
from trl_grpo_plus.testing import tiny_grpo_config, tiny_model, tiny_prompt_dataset, tiny_tokenizer

# `../shared` beside the checkout holds the real GSM8K test split.
GSM8K_TEST_SPLIT = Path(__file__).resolve().parents[4] / "shared" / "data" / "gsm8k" / "test.jsonl"

R1 = "<think>{reasoning}</think>\n<answer>{answer}</answer>"


def r1(answer: str, reasoning: str = "48/2 = 24 and 48 + 24 = 72, checked twice") -> str:
    return R1.format(reasoning=reasoning, answer=answer)


# (completion, gold, expected reward)
CASES = [
    # GSM8K answers in R1's <answer> tags, in every form people write numbers
    (r1("72"), "48+24=72 clips.\n#### 72", 1.0),
    (r1("0.5"), "#### 0.5", 1.0),
    (r1("3.75"), "#### 3.75", 1.0),
    (r1("-4"), "#### -4", 1.0),
    (r1("72 clips"), "#### 72", 1.0),
    (r1("18 dollars"), "#### 18", 1.0),
    (r1("$1,000"), "#### 1000", 1.0),
    (r1("1,000"), "#### 1,000", 1.0),
    (r1("50%"), "#### 50", 1.0),
    (r1("50 %"), "#### 50", 1.0),
    (r1("\\$18"), "#### 18", 1.0),
    (r1("$18.00"), "#### 18", 1.0),
    (r1("1,234,567.50 dollars."), "#### 1234567.5", 1.0),
    (r1("-$5"), "#### -5", 1.0),
    (r1("  72  "), "#### 72", 1.0),
    (r1("72."), "#### 72", 1.0),
    (r1("The answer is 72."), "#### 72", 1.0),
    (r1("\\frac{1}{2}"), "#### 0.5", 1.0),
    (r1("$\\frac{3}{4}$"), "#### 0.75", 1.0),
    # other markers, and none
    ("48 + 24 = 72\n#### 72", "#### 72", 1.0),
    ("48 + 24 = 72\n#### $1,000 dollars", "#### 1000", 1.0),
    ("so 48 + 24 = \\boxed{72}, from 48 and 24", "#### 72", 1.0),
    ("48 + 24 gives 72 clips", "#### 72", 1.0),
    ([{"role": "assistant", "content": r1("18 dollars")}], "#### 18", 1.0),
    # MATH answers in LaTeX
    (r1("\\dfrac{3}{4}"), "\\frac{3}{4}", 1.0),
    (r1("0.75"), "$\\frac{3}{4}$", 1.0),
    (r1("\\frac{\\sqrt{3}}{2}"), "\\frac{\\sqrt3}{2}", 1.0),
    (r1("2\\sqrt{3}"), "\\sqrt{12}", 1.0),
    ("Hence $x = \\boxed{\\frac{1}{2}}$.", "so the answer is $\\boxed{0.5}$", 1.0),
    (r1("(1, 2]"), "$(1,2]$", 1.0),
    (r1("(-\\infty, 3)"), "(-\\infty,3)", 1.0),
    (r1("\\{1, 2, 3\\}"), "\\{3,2,1\\}", 1.0),
    (r1("1, 2, 3"), "\\{1,2,3\\}", 1.0),
    (r1("10\\text{ cm}"), "10", 1.0),
    (r1("30^\\circ"), "30", 1.0),
    (r1("30^{\\circ}"), "$30^\\circ$", 1.0),
    (r1("\\frac{\\pi}{2}"), "\\pi/2", 1.0),
    (r1("x = 3"), "3", 1.0),
    (r1("\\text{(B)}"), "\\text{(B)}", 1.0),
    # wrong answers
    (r1("71"), "#### 72", 0.0),
    (r1("0.05"), "#### 0.5", 0.0),
    (r1("4"), "#### -4", 0.0),
    (r1("$100"), "#### 1000", 0.0),
    (r1("500%"), "#### 50", 0.0),
    (r1("71 clips"), "#### 72", 0.0),
    (r1("71"), "#### 71.5", 0.0),
    (r1("71", reasoning="48 + 24 = 72"), "#### 72", 0.0),  # the answer block counts, not the reasoning
    (r1("\\frac{1}{3}"), "#### 0.5", 0.0),
    (r1("(1, 2)"), "$(1,2]$", 0.0),
    (r1("[0, 1)"), "(0,1)", 0.0),
    (r1("\\{1, 2\\}"), "\\{1,2,3\\}", 0.0),
    (r1("2\\sqrt{2}"), "2\\sqrt{3}", 0.0),
    (r1("\\text{(C)}"), "\\text{(B)}", 0.0),
    ("48 + 24 = 72\n#### 71", "#### 72", 0.0),
    ("so \\boxed{71}, not 72", "#### 72", 0.0),
    # no answer at all
    ("", "#### 72", 0.0),
    ("I don't know.", "#### 72", 0.0),
    (r1(""), "#### 72", 0.0),
    ("<think>48 + 24 is", "#### 72", 0.0),
    ("the answer is \\boxed{", "#### 72", 0.0),
    ([], "#### 72", 0.0),
    ([{"role": "assistant", "content": None}], "#### 72", 0.0),
]


@pytest.mark.parametrize("completion, gold, expected", CASES)
def test_the_answer_the_completion_marks_is_compared_to_the_gold_one(completion, gold, expected):
    assert math_verify([completion], solution=[gold]) == [expected]


def test_the_cases_cover_right_wrong_and_missing_answers():
    assert len(CASES) >= 40
    assert {expected for _, _, expected in CASES} == {0.0, 1.0}


def test_equivalent_forms_of_the_answer_score_one():
    completions = ["so it is $\\frac{1}{2}$", "0.5", "$\\frac{2}{4}$"]
    assert math_verify(completions, solution=["$0.5$"] * 3) == [1.0, 1.0, 1.0]


def test_a_different_answer_scores_zero():
    assert math_verify(["$x = 3$"], solution=["$4$"]) == [0.0]


def test_gsm8k_gold_answers_are_read_after_the_hashes():
    assert math_verify(["The answer is 72."], answer=["48+24=72 clips.\n#### 72"]) == [1.0]


def test_rows_without_a_parseable_gold_answer_are_none():
    assert math_verify(["1"], solution=["no answer here"]) == [None]
    assert math_verify(["1"], solution=[None]) == [None]
    assert math_verify(["1"]) == [None]


def test_answer_tag_names_the_tags_the_answer_is_in():
    completion = "<reason>48 + 24</reason><final>72</final> (not 71)"
    assert math_verify([completion], answer=["#### 72"], answer_tag="final") == [1.0]
    assert math_verify([completion], answer=["#### 72"]) == [0.0]  # no <answer>: the last number, 71


def test_extract_boxed_reads_only_the_last_box():
    completions = ["<answer>71</answer> \\boxed{72}", "<answer>72</answer>", "#### 72"]
    assert math_verify(completions, answer=["#### 72"] * 3, extract="boxed") == [1.0, 0.0, 0.0]


def test_extract_last_reads_the_last_expression_ignoring_tags_and_markers():
    completions = ["<answer>71</answer> or rather 72", "<answer>72</answer> (not 71)"]
    assert math_verify(completions, answer=["#### 72"] * 2, extract="last") == [1.0, 0.0]
    assert math_verify(completions, answer=["#### 72"] * 2) == [0.0, 1.0]


@pytest.mark.parametrize(
    "options, message",
    [
        ({"extract": "box"}, "option 'extract' must be one of 'tags', 'boxed', 'last', got 'box'"),
        ({"answer_tag": ""}, "option 'answer_tag' must be a tag name such as 'answer', got ''"),
        ({"answer_tag": "<answer>"}, "option 'answer_tag' must be a tag name"),
        ({"answer_tag": "final", "extract": "boxed"}, "'answer_tag' is read only with extract='tags'"),
        ({"timeout_seconds": 0}, "option 'timeout_seconds' must be a positive integer"),
    ],
)
def test_bad_options_are_refused_before_training(options, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        math_verify.validate_options(**options)


def test_the_options_are_accepted_as_the_trainer_checks_them():
    options = {"answer_tag": "final", "extract": "tags"}
    assert score_batch(math_verify, ["<final>72</final>"], solution=["72"], options=options) == [1.0]
    with pytest.raises(PluginError, match="Bad options for reward function 'math_verify'.*'extract'"):
        score_batch(math_verify, ["72"], solution=["72"], options={"extract": "first"})


def _gsm8k_completions():
    """(completion, gold) pairs: each test-split gold answered right and wrong, in every written form and marker."""
    forms = [
        lambda v: format(v, "f"),
        lambda v: format(v, ",f"),
        lambda v: f"${v:,f}",
        lambda v: f"\\${v:f}",
        lambda v: f"{v:,f} dollars",
        lambda v: f"{v:f} clips.",
        lambda v: f"{v:f}%",
        lambda v: f"{v:,.2f}" if v == round(v, 2) else format(v, "f"),
    ]
    markers = [
        lambda reasoning, answer: R1.format(reasoning=reasoning, answer=answer),
        lambda reasoning, answer: f"{reasoning}\n#### {answer}",
        lambda reasoning, answer: f"{reasoning}\nSo the answer is \\boxed{{{answer}}}.",
    ]
    perturbations = [lambda v: v + 1, lambda v: v - 1, lambda v: v * 10, lambda v: v / 10, lambda v: -v]
    styles = list(itertools.product(forms, markers))
    rows = [json.loads(line) for line in GSM8K_TEST_SPLIT.read_text().splitlines()]
    for i, row in enumerate(rows):
        reasoning, gold = row["answer"].rsplit("####", 1)[0].strip(), row["answer"]
        value = extract_final_answer(gold)
        wrong = perturbations[i % len(perturbations)](value)
        wrong = wrong if wrong != value else value + 1
        for answer, (form, marker) in ((value, styles[i % len(styles)]), (wrong, styles[(i + 7) % len(styles)])):
            yield marker(reasoning, form(answer)), gold


@pytest.mark.skipif(not GSM8K_TEST_SPLIT.is_file(), reason=f"{GSM8K_TEST_SPLIT} is absent (it is in ../shared)")
def test_math_verify_agrees_with_accuracy_on_plain_numbers_for_the_gsm8k_test_split():
    completions, golds = zip(*_gsm8k_completions(), strict=True)
    by_math_verify = math_verify(list(completions), answer=list(golds))
    accuracy = get_registry(build_plugin_manager()).reward_functions["accuracy"]  # the built-in reward
    by_accuracy = accuracy(list(completions), answer=list(golds))
    disagreements = [
        (completion.rsplit("\n", 1)[-1], gold.rsplit("####", 1)[1], ours, theirs)
        for completion, gold, ours, theirs in zip(completions, golds, by_math_verify, by_accuracy, strict=True)
        if ours != theirs
    ]
    assert disagreements == []
    assert by_math_verify == [1.0, 0.0] * (len(completions) // 2)


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


def test_it_scores_off_the_main_thread_where_math_verify_cannot_time_itself_out():
    # trl-grpo-plus runs sync rewards in worker threads; math-verify's own timeout needs signal.alarm there.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        scored = pool.submit(
            math_verify, [r1("72"), r1("\\frac{1}{2}"), r1("7")], solution=["72", "0.5", "8"]
        ).result()
    assert scored == [1.0, 1.0, 0.0]


def test_a_dataset_without_solution_or_answer_is_refused_before_the_model_loads(tmp_path):
    from datasets import Dataset

    rows = Dataset.from_list([{"prompt": "1+1=", "gold": "2"}] * 4)
    with pytest.raises(ValueError, match=r"'math_verify' .* reads the dataset column 'solution' or 'answer'"):
        GRPOTrainer(  # by model id: the refusal comes before TRL would load it
            model="no-such-model-is-loaded", reward_funcs=["math_verify"], args=tiny_grpo_config(tmp_path),
            train_dataset=rows,
        )  # fmt: skip
