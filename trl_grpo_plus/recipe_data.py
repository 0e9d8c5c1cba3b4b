"""What the recipes share: the options every recipe takes (`RecipeArguments`) and a split read from local JSONL."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from trl import ScriptArguments


@dataclass
class RecipeArguments(ScriptArguments):
    """Options of every recipe, next to GRPOConfig and ModelConfig; each recipe adds its data and prompt options."""

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


def local_split(dataset_path: str, split: str, *, files: str, otherwise: str):
    """The `split` of the folder `dataset_path` (`<split>.jsonl`), and its file's path.

    Raises `FileNotFoundError` for a missing folder (saying it should hold `files`, else `otherwise`) or split file
    (listing the files that are there), and `ValueError` for an empty file."""
    import datasets

    folder = Path(dataset_path).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(
            f"--dataset_path {dataset_path!r} is not a folder. Pass the folder that holds the {files} "
            f"(<split>.jsonl, e.g. train.jsonl and test.jsonl), or {otherwise}."
        )
    file = folder / f"{split}.jsonl"
    if not file.is_file():
        found = sorted(path.name for path in folder.glob("*.jsonl")) or ["no .jsonl files"]
        raise FileNotFoundError(
            f"--dataset_path {dataset_path!r} has no {file.name} for the '{split}' split (found: "
            f"{', '.join(found)}). Add the file, or name the split with --dataset_train_split / "
            f"--dataset_test_split."
        )
    with file.open() as lines:
        empty = all(not line.strip() for line in lines)  # stops at the first row
    if empty:  # datasets fails on it deep in its JSON reader, with a bare StopIteration
        raise ValueError(
            f"{file} is empty: the '{split}' split has no rows. Fill it with one JSON object per line, or point "
            f"--dataset_path at the folder that holds the data."
        )
    return datasets.load_dataset("json", data_files=str(file), split="train"), str(file)
