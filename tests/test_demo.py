"""The offline demo, shortened: warm start, GRPO with rewards by name, held-out accuracy, plot and model saved."""

import json

import pytest

from trl_grpo_plus.demo import DemoSettings, run_demo


def test_a_short_demo_writes_the_model_history_report_and_plot(tmp_path, capsys):
    settings = DemoSettings(
        output_dir=str(tmp_path), warm_start_steps=20, max_steps=3, eval_every=2, train_problems=64,
        held_out_problems=16, prompts_per_step=2, num_generations=4,
    )  # fmt: skip
    summary = run_demo(settings)

    assert [point["step"] for point in summary["held_out_accuracy_curve"]] == [0, 2, 3]
    assert summary["held_out_accuracy"]["warm_start"] == summary["held_out_accuracy_curve"][0]["accuracy"]
    assert json.loads((tmp_path / "history.json").read_text()) == summary
    report = json.loads((tmp_path / "eval_results.json").read_text())
    assert report["after"]["total"] == 16 and report["after"]["accuracy"] == summary["held_out_accuracy"]["after_grpo"]
    assert (tmp_path / "progress.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    from transformers import AutoModelForCausalLM, AutoTokenizer

    AutoModelForCausalLM.from_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(tmp_path)
    out = capsys.readouterr().out
    assert "rewards: accuracy [rewards], format [rewards], working [trl_grpo_plus.demo.rewards]" in out
    assert "held-out accuracy (greedy)" in out
    # the monitors watched the run, the audit reward was logged, and their verdict is printed and recorded
    assert "audit rewards (scored, not trained): working" in out
    assert summary["monitor_verdict"] in out and summary["monitor_verdict"].startswith("Rollout monitors")
    assert all("working_reward" in point for point in summary["training_rewards"])


def test_compare_trains_trl_s_trainer_too_and_plots_both_against_completions_generated(tmp_path, capsys):
    settings = DemoSettings(
        output_dir=str(tmp_path), warm_start_steps=5, max_steps=2, eval_every=2, train_problems=16,
        held_out_problems=4, prompts_per_step=2, num_generations=2, compare=True,
    )  # fmt: skip
    summary = run_demo(settings)

    baseline = summary["trl_baseline"]
    # With no extension option the demo trains exactly as TRL does: the same completions, the same curve.
    assert [p["completions"] for p in baseline["held_out_accuracy_curve"]] == [0, 8]
    assert baseline["held_out_accuracy_curve"] == summary["held_out_accuracy_curve"]
    assert [r["completions"] for r in summary["training_rewards"]] == [
        r["completions"] for r in baseline["training_rewards"]
    ]
    # the audit reward and the monitors watch our run without changing what it trains
    assert summary["monitoring"]["audit_rewards"] == ["working"]
    assert "trl_baseline" in json.loads((tmp_path / "eval_results.json").read_text())
    assert (tmp_path / "progress.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "trl.GRPOTrainer" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("max_steps", 0, "max_steps must be at least 1"), ("num_generations", 1, "num_generations must be at least 2")],
)
def test_bad_settings_are_refused(field, value, message):
    with pytest.raises(ValueError, match=message):
        DemoSettings(**{field: value})


def test_the_working_reward_checks_the_working_line_and_its_answer():
    from trl_grpo_plus.demo.rewards import working

    assert working(["4 * 3 = 12 #### 12", "12 #### 12", "4 * 3 = 11 #### 11", "4 * 3 = 12 #### 11", "8 / 2 = 4 #### 4"]) == [
        1.0, 0.0, 0.0, 0.0, 1.0
    ]  # fmt: skip


def test_the_progress_plot_marks_the_monitors_alerts(tmp_path):
    from trl_grpo_plus.demo import plot_progress

    rewards = [{"completions": 512 * s, "accuracy_reward": 0.3, "working_reward": 0.2} for s in (10, 20)]
    alert = {"monitor": "length_drift", "kind": "shrank", "first_step": 12, "completions_before": 6144}
    plot_progress(rewards, [{"completions": 0, "accuracy": 0.3}], tmp_path / "plain.png")
    plot_progress(rewards, [{"completions": 0, "accuracy": 0.3}], tmp_path / "marked.png", alerts=[alert])
    assert (tmp_path / "marked.png").read_bytes() != (tmp_path / "plain.png").read_bytes()
