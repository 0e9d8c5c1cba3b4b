"""The demo's synthetic word problems: GSM8K's answer format, right answers, held-out sets kept apart."""

import re

from trl_grpo_plus.default_plugins.rewards import accuracy, extract_final_answer
from trl_grpo_plus.demo.word_problems import prompt, word_problem_tokenizer, word_problems


def test_answers_are_the_working_then_the_gsm8k_final_answer_marker():
    for problem in word_problems(200, seed=0):
        working, final = problem["answer"].split("\n#### ")
        a, operation, b, result = re.fullmatch(r"(\d+)([-+*/])(\d+)=(\d+)", working).groups()
        assert eval(f"{a}{operation}{b}") == int(result) == int(final)  # noqa: S307 - digits and one operator


def test_the_accuracy_reward_scores_a_gold_answer_as_correct():
    problems = word_problems(50, seed=1)
    answers = [problem["answer"] for problem in problems]
    assert accuracy(completions=answers, answer=answers) == [1.0] * 50


def test_problems_are_distinct_and_exclude_the_held_out_questions():
    held_out = {problem["question"] for problem in word_problems(100, seed=7)}
    train = word_problems(500, seed=0, exclude=held_out)
    questions = [problem["question"] for problem in train]
    assert len(set(questions)) == 500 and not held_out & set(questions)


def test_the_same_seed_draws_the_same_problems():
    assert word_problems(20, seed=3) == word_problems(20, seed=3) != word_problems(20, seed=4)


def test_the_tokenizer_covers_every_word_and_decodes_answers_the_rewards_read():
    tokenizer = word_problem_tokenizer()
    for problem in word_problems(300, seed=2):
        ids = tokenizer(prompt(problem["question"]) + " " + problem["answer"], add_special_tokens=False)["input_ids"]
        assert tokenizer.unk_token_id not in ids
        decoded = tokenizer.decode(tokenizer(problem["answer"], add_special_tokens=False)["input_ids"])
        assert extract_final_answer(decoded) == extract_final_answer(problem["answer"])
