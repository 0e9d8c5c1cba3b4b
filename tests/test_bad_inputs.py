"""The bad-input catalog: each user mistake, through the Python API, a YAML config or the command line, gives one
clear error, saying what is wrong and how to fix it, before any model is loaded or any step runs.

`MISTAKES` is the one table; README's "Bad inputs: what each mistake says" lists the same ids. Every case runs with
model loading and training replaced by a tripwire (`Tripwire`, a `BaseException` no `except Exception` swallows),
and the trainer is always given a model to load (an id or the tiny checkpoint folder), so a check that came too late
meets the tripwire instead of the expected error; `test_a_valid_run_reaches_the_tripwire` shows it is armed on each
surface. Command-line cases run the recipe (`recipes/gsm8k.py`) and `trl-grpo-plus grpo` in-process.
"""

from __future__ import annotations

import json
import re
import runpy
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import transformers
import trl
import yaml
from datasets import Dataset

from trl_grpo_plus import DuplicateComponentError, GRPOTrainer, PluginError, UnknownComponentError
from trl_grpo_plus.demo.word_problems import word_problems
from trl_grpo_plus.testing import save_tiny_checkpoint, tiny_grpo_config, tiny_prompt_dataset

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "gsm8k.py"
MODEL_ID = "no-such-org/never-loaded"  # what the Python cases pass: loading it would meet the tripwire
GSM8K_WITHOUT_COLUMNS = [{"problem": "1+1?", "solution": "2"}] * 4
PROMPTS_WITH_ANSWERS = [{"prompt": f"{a}+1=", "answer": f"#### {a + 1}"} for a in range(8)]  # as `trl grpo` reads


class Tripwire(BaseException):
    """A model load or a training step was reached: the mistake was not refused before it."""


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A tiny checkpoint folder: the recipe reads its tokenizer before the trainer; its model is never loaded."""
    return Path(save_tiny_checkpoint(tmp_path_factory.mktemp("model") / "tiny"))


@pytest.fixture(autouse=True)
def tripwires(monkeypatch):
    def model_load(*args, **kwargs):
        raise Tripwire("a model was loaded")

    def step(*args, **kwargs):
        raise Tripwire("training started")

    monkeypatch.setattr(transformers.PreTrainedModel, "from_pretrained", classmethod(model_load))
    monkeypatch.setattr("trl.trainer.grpo_trainer.create_model_from_path", model_load)
    monkeypatch.setattr(transformers.Trainer, "train", step)
    monkeypatch.setattr(trl.GRPOTrainer, "_generate_and_score_completions", step)
    # `trl-grpo-plus grpo`'s script installs our trainer as `trl.GRPOTrainer` for TRL's `main`: undone after each test
    monkeypatch.setattr(trl, "GRPOTrainer", trl.GRPOTrainer)


class Kit:
    """The ways in that a case uses to make its mistake, each as a user would: the trainer from Python, the recipe
    with flags or a YAML config, `trl-grpo-plus grpo`, and installed plugins."""

    def __init__(self, tmp_path: Path, model_dir: Path, monkeypatch, installed_distribution) -> None:
        self.tmp_path = tmp_path
        self.model_dir = model_dir
        self.monkeypatch = monkeypatch
        self.installed_distribution = installed_distribution

    # --- Python -------------------------------------------------------------------------------------------------

    def config(self, **overrides):
        return tiny_grpo_config(self.tmp_path / "out", **overrides)

    def train(self, reward_funcs=("accuracy",), dataset=None, trainer_kwargs=None, **config) -> None:
        """Build the trainer with the model given by id, as users start runs."""
        GRPOTrainer(
            model=MODEL_ID,
            reward_funcs=list(reward_funcs),
            args=self.config(**config),
            train_dataset=tiny_prompt_dataset() if dataset is None else dataset,
            **(trainer_kwargs or {}),
        )

    def plugin(self, dist: str, module: str, source: str) -> None:
        self.installed_distribution(dist, module, source)

    # --- files --------------------------------------------------------------------------------------------------

    def folder(self, name: str = "gsm8k", rows: list[dict] | None = None, splits=("train", "test")) -> Path:
        """A dataset folder of `<split>.jsonl` files, GSM8K-format rows by default."""
        folder = self.tmp_path / name
        folder.mkdir(exist_ok=True)
        rows = word_problems(8, seed=0) if rows is None else rows
        for split in splits:
            (folder / f"{split}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
        return folder

    def yaml(self, **keys) -> Path:
        path = self.tmp_path / "run.yaml"
        path.write_text(yaml.safe_dump(keys))
        return path

    # --- command lines ------------------------------------------------------------------------------------------

    def recipe_settings(self) -> dict:
        return {
            "model_name_or_path": str(self.model_dir),
            "dataset_path": str(self.folder()),
            "output_dir": str(self.tmp_path / "out"),
            "use_cpu": True,
            "bf16": False,
            "report_to": "none",
            "per_device_train_batch_size": 4,
            "num_generations": 4,
            "max_completion_length": 8,
            "eval_limit": 0,
        }

    def recipe(self, *argv: str, **settings) -> None:
        """`python recipes/gsm8k.py` with the recipe's usual settings as flags, `settings` over them, then `argv`."""
        flags = []
        for key, value in {**self.recipe_settings(), **settings}.items():
            flags += [f"--{key}", str(value)] if value is not True else [f"--{key}"]
        self.run_recipe(*flags, *argv)

    def recipe_yaml(self, **keys) -> None:
        """`python recipes/gsm8k.py --config run.yaml`, the recipe's usual settings and `keys` in the file."""
        self.run_recipe("--config", str(self.yaml(**{**self.recipe_settings(), **keys})))

    def run_recipe(self, *argv: str) -> None:
        self.monkeypatch.setattr(sys, "argv", [str(RECIPE), *argv])
        runpy.run_path(str(RECIPE), run_name="__main__")

    def grpo_command(self, *argv: str) -> None:
        """`trl-grpo-plus grpo ...`: parsed as the command parses it, then the script it launches, in this process."""
        from accelerate.commands import launch

        from trl_grpo_plus.cli import main
        from trl_grpo_plus.scripts import grpo as script

        def launch_in_process(args) -> None:
            script.main(*script.make_parser().parse_args_and_config(args.training_script_args, False, False))

        self.monkeypatch.setattr(launch, "launch_command", launch_in_process)
        main(["grpo", *argv])

    def grpo_settings(self, data: Path) -> list[str]:
        return [
            "--model_name_or_path", str(self.model_dir), "--dataset_name", str(data),
            "--output_dir", str(self.tmp_path / "out"), "--use_cpu", "--bf16", "false", "--report_to", "none",
            "--per_device_train_batch_size", "4", "--num_generations", "4", "--max_completion_length", "8",
        ]  # fmt: skip


@dataclass(frozen=True)
class Mistake:
    """One user mistake: how to make it, and the error it must give.

    `says` must match the error's message (for a command-line error, what the command printed): what is wrong and
    how to fix it. `trl_says` marks the cases where TRL's own message is already clear and kept."""

    id: str
    surface: str  # "python", "yaml" or "cli"
    make: Callable[[Kit], object]
    error: type[BaseException]
    says: str
    trl_says: bool = False


def plugin_source(*rewards: str, prelude: str = "") -> str:
    registrations = "".join(f"    register(_score, name={name!r})\n" for name in rewards)
    return (
        f"{prelude}from trl_grpo_plus import hookimpl\n"
        "def _score(completions, **kwargs):\n    return [0.0] * len(completions)\n"
        f"@hookimpl\ndef register_reward_functions(register):\n{registrations}"
    )


def _plain_reward(completions, **kwargs):
    return [0.0] * len(completions)


def _tool(query: str) -> str:
    """Look something up.

    Args:
        query: what to look up.
    """
    return query


def _two_plugins_one_name(kit: Kit) -> None:
    kit.plugin("trl-grpo-plus-judge-a", "judge_a_plugin", plugin_source("judge"))
    kit.plugin("trl-grpo-plus-judge-b", "judge_b_plugin", plugin_source("judge"))
    kit.train(reward_funcs=["judge"])


def _plugin_fails_to_import(kit: Kit) -> None:
    kit.plugin("trl-grpo-plus-broken", "broken_plugin", plugin_source("judge", prelude="import judge_sdk_xyz\n"))
    kit.train(reward_funcs=["judge"])


def _blocked_plugin_named(kit: Kit) -> None:
    kit.plugin("trl-grpo-plus-judges", "judges_plugin", plugin_source("judge"))
    kit.monkeypatch.setenv("TRL_GRPO_PLUS_BLOCK_PLUGINS", "judges_plugin")
    kit.train(reward_funcs=["judge"])


def _needs_liger(kit: Kit) -> None:
    pytest.importorskip("liger_kernel")
    kit.config(use_liger_loss=True, top_entropy_quantile=0.2)


def _trl_reward_without_its_column(kit: Kit) -> None:
    data = kit.folder("no-solution", rows=PROMPTS_WITH_ANSWERS)
    kit.grpo_command(*kit.grpo_settings(data), "--reward_funcs", "accuracy_reward")


MISTAKES = [
    # --- names of components --------------------------------------------------------------------------------------
    Mistake(
        "unknown-reward-name", "python", lambda kit: kit.train(reward_funcs=["acuracy"]), UnknownComponentError,
        r"Unknown reward function 'acuracy'\. Did you mean 'accuracy'\? Available reward functions: .*accuracy.*"
        r"`trl-grpo-plus plugins` lists",
    ),
    Mistake(
        "unknown-estimator-name", "python", lambda kit: kit.train(advantage_estimator="rlo"), UnknownComponentError,
        r"Unknown advantage estimator 'rlo'\. Did you mean 'rloo'\? Available advantage estimators: .*grpo",
    ),
    Mistake(
        "unknown-schedule-name", "yaml", lambda kit: kit.recipe_yaml(group_size_schedule="linaer"),
        UnknownComponentError,
        r"Unknown group-size schedule 'linaer'\. Did you mean 'linear'\? Available group-size schedules: .*constant",
    ),
    # --- options --------------------------------------------------------------------------------------------------
    Mistake(
        "misspelled-option", "python",
        lambda kit: kit.train(reward_funcs=["format"], reward_kwargs={"format": {"answer_tags": "a"}}), PluginError,
        r"Reward function 'format' \(from plugin 'rewards'\) has no option 'answer_tags'\. Did you mean "
        r"'answer_tag'\?.*Fix GRPOConfig\.reward_kwargs\['format'\]",
    ),
    Mistake(
        "missing-required-option", "python", lambda kit: kit.train(reward_funcs=["overlong_penalty"]), PluginError,
        r"'overlong_penalty'.* needs option 'cache_length', 'max_length'\. Set it in "
        r"GRPOConfig\.reward_kwargs\['overlong_penalty'\]",
    ),
    Mistake(
        "options-for-a-reward-not-in-use", "python",
        lambda kit: kit.train(reward_kwargs={"format": {"answer_tag": "a"}}), PluginError,
        r"reward_kwargs has options for 'format', which is not among the rewards in use.*add the reward to "
        r"reward_funcs / reward_plugins, or remove its options",
    ),
    Mistake(
        "options-for-a-plain-callable", "python",
        lambda kit: kit.train(reward_funcs=[_plain_reward], reward_kwargs={"_plain_reward": {"scale": 2}}),
        PluginError, r"options for '_plain_reward', a callable.*functools\.partial",
    ),
    Mistake(
        "options-for-no-schedule", "yaml",
        lambda kit: kit.recipe_yaml(group_size_kwargs={"start": 2, "end": 8, "steps": 10}), PluginError,
        r"group_size_kwargs sets 'end', 'start', 'steps', but group_size_schedule is 'constant'.*"
        r"e\.g\. group_size_schedule='linear'",
    ),
    Mistake(
        "policy-for-a-reward-not-in-use", "yaml", lambda kit: kit.recipe_yaml(reward_policies={"judge": {"timeout": 5}}),
        PluginError, r"reward_policies has a policy for 'judge', which is not among the reward functions in use.*"
        r"Fix the name, or remove the entry",
    ),
    Mistake(
        "liger-options-without-liger", "python", lambda kit: kit.config(liger_chunk_size=4), ValueError,
        r"liger_chunk_size and liger_compile configure the fused loss, which is off\. Set use_liger_loss=True, or "
        r"drop them",
    ),
    Mistake(
        "dynamic-sampling-without-filtering", "python", lambda kit: kit.config(dynamic_sampling=True), ValueError,
        r"dynamic_sampling .* needs filter_zero_variance_groups=True\. Set both, or neither",
    ),
    Mistake(
        "reward-kwargs-not-a-mapping", "yaml", lambda kit: kit.recipe_yaml(reward_kwargs={"format": "answer"}),
        ValueError, r"reward_kwargs must map each reward name to a dict of its options, e.g\.",
    ),
    # --- values given on the command line ------------------------------------------------------------------------
    Mistake(
        "json-option-not-json", "cli", lambda kit: kit.recipe("--reward_kwargs", "{format: {answer_tag: a}}"),
        ValueError, r"reward_kwargs is not valid JSON \(.*\): '\{format: .*'\. Give a JSON object with keys and "
        r"strings in double quotes",
    ),
    Mistake(
        "list-given-comma-separated", "cli",
        lambda kit: kit.recipe("--reward_plugins", "accuracy", "format", "--reward_weights", "1.0,0.2"), SystemExit,
        r"--reward_weights.*invalid float value: '1\.0,0\.2'\. --reward_weights takes a list: give its values "
        r"separated by spaces, not commas \(--reward_weights 1\.0 0\.2; in YAML, reward_weights: \[1\.0, 0\.2\]\)",
    ),
    Mistake(
        "list-given-comma-separated-in-yaml", "yaml",
        lambda kit: kit.recipe_yaml(reward_plugins=["accuracy", "format"], reward_weights="1.0,0.2"), SystemExit,
        r"invalid float value: '1\.0,0\.2'\. --reward_weights takes a list.*in YAML, reward_weights: \[1\.0, 0\.2\]",
    ),
    Mistake(
        "wrong-type-on-the-command-line", "cli", lambda kit: kit.recipe("--num_generations", "four"), SystemExit,
        r"--num_generations.*invalid int value: 'four'\. --num_generations takes int values",
    ),
    Mistake(
        "misspelled-flag", "cli", lambda kit: kit.recipe("--reward_plugns", "accuracy"), SystemExit,
        r"unknown option --reward_plugns \(did you mean --reward_plugins\?\)\. Fix the spelling, or remove it",
    ),
    Mistake(
        "misspelled-yaml-key", "yaml", lambda kit: kit.recipe_yaml(reward_plugin=["accuracy"]), SystemExit,
        r"unknown key 'reward_plugin' in .*run\.yaml \(did you mean 'reward_plugins'\?\)\. Fix the spelling",
    ),
    Mistake(
        "bad-option-refused-before-launch", "cli",
        lambda kit: kit.grpo_command(*kit.grpo_settings(kit.folder()), "--reward_on_error", "ignore"), SystemExit,
        r"reward_on_error must be 'raise', 'skip' or a number \(the score a failed completion gets\); got 'ignore'",
    ),
    # --- batch arithmetic ---------------------------------------------------------------------------------------
    Mistake(
        "generation-batch-not-divisible-into-groups", "python",
        lambda kit: kit.config(per_device_train_batch_size=6, num_generations=4), ValueError,
        r"The generation batch holds 6 completions \(per_device_train_batch_size=6 .*\), which does not split into "
        r"whole groups of num_generations=4\. .*e\.g\. per_device_train_batch_size=8",
    ),
    Mistake(
        "generation-batch-size-not-divisible-into-groups", "python",
        lambda kit: kit.config(per_device_train_batch_size=4, num_generations=8, generation_batch_size=12),
        ValueError, r"generation_batch_size=12 does not split into whole groups of num_generations=8\. Set "
        r"generation_batch_size to a multiple of both 8 and the global batch size .*e\.g\. 16",
    ),
    Mistake(
        "generation-batch-size-not-divisible-into-micro-batches", "python",
        lambda kit: kit.config(per_device_train_batch_size=8, generation_batch_size=12), ValueError,
        r"generation_batch_size=12 does not split into whole micro-batches of the global batch size 8 .* Set it to a "
        r"multiple of 8 that also holds whole groups of num_generations=4, e\.g\. 16",
    ),
    Mistake(
        "one-generation-per-prompt", "python", lambda kit: kit.config(num_generations=1), ValueError,
        r"GRPO requires at least 2 generations per prompt to calculate the advantages\. You provided 1", trl_says=True,
    ),
    Mistake(
        "schedule-cannot-fit-the-budget", "yaml",
        lambda kit: kit.recipe_yaml(group_size_schedule="linear", group_size_kwargs={"start": 4, "end": 16, "steps": 10}),
        PluginError, r"Group-size schedule 'linear' .* cannot size the batch at step 1: group size 5 does not fit a "
        r"generation batch of 4 completions; raise generation_batch_size .* to at least 5",
    ),
    Mistake(
        "max-completion-length-zero", "cli", lambda kit: kit.recipe("--max_completion_length", "0"), ValueError,
        r"max_completion_length must be a number of tokens >= 1 .*, got 0\. Set it to the completions' budget",
    ),
    Mistake(
        "checkpoint-that-does-not-exist", "cli", lambda kit: kit.recipe("--resume_from_checkpoint", "out/checkpoint-50"),
        ValueError, r"resume_from_checkpoint='out/checkpoint-50' does not exist\. Give a checkpoint folder .*or True",
    ),
    # --- features that do not combine ---------------------------------------------------------------------------
    Mistake(
        "filtering-with-tools", "python",
        lambda kit: kit.train(filter_zero_variance_groups=True, trainer_kwargs={"tools": [_tool]}), ValueError,
        r"filter_zero_variance_groups is not supported with `tools`.*Turn filter_zero_variance_groups .* off",
    ),
    Mistake(
        "liger-loss-with-an-entropy-option", "python", _needs_liger, ValueError,
        r"use_liger_loss=True cannot compute TRL's loss with top_entropy_quantile < 1.*Drop that setting, or set "
        r"use_liger_loss=False",
    ),
    # --- data ---------------------------------------------------------------------------------------------------
    Mistake(
        "missing-dataset-path", "cli", lambda kit: kit.recipe(dataset_path=kit.tmp_path / "no-such-folder"),
        FileNotFoundError, r"--dataset_path '.*no-such-folder' is not a folder\. Pass the folder that holds",
    ),
    Mistake(
        "missing-split", "cli", lambda kit: kit.recipe("--dataset_train_split", "training"), FileNotFoundError,
        r"has no training\.jsonl for the 'training' split \(found: test\.jsonl, train\.jsonl\)\. Add the file, or "
        r"name the split with --dataset_train_split",
    ),
    Mistake(
        "empty-split-file", "cli", lambda kit: kit.recipe(dataset_path=kit.folder("empty", rows=[])), ValueError,
        r"train\.jsonl is empty: the 'train' split has no rows\. Fill it with one JSON object per line",
    ),
    Mistake(
        "recipe-rows-without-question-and-answer", "cli",
        lambda kit: kit.recipe(dataset_path=kit.folder("other", rows=GSM8K_WITHOUT_COLUMNS)), ValueError,
        r"has no 'question' or 'answer' column \(it has: problem, solution\)\..*rename the columns to match",
    ),
    Mistake(
        "rows-without-the-rewards-column", "python",
        lambda kit: kit.train(dataset=Dataset.from_list([{"prompt": "1+1=", "result": "2"}] * 4)), ValueError,
        r"Reward function 'accuracy' .* reads the dataset column 'answer' or 'solution', which train_dataset does "
        r"not have \(it has: prompt, result\)\. Add that column",
    ),
    Mistake(
        "trl-reward-without-its-column", "cli", _trl_reward_without_its_column, ValueError,
        r"Reward function 'accuracy_reward' .* reads the dataset column 'solution', which train_dataset does not have "
        r"\(it has: prompt, answer\)",
    ),
    Mistake(
        "remove-unused-columns-drops-the-rewards-column", "python",
        lambda kit: kit.train(remove_unused_columns=True), ValueError,
        r"remove_unused_columns=True drops every dataset column but prompt.*would not get 'answer'\. Set "
        r"remove_unused_columns=False",
    ),
    Mistake(
        "no-prompt-column", "python",
        lambda kit: kit.train(dataset=Dataset.from_list([{"question": "1+1=", "answer": "2"}] * 4)), ValueError,
        r"train_dataset has no 'prompt' column \(it has: question, answer\).*dataset\.rename_column\('question', "
        r"'prompt'\)",
    ),
    Mistake(
        "empty-dataset", "python", lambda kit: kit.train(dataset=tiny_prompt_dataset().select([])), ValueError,
        r"train_dataset is empty \(0 rows\).*Pass a dataset with prompts",
    ),
    Mistake(
        "dataset-smaller-than-a-generation-batch", "cli",
        lambda kit: kit.recipe("--train_limit", "1", "--per_device_train_batch_size", "8"), ValueError,
        r"train_dataset has 1 prompt\(s\), fewer than one generation batch takes \(2: generation_batch_size=8 / "
        r"num_generations=4\).*train 0 steps\. Add prompts, or make the batch smaller",
    ),
    Mistake(
        "reward-weights-of-another-length", "python", lambda kit: kit.train(reward_weights=[1.0, 0.5]), ValueError,
        r"reward_weights has 2 weight\(s\) for 1 trained reward function\(s\): give one weight per reward",
    ),
    Mistake(
        "no-reward-function", "python", lambda kit: kit.train(reward_funcs=[]), ValueError,
        r"No reward source provided: .*Pass reward_funcs=\[\.\.\.\] .* set reward_plugins",
    ),
    # --- plugins ------------------------------------------------------------------------------------------------
    Mistake(
        "plugin-fails-to-import", "python", _plugin_fails_to_import, UnknownComponentError,
        r"Unknown reward function 'judge'\..*plugin 'broken_plugin' \(from trl-grpo-plus-broken 1\.2\.3\) failed to "
        r"load: ModuleNotFoundError: No module named 'judge_sdk_xyz' \(fix that error, e\.g\. install what it failed "
        r"to import\)",
    ),
    Mistake(
        "two-plugins-register-one-name", "python", _two_plugins_one_name, DuplicateComponentError,
        r"Two plugins register a reward function named 'judge': 'judge_[ab]_plugin' \(from trl-grpo-plus-judge-[ab] "
        r"1\.2\.3\) and 'judge_[ab]_plugin' .*Uninstall or block one of them",
    ),
    Mistake(
        "blocked-plugin-named", "python", _blocked_plugin_named, UnknownComponentError,
        r"Unknown reward function 'judge'\..*plugin 'judges_plugin' \(from trl-grpo-plus-judges 1\.2\.3\) is blocked "
        r"by TRL_GRPO_PLUS_BLOCK_PLUGINS \(unblock one to use its components\)",
    ),
]  # fmt: skip


@pytest.fixture
def kit(tmp_path, model_dir, monkeypatch, installed_distribution) -> Kit:
    monkeypatch.delenv("TRL_GRPO_PLUS_BLOCK_PLUGINS", raising=False)
    monkeypatch.chdir(tmp_path)  # a run writes nothing into the checkout
    return Kit(tmp_path, model_dir, monkeypatch, installed_distribution)


def _made(mistake: Callable[[Kit], object], kit: Kit) -> BaseException:
    try:
        mistake(kit)
    except Tripwire:
        raise
    except BaseException as error:  # noqa: BLE001 (SystemExit is how a command line refuses)
        return error
    pytest.fail("no error: the mistake went through")


@pytest.mark.parametrize("mistake", MISTAKES, ids=[mistake.id for mistake in MISTAKES])
def test_each_mistake_gives_one_clear_error_before_any_model_loads(mistake, kit, capsys):
    error = _made(mistake.make, kit)
    assert isinstance(error, mistake.error), f"{type(error).__name__}: {error}"
    if isinstance(error, SystemExit):
        assert error.code == 2
        lines = [line for line in capsys.readouterr().err.splitlines() if ": error: " in line]
        assert len(lines) == 1, lines  # one short error, not the 200-line usage
        message = lines[0]
    else:
        message = str(error)
        assert "\n" not in message.strip(), message
    assert re.search(mistake.says, message), message
    if isinstance(error, SystemExit):  # the command exits with that message, no traceback
        return
    # One error of its own, not TRL's or a library's traceback with ours chained on top.
    chained = error.__cause__ or (None if error.__suppress_context__ else error.__context__)
    assert chained is None, f"chained to {chained!r}"
    raised_in = traceback.extract_tb(error.__traceback__)[-1].filename
    assert ("site-packages" in raised_in) == mistake.trl_says, raised_in


@pytest.mark.parametrize(
    "valid",
    [
        lambda kit: kit.train(),
        lambda kit: kit.recipe(),
        lambda kit: kit.recipe_yaml(),
        lambda kit: kit.grpo_command(
            *kit.grpo_settings(kit.folder("prompts", rows=PROMPTS_WITH_ANSWERS)), "--reward_funcs", "accuracy"
        ),
    ],
    ids=["python", "cli", "yaml", "trl-grpo-plus-grpo"],
)
def test_a_valid_run_reaches_the_tripwire(valid, kit):
    # The same ways in, without the mistake, get as far as loading the model: so each case above was refused
    # before that, not by the tripwire failing to fire.
    with pytest.raises(Tripwire, match="a model was loaded"):
        valid(kit)


def test_the_catalog_covers_every_surface_and_enough_mistakes():
    assert len(MISTAKES) >= 25
    assert len({mistake.id for mistake in MISTAKES}) == len(MISTAKES)
    assert {mistake.surface for mistake in MISTAKES} == {"python", "yaml", "cli"}


def test_the_readme_table_lists_exactly_the_cataloged_mistakes():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Bad inputs: what each mistake says", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([a-z0-9-]+)` \| (python|yaml|cli) \|", section, re.MULTILINE)
    assert sorted(rows) == sorted((mistake.id, mistake.surface) for mistake in MISTAKES)
