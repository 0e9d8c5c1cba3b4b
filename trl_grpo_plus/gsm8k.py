"""GSM8K for the recipe: loading (Hub or local JSONL), checking the columns, and turning questions into prompts.

Rows keep GSM8K's ``answer`` column (``"...working... #### 72"``), which is what the `accuracy` and `math_verify`
rewards read as the gold answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from trl import ScriptArguments

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
class GSM8KScriptArguments(ScriptArguments):
    """The GSM8K recipe's own options, next to GRPOConfig and ModelConfig on its command line and in its YAML."""

    dataset_name: str = field(default=DATASET_NAME, metadata={"help": "Hub dataset to train and evaluate on."})
    dataset_config: str = field(default=DATASET_CONFIG, metadata={"help": "Configuration of the Hub dataset."})
    dataset_path: str | None = field(
        default=None,
        metadata={"help": "Folder with local JSONL files <split>.jsonl (question, answer), used instead of the Hub."},
    )
    system_prompt: str = field(default=SYSTEM_PROMPT, metadata={"help": "System prompt ('' for none)."})
    train_limit: int | None = field(default=None, metadata={"help": "Train on the first N problems only."})
    eval_only: bool = field(default=False, metadata={"help": "Evaluate the model and stop, without training."})
    eval_limit: int | None = field(
        default=None, metadata={"help": "Evaluate on the first N test problems (default all; 0 skips evaluation)."}
    )
    eval_batch_size: int = field(
        default=64, metadata={"help": "Prompts per generate call in evaluation, per process."}
    )
    eval_max_new_tokens: int | None = field(
        default=None, metadata={"help": "Token budget of an evaluation answer (default: max_completion_length)."}
    )

    def __post_init__(self):
        smallest = {"train_limit": 1, "eval_limit": 0, "eval_batch_size": 1, "eval_max_new_tokens": 1}
        for name, least in smallest.items():
            value = getattr(self, name)
            if value is not None and value < least:
                raise ValueError(f"--{name} must be at least {least}, got {value}.")
        if self.eval_only and self.eval_limit == 0:
            raise ValueError("--eval_only with --eval_limit 0 has nothing to do: drop one of them.")


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
        folder = Path(dataset_path).expanduser()
        if not folder.is_dir():
            raise FileNotFoundError(
                f"--dataset_path {dataset_path!r} is not a folder. Pass the folder that holds the GSM8K JSONL files "
                f"(<split>.jsonl, e.g. train.jsonl and test.jsonl), or leave it out to download {dataset_name}."
            )
        file = folder / f"{split}.jsonl"
        if not file.is_file():
            found = sorted(path.name for path in folder.glob("*.jsonl")) or ["no .jsonl files"]
            raise FileNotFoundError(
                f"--dataset_path {dataset_path!r} has no {file.name} for the '{split}' split (found: "
                f"{', '.join(found)}). Add the file, or name the split with --dataset_train_split / "
                f"--dataset_test_split."
            )
        dataset = datasets.load_dataset("json", data_files=str(file), split="train")
        source = str(file)
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
