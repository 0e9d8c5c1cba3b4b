"""Synthetic grade-school word problems in GSM8K's format, for the offline demo.

Each problem is one sentence-long story with one operation (add, take away, groups of, share equally), and an
``answer`` written as GSM8K writes it: the working, then ``#### N``. The numbers and the wording are drawn at
random, so the demo can make as many fresh, held-out problems as it needs without a download.
"""

from __future__ import annotations

import random
import re

NAMES = ("Ann", "Ben", "Cal", "Dee", "Eli", "Fay", "Gus", "Ivy", "Jo", "Kim", "Lou", "Max", "Ned", "Pia", "Sam", "Tia")
THINGS = ("apples", "pens", "cards", "shells", "books", "eggs", "coins", "stamps", "cups", "toys")

PROMPT = "Q: {question}\nA:"
# Every number the problems and their answers can hold (operands, results), one token each.
LARGEST_NUMBER = 100

# (operation, story): the story's wording is what tells the operation; the numbers are drawn per operation.
STORIES = (
    ("+", "{name} has {a} {things} and gets {b} more. How many {things} does {name} have now?"),
    ("+", "{name} had {a} {things}. A friend gave {name} {b} more. How many {things} in all?"),
    ("-", "{name} has {a} {things} and gives away {b}. How many {things} are left?"),
    ("-", "{name} had {a} {things} and lost {b} of them. How many {things} does {name} have left?"),
    ("*", "{name} buys {a} bags with {b} {things} in each. How many {things} is that?"),
    ("*", "{name} has {a} boxes of {b} {things}. How many {things} in total?"),
    ("/", "{name} shares {a} {things} equally among {b} friends. How many {things} does each get?"),
)


def _operands(operation: str, rng: random.Random) -> tuple[int, int, int]:
    if operation == "+":
        a, b = rng.randint(1, 6), rng.randint(1, 6)
        return a, b, a + b
    if operation == "-":
        a = rng.randint(2, 10)
        b = rng.randint(1, a - 1)
        return a, b, a - b
    if operation == "*":
        a, b = rng.randint(2, 4), rng.randint(2, 4)
        return a, b, a * b
    b, result = rng.randint(2, 4), rng.randint(2, 4)
    return b * result, b, result


def word_problem(rng: random.Random) -> dict[str, str]:
    """One problem: ``{"question": ..., "answer": "<a> <op> <b> = <n>\\n#### <n>"}``."""
    operation, story = rng.choice(STORIES)
    a, b, result = _operands(operation, rng)
    question = story.format(name=rng.choice(NAMES), things=rng.choice(THINGS), a=a, b=b)
    return {"question": question, "answer": f"{a}{operation}{b}={result}\n#### {result}"}


def word_problems(count: int, *, seed: int, exclude: set[str] = frozenset()) -> list[dict[str, str]]:
    """`count` distinct problems drawn with `seed`, none of whose questions is in `exclude` (e.g. a test split)."""
    rng = random.Random(seed)
    problems: dict[str, dict[str, str]] = {}
    for _ in range(100 * count):
        if len(problems) == count:
            break
        problem = word_problem(rng)
        if problem["question"] not in exclude:
            problems.setdefault(problem["question"], problem)
    if len(problems) < count:
        raise ValueError(f"could only draw {len(problems)} distinct word problems, asked for {count}")
    return list(problems.values())


def prompt(question: str) -> str:
    """The plain-text prompt the demo's model answers."""
    return PROMPT.format(question=question)


def word_problem_tokenizer():
    """A word-level tokenizer whose vocabulary is exactly the problems' words, numbers and symbols.

    One token per word and per number keeps sequences short (about 20 prompt tokens), which is what makes GRPO
    on CPU fast; pieces are rejoined with spaces on decoding (``"3 + 4 = 7 #### 7"``), which the rewards read fine.
    """
    from tokenizers import pre_tokenizers

    from ..testing.models import word_level_tokenizer

    words = set(NAMES) | set(THINGS) | {str(n) for n in range(LARGEST_NUMBER + 1)} | {"+", "-", "*", "/", "=", "####"}
    for text in (PROMPT, *(story for _, story in STORIES)):
        words |= set(_WORD.findall(re.sub(r"\{\w+\}", " ", text)))

    def split_words(backend):
        backend.pre_tokenizer = pre_tokenizers.Whitespace()  # the same split as _WORD

    return word_level_tokenizer(sorted(words), split_words)


_WORD = re.compile(r"\w+|[^\w\s]+")
