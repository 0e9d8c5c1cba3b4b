"""GSM8K for the recipe: loading (Hub or local JSONL), checking the columns, and turning questions into prompts.

Rows keep GSM8K's ``answer`` column (``"...working... #### 72"``), which is what the `accuracy` and `math_verify`
rewards read as the gold answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .recipe_data import RecipeArguments, local_split

DATASET_NAME = "openai/gsm8k"
DATASET_CONFIG = "main"
REQUIRED_COLUMNS = ("question", "answer")

# DeepSeek-R1's prompt: the `format` reward checks exactly these tags, and `accuracy` reads the <answer> tags.
SYSTEM_PROMPT = (
    "A conversation between User and Assistant. The user asks a math question, and the Assistant solves it. The "
    "Assistant first thinks about the reasoning process step by step and then gives the final answer as a number. "
    "The reasoning is enclosed within <think> </think> tags and the answer within <answer> </answer> tags, i.e., "
    "<think> reasoning here </think> <answer> 42 </answer>."
)


@dataclass
class GSM8KScriptArguments(RecipeArguments):
    """The GSM8K recipe's own options, next to GRPOConfig and ModelConfig on its command line and in its YAML."""

    dataset_name: str = field(default=DATASET_NAME, metadata={"help": "Hub dataset to train and evaluate on."})
    dataset_config: str = field(default=DATASET_CONFIG, metadata={"help": "Configuration of the Hub dataset."})
    dataset_path: str | None = field(
        default=None,
        metadata={"help": "Folder with local JSONL files <split>.jsonl (question, answer), used instead of the Hub."},
    )
    system_prompt: str = field(default=SYSTEM_PROMPT, metadata={"help": "System prompt ('' for none)."})


def load_gsm8k(
    split: str,
    *,
    dataset_path: str | None = None,
    dataset_name: str = DATASET_NAME,
    dataset_config: str | None = DATASET_CONFIG,
    limit: int | None = None,
):
    """One split of GSM8K: from `dataset_path` (a folder holding ``<split>.jsonl``) when given, else from the Hub.

    Raises `FileNotFoundError` for a missing folder or file and `ValueError` for rows without ``question`` and
    ``answer``, each saying what to pass instead. `limit` keeps the first rows only.
    """
    import datasets

    if dataset_path is not None:
        dataset, source = local_split(
            dataset_path, split, files="GSM8K JSONL files", otherwise=f"leave it out to download {dataset_name}"
        )
    else:
        dataset = datasets.load_dataset(dataset_name, dataset_config, split=split)
        source = f"{dataset_name} ({dataset_config}, {split})"
    missing = [column for column in REQUIRED_COLUMNS if column not in dataset.column_names]
    if missing:
        raise ValueError(
            f"{source} has no {' or '.join(repr(c) for c in missing)} column (it has: "
            f"{', '.join(dataset.column_names)}). GSM8K rows need 'question' (the problem) and 'answer' (working, "
            f"then '#### <number>'); rename the columns to match."
        )
    if limit is not None:
        dataset = dataset.select(range(min(limit, len(dataset))))
    return dataset


def as_prompts(dataset, tokenizer, system_prompt: str = SYSTEM_PROMPT):
    """Add a ``prompt`` column: a conversation when the tokenizer has a chat template, plain text otherwise.

    Base models without a chat template get ``"<system prompt>\\n\\nQuestion: ...\\nAnswer: "``, the usual few-line
    frame for completion models. Other columns (``answer`` included) stay, for the rewards.
    """
    if getattr(tokenizer, "chat_template", None):

        def to_prompt(row):
            messages = [{"role": "user", "content": row["question"]}]
            if system_prompt:
                messages.insert(0, {"role": "system", "content": system_prompt})
            return {"prompt": messages}

    else:
        frame = f"{system_prompt}\n\n" if system_prompt else ""

        def to_prompt(row):
            return {"prompt": f"{frame}Question: {row['question']}\nAnswer: "}

    return dataset.map(to_prompt)
