"""The `trl-grpo-plus` command."""

import json
import subprocess
import sys

import pytest

from trl_grpo_plus.cli import main


def test_plugins_lists_each_plugin_with_what_it_registers(capsys, installed_distribution):
    installed_distribution(
        "trl-grpo-plus-listed",
        "listed_plugin",
        "from trl_grpo_plus import hookimpl\n"
        "def listed_reward(completions, **kw): return [0.0] * len(completions)\n"
        "@hookimpl\ndef register_reward_functions(register): register(listed_reward)\n",
    )
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "rewards (built-in)\n  reward_functions: accuracy, format, overlong_penalty" in out
    assert "listed_plugin (trl-grpo-plus-listed 1.2.3)\n  reward_functions: listed_reward" in out


def test_plugins_reports_failures(capsys, installed_distribution):
    installed_distribution("trl-grpo-plus-oops", "oops_plugin", "raise ImportError('needs a GPU library')\n")
    main(["plugins"])
    assert (
        "FAILED: plugin 'oops_plugin' (from trl-grpo-plus-oops 1.2.3) failed to load: ImportError: needs a GPU"
        in capsys.readouterr().out
    )


def test_plugins_json_is_machine_readable(capsys):
    main(["plugins", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert report["plugins"]["rewards"]["builtin"] is True
    assert "accuracy" in report["plugins"]["rewards"]["reward_functions"]


def test_the_console_script_is_installed():
    result = subprocess.run(
        [sys.executable, "-m", "trl_grpo_plus.cli", "plugins"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and "rewards (built-in)" in result.stdout


def test_demo_options_with_bad_values_are_refused_before_any_work(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--max-steps", "0"])
    assert "max_steps must be at least 1" in capsys.readouterr().err


def test_demo_compare_flag_asks_for_the_trl_baseline_run(monkeypatch):
    seen = []
    monkeypatch.setattr("trl_grpo_plus.cli.run_demo", seen.append)
    assert main(["demo", "--compare", "--max-steps", "3"]) == 0
    assert main(["demo"]) == 0
    assert [(s.compare, s.max_steps) for s in seen] == [(True, 3), (False, 150)]
