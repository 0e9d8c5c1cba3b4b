"""Reading the final answer out of a completion or a gold solution, for reward functions built in or from plugins.

A completion marks its answer in one of three ways, which these helpers find:

- R1-style tags, ``<think>…</think><answer>72</answer>`` (the recipe's prompt; the ``format`` reward checks them):
  ``answer_block``;
- MATH-style ``\\boxed{\\frac{1}{2}}``: ``last_boxed``;
- GSM8K-style ``#### 72`` on the last line: ``after_final_marker``.

``marked_answer`` tries them in that order. ``plain_number`` reads an answer that is a plain number as people
write it (``"$1,000"``, ``"72 clips"``, ``"50%"``), which is how the built-in ``accuracy`` reward compares answers;
``extract_final_answer`` is ``accuracy``'s own reading of a whole text.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

__all__ = [
    "FINAL_MARKER",
    "after_final_marker",
    "answer_block",
    "completion_text",
    "extract_final_answer",
    "last_boxed",
    "marked_answer",
    "parse_number",
    "plain_number",
]

FINAL_MARKER = "####"

# A number as people write answers: optional sign and dollar sign, thousands separators, decimals.
_NUMBER = re.compile(r"-?\$?\s?-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|-?\.\d+")
# An answer that is nothing but such a number, with a currency sign (`\$` in LaTeX), a percent sign and unit words
# around it: "$1,000", "-4", "72 clips", "18 dollars.", "50\%". A unit needs a space before it so that "2x" stays
# algebra, and a second number ("1,2,3", "3/4") makes the answer something other than a plain number.
# Each stretch of spaces has one place in the pattern, so that a long answer cannot make the match backtrack for ever.
_PLAIN_NUMBER = re.compile(
    r"\s*(?P<number>[-+]?\s?(?:\\?\$)?\s?-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|[-+]?\.\d+)"
    r"(?:\s*\\?%)?(?:\s+[A-Za-z][A-Za-z'-]*)*\s*(?:[.!]\s*)?"
)
_BOXED_OPENING = re.compile(r"\\(?:boxed|fbox)\s*\{")
# `accuracy` reads only boxes without braces inside; kept so that its scores stay what they were.
_FLAT_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")


def completion_text(completion) -> str:
    """The text of a completion, standard (a string) or conversational (a list of messages: the last one's content)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion:
        content = completion[-1].get("content", "")
        if isinstance(content, list):  # content blocks
            return "".join(block.get("text", "") for block in content if isinstance(block, dict))
        return content or ""
    return ""


def answer_block(text: str, tag: str = "answer") -> str | None:
    """What the last ``<tag>…</tag>`` block of `text` holds (``tag="answer"``: R1's answer tags); ``None`` if none."""
    blocks = re.findall(rf"<{re.escape(tag)}>(.*?)</{re.escape(tag)}>", text, re.DOTALL)
    return blocks[-1] if blocks else None


def last_boxed(text: str) -> str | None:
    """What the last ``\\boxed{…}`` (or ``\\fbox{…}``) of `text` holds, nested braces included; ``None`` if none.

    ``"so \\boxed{\\frac{1}{2}}."`` gives ``"\\frac{1}{2}"``; an unclosed box counts as none.
    """
    search_end = len(text)
    for opening in reversed(list(_BOXED_OPENING.finditer(text))):
        depth = 1
        for end in range(opening.end(), search_end):
            depth += {"{": 1, "}": -1}.get(text[end], 0)
            if depth == 0:
                return text[opening.end() : end]
        # A box left open here leaves every earlier box open past this point too: none closes after it.
        search_end = opening.start()
    return None


def after_final_marker(text: str) -> str | None:
    """The rest of the line after the last ``####`` (GSM8K's answer line), stripped; ``None`` without a marker."""
    if FINAL_MARKER not in text:
        return None
    return text.rsplit(FINAL_MARKER, 1)[1].strip().split("\n", 1)[0].strip()


def marked_answer(text: str, *, answer_tag: str = "answer") -> str | None:
    """The answer `text` marks: its last ``<answer_tag>`` block, else its last ``\\boxed{}``, else its ``####`` line.

    ``None`` when it marks none, e.g. free text such as ``"The answer is 72."``; the text is then all there is.
    """
    for found in (answer_block(text, answer_tag), last_boxed(text), after_final_marker(text)):
        if found is not None:
            return found
    return None


def parse_number(text: str) -> Decimal | None:
    """The value of a written number such as ``"$1,234.50"`` or ``"-3"``, ignoring units; ``None`` if none."""
    cleaned = text.replace("\\$", "").replace("$", "").replace(",", "").replace(" ", "")
    try:
        return Decimal(cleaned).normalize()
    except InvalidOperation:
        return None


def plain_number(answer: str) -> Decimal | None:
    """The value of an answer that is a plain number (``"$1,000"``, ``"-4"``, ``"72 clips"``, ``"50%"``), else ``None``.

    Currency signs, thousands separators, a percent sign (``50%`` reads 50, as ``accuracy`` reads it) and unit words
    after the number are ignored. Anything else is not a plain number: LaTeX (``\\frac{1}{2}``), expressions
    (``3/4``, ``2x``), several numbers (``1,2,3``), sentences (``the answer is 72``).
    """
    match = _PLAIN_NUMBER.fullmatch(answer)
    return parse_number(match["number"]) if match else None


def extract_final_answer(text: str) -> Decimal | None:
    """The final numeric answer of a GSM8K-style text (what the built-in ``accuracy`` reward compares).

    Looks, in order, after the last ``####`` marker, inside the last ``<answer>`` tags or ``\\boxed{}``, and
    finally takes the last number anywhere in the text. Returns ``None`` when there is no number.
    """
    for region, answer_comes_first in _answer_regions(text):
        numbers = _NUMBER.findall(region)
        if numbers:
            return parse_number(numbers[0] if answer_comes_first else numbers[-1])
    return None


def _answer_regions(text: str):
    # After "####" the answer comes first ("#### 72 dollars. Done in 2 steps"); elsewhere the final number counts.
    if FINAL_MARKER in text:
        yield text.rsplit(FINAL_MARKER, 1)[1], True
    block = answer_block(text)
    if block is not None:
        yield block, False
    boxes = _FLAT_BOXED.findall(text)
    if boxes:
        yield boxes[-1], False
    yield text, False
