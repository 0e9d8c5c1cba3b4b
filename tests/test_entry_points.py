"""Installed plugins: discovery through the `trl_grpo_plus` entry-point group, its controls and failures."""

import subprocess
import sys
import textwrap

import pytest
import yaml

from trl_grpo_plus import GRPOTrainer, UnknownComponentError, build_plugin_manager, get_registry
from trl_grpo_plus.testing import tiny_grpo_config, tiny_model, tiny_prompt_dataset, tiny_tokenizer

GOOD_PLUGIN = """
from trl_grpo_plus import hookimpl

def {reward}(completions, **kwargs):
    return [float(len(c)) for c in completions]

@hookimpl
def register_reward_functions(register):
    register({reward})
"""


def test_an_installed_plugin_is_discovered_with_its_distribution(installed_distribution):
    installed_distribution("trl-grpo-plus-good", "good_plugin_a", GOOD_PLUGIN.format(reward="length_a"))
    registry = get_registry(build_plugin_manager())
    assert registry.reward_functions.plugin_of("length_a") == "good_plugin_a"
    info = registry.plugin_manager.info("good_plugin_a")
    assert (info.distribution, info.version, info.builtin) == ("trl-grpo-plus-good", "1.2.3", False)


def test_a_plugin_that_fails_to_import_is_reported_and_other_runs_go_on(installed_distribution):
    installed_distribution("trl-grpo-plus-broken", "broken_plugin_b", "import module_that_does_not_exist_b\n")
    installed_distribution("trl-grpo-plus-good", "good_plugin_b", GOOD_PLUGIN.format(reward="length_b"))
    registry = get_registry(build_plugin_manager())
    assert "length_b" in registry.reward_functions
    [failure] = registry.load_failures
    assert failure.plugin.distribution == "trl-grpo-plus-broken"
    assert isinstance(failure.error, ModuleNotFoundError)
    with pytest.raises(
        UnknownComponentError,
        match=r"'broken_plugin_b' \(from trl-grpo-plus-broken 1.2.3\) failed to load: ModuleNotFoundError.*"
        "module_that_does_not_exist_b",
    ):
        registry.reward_functions.resolve("from_the_broken_plugin")


def test_autoload_can_be_disabled_by_environment(installed_distribution, monkeypatch):
    installed_distribution("trl-grpo-plus-good", "good_plugin_c", GOOD_PLUGIN.format(reward="length_c"))
    monkeypatch.setenv("TRL_GRPO_PLUS_DISABLE_PLUGIN_AUTOLOAD", "1")
    registry = get_registry(build_plugin_manager())
    assert "length_c" not in registry.reward_functions
    assert "accuracy" in registry.reward_functions  # built-ins always load


@pytest.mark.parametrize("blocked", ["good_plugin_d", "trl-grpo-plus-good"], ids=["by-plugin", "by-distribution"])
def test_named_plugins_can_be_blocked_by_environment(installed_distribution, monkeypatch, blocked):
    installed_distribution("trl-grpo-plus-good", "good_plugin_d", GOOD_PLUGIN.format(reward="length_d"))
    monkeypatch.setenv("TRL_GRPO_PLUS_BLOCK_PLUGINS", f"someone_else, {blocked}")
    assert "length_d" not in get_registry(build_plugin_manager()).reward_functions


def test_two_distributions_with_one_plugin_name_report_the_second(installed_distribution):
    installed_distribution("trl-grpo-plus-one", "same_name_e", GOOD_PLUGIN.format(reward="length_e"))
    installed_distribution(
        "trl-grpo-plus-two", "other_module_e", GOOD_PLUGIN.format(reward="length_e2"), "same_name_e"
    )
    registry = get_registry(build_plugin_manager())
    [failure] = registry.load_failures
    assert "already used by" in failure.describe()


PLUGIN_PROJECT = {
    "pyproject.toml": """
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "outside-reward-plugin"
        version = "0.0.1"

        [project.entry-points.trl_grpo_plus]
        outside = "outside_reward_plugin"
    """,
    "outside_reward_plugin/__init__.py": """
        from trl_grpo_plus import hookimpl

        def digits(completions, **kwargs):
            return [float(sum(ch.isdigit() for ch in c)) for c in completions]

        @hookimpl
        def register_reward_functions(register):
            register(digits, name="outside_digits")
    """,
}


@pytest.fixture(scope="module")
def pip_installed_plugin(tmp_path_factory):
    """A plugin project written outside the repo, installed with pip (offline) into its own target directory."""
    root = tmp_path_factory.mktemp("outside")
    for relative, text in PLUGIN_PROJECT.items():
        (root / "src" / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / "src" / relative).write_text(textwrap.dedent(text))
    target = root / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--no-build-isolation",
            "--target",
            str(target),
            str(root / "src"),
        ],
        check=True,
    )
    return target


def test_a_pip_installed_plugin_reward_trains_by_name_in_reward_funcs(pip_installed_plugin, monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(pip_installed_plugin))
    tokenizer = tiny_tokenizer()
    trainer = GRPOTrainer(
        model=tiny_model(tokenizer),
        reward_funcs=["outside_digits"],
        args=tiny_grpo_config(tmp_path),
        train_dataset=tiny_prompt_dataset(),
        processing_class=tokenizer,
    )
    trainer.train()
    assert "rewards/outside_digits/mean" in trainer.state.log_history[0]
    assert trainer.plugin_manager.info("outside").distribution == "outside-reward-plugin"


def test_a_pip_installed_plugin_reward_trains_by_name_from_a_yaml_config(pip_installed_plugin, monkeypatch, tmp_path):
    from trl import TrlParser

    from trl_grpo_plus import GRPOConfig

    monkeypatch.syspath_prepend(str(pip_installed_plugin))
    config_file = tmp_path / "config.yaml"
    settings = tiny_grpo_config(tmp_path).to_dict()
    yaml_settings = {
        key: settings[key]
        for key in (
            "per_device_train_batch_size",
            "num_generations",
            "max_completion_length",
            "max_steps",
            "learning_rate",
            "use_cpu",
            "bf16",
            "report_to",
            "gradient_checkpointing",
            "save_strategy",
            "logging_steps",
        )
    }
    config_file.write_text(
        yaml.safe_dump(
            {
                **yaml_settings,
                "output_dir": str(tmp_path / "out"),
                "reward_plugins": ["outside_digits", "overlong_penalty"],
                "reward_kwargs": {"overlong_penalty": {"max_length": 8, "cache_length": 2}},
            }
        )
    )
    (config,) = TrlParser((GRPOConfig,)).parse_args_and_config(["--config", str(config_file)])
    assert config.reward_plugins == ["outside_digits", "overlong_penalty"]
    tokenizer = tiny_tokenizer()
    trainer = GRPOTrainer(
        model=tiny_model(tokenizer), args=config, train_dataset=tiny_prompt_dataset(), processing_class=tokenizer
    )
    trainer.train()
    assert {"rewards/outside_digits/mean", "rewards/overlong_penalty/mean"} <= trainer.state.log_history[0].keys()
