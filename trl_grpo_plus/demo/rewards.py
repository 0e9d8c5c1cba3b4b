"""The demo's own reward, a plugin registered in code: `working`, which checks the working, not only the answer.

The demo's trained rewards (`accuracy`, `format`) read only the final `#### N`, so a model can please them without
showing how it got there. `working` is the verifier they lack: used as an audit reward (scored and logged, never
trained on) it lets the `reward_divergence` monitor see the model drop its working; trained (as `shows_working`), it makes a
healthy run.
"""

from __future__ import annotations

import re
from fractions import Fraction

from ..hookspecs import hookimpl
from ..rewards import completion_text

# "4 * 3 = 12" as the demo's tokenizer writes it back (one space between tokens), or as typed ("4*3=12")
WORKING_LINE = re.compile(r"(\d+)\s*([-+*/])\s*(\d+)\s*=\s*(\d+)")
FINAL_ANSWER = re.compile(r"####\s*(\d+)\s*$")
OPERATIONS = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: Fraction(a, b) if b else None,
}


def working(completions, **kwargs) -> list[float]:
    """1.0 when the completion shows its working: a line `a op b = c` that is arithmetically right, followed by the
    final answer `#### c` with that same `c`; else 0.0. It does not check that `a` and `b` are the problem's numbers
    (the trained `accuracy` reward already checks the answer)."""
    scores = []
    for completion in completions:
        text = completion_text(completion).strip()
        line, final = WORKING_LINE.search(text), FINAL_ANSWER.search(text)
        right = False
        if line is not None and final is not None and line.end() <= final.start():
            a, operation, b, result = line.groups()
            right = OPERATIONS[operation](int(a), int(b)) == int(result) and int(result) == int(final.group(1))
        scores.append(1.0 if right else 0.0)
    return scores


@hookimpl
def register_reward_functions(register):
    register(working)
    # The same check under a second name, for a run that trains on it while `working` audits
    register(working, name="shows_working")
