"""Rollout monitors: each built-in fires on a synthetic stream showing its failure and stays quiet on a healthy one;
the runner logs, warns once per kind, stops with a checkpoint, and checkpoints its state; settings fail early.

Synthetic streams are plain `RolloutBatch`es; the end-to-end tests train the tiny model and check that a monitor sees
exactly the batch that was scored, with the advantages the loss received."""

import json
import logging
import math
import random
from collections import defaultdict

import pytest
import torch

from trl_grpo_plus import GRPOConfig, GRPOTrainer, PluginError, UnknownComponentError, get_registry, hookimpl
from trl_grpo_plus.default_plugins.monitors import (
    diversity,
    flagged_samples,
    length_drift,
    repetition,
    reward_divergence,
)
from trl_grpo_plus.rollout_monitoring import (
    STATE_FILE,
    Alert,
    MonitorResult,
    MonitorRunner,
    RolloutBatch,
    RolloutMonitor,
    RolloutMonitorStop,
)
from trl_grpo_plus.testing import TrainingRecorder, tiny_grpo_settings, tiny_model, tiny_prompt_dataset, tiny_tokenizer

GROUP = 4


def rollout_batch(step, completion_ids, *, accuracy=None, working=None, output_dir=None, alerts=()):
    """A scored batch of groups of GROUP completions (token ids), reward `accuracy`, optional audit `working`."""
    size = len(completion_ids)
    rewards = {"accuracy": torch.tensor(accuracy if accuracy is not None else [0.0] * size)}
    if working is not None:
        rewards["working"] = torch.tensor(working)
    return RolloutBatch(
        step=step,
        prompts=[f"prompt {i // GROUP}" for i in range(size)],
        completions=[" ".join(map(str, ids)) for ids in completion_ids],
        completion_ids=[list(ids) for ids in completion_ids],
        completion_lengths=torch.tensor([len(ids) for ids in completion_ids]),
        rewards=rewards,
        trained_rewards=("accuracy",),
        audit_rewards=("working",) if working is not None else (),
        reward_weights={"accuracy": 1.0},
        group_ids=torch.arange(size) // GROUP,
        advantages=torch.zeros(size),
        kept=torch.ones(size, dtype=torch.bool),
        alerts=tuple(alerts),
        output_dir=output_dir,
    )


def distinct_completions(rng, length, count=16):
    return [[rng.randrange(1000) for _ in range(length)] for _ in range(count)]


def first_alert(monitor, batches, **options):
    """(step, alert) of the first alert `monitor` raises over the stream, or None; one state for the stream."""
    state = {}
    for batch in batches:
        result = monitor(batch, state, **options)
        if result.alerts:
            return batch.step, result.alerts[0]
    return None


# --- length_drift --------------------------------------------------------------------------------------------------


def test_length_drift_fires_when_completions_shrink_below_the_early_level_by_the_factor():
    rng = random.Random(0)
    # 8 tokens for 5 batches (the early level), then one token fewer each batch: the 5-batch mean falls below 8/1.5
    lengths = [8] * 5 + [max(8 - step, 2) for step in range(1, 20)]
    stream = [rollout_batch(step, distinct_completions(rng, n)) for step, n in enumerate(lengths)]
    step, alert = first_alert(length_drift, stream)
    assert alert.kind == "shrank" and "below its early-run level of 8.0" in alert.message
    assert step == 9  # the last 5 batches' lengths 7, 6, 5, 4, 3: mean 5.0, the first below 8 / 1.5
    assert {len(stream[step].completion_ids[row]) for row in alert.rows} == {3}


def test_length_drift_reports_completions_that_shrink_to_nothing():
    stream = [rollout_batch(0, [[5] * 10] * 8), rollout_batch(1, [[]] * 8)]
    step, alert = first_alert(length_drift, stream, baseline_batches=1, window=1)
    assert (step, alert.kind) == (1, "shrank") and "0.0 tokens over the last 1 batches, down to 0," in alert.message


def test_length_drift_measures_nothing_on_a_batch_without_completions():
    assert length_drift(rollout_batch(0, []), {}).metrics == {}


def test_length_drift_waits_for_a_full_window_even_when_it_is_longer_than_the_baseline():
    # One short batch among long ones: the 2-batch mean (9, 1) is below 9 / 1.5, every full 4-batch mean is not
    stream = [rollout_batch(s, [[s + 1] * n] * 4) for s, n in enumerate([9, 1, 9, 9, 9, 9])]
    assert first_alert(length_drift, stream, baseline_batches=1, window=4) is None


def test_length_drift_stays_quiet_on_lengths_that_vary_around_their_level():
    rng = random.Random(1)
    stream = [rollout_batch(step, distinct_completions(rng, rng.randint(6, 10))) for step in range(60)]
    assert first_alert(length_drift, stream) is None


def test_length_drift_fires_when_completions_grow_past_the_factor():
    rng = random.Random(2)
    lengths = [8] * 5 + [8 + 2 * step for step in range(1, 20)]
    step, alert = first_alert(
        length_drift, [rollout_batch(s, distinct_completions(rng, n)) for s, n in enumerate(lengths)]
    )
    assert alert.kind == "grew" and step == 9  # lengths 10, ..., 18: mean 14, the first above 8 x 1.5


def test_length_drift_watches_only_the_direction_it_is_told():
    rng = random.Random(3)
    lengths = [8] * 5 + [2] * 20
    stream = [rollout_batch(step, distinct_completions(rng, n)) for step, n in enumerate(lengths)]
    assert first_alert(length_drift, stream, direction="grow") is None


# --- diversity ----------------------------------------------------------------------------------------------------


def collapsing_stream(rng, collapsed_groups_per_batch):
    batches = []
    for step, collapsed in enumerate(collapsed_groups_per_batch):
        completions = distinct_completions(rng, 6)
        for group in range(collapsed):
            same = completions[group * GROUP]
            completions[group * GROUP : (group + 1) * GROUP] = [list(same)] * GROUP
        batches.append(rollout_batch(step, completions))
    return batches


def test_diversity_fires_when_most_groups_collapse_to_one_completion():
    rng = random.Random(4)
    stream = collapsing_stream(rng, [0] * 5 + [3] * 10)  # from step 5, 3 of the 4 groups are one completion
    step, alert = first_alert(diversity, stream)
    assert alert.kind == "collapsed" and step == 8  # the 5-batch mean share: 0.15, 0.3, 0.45, then 0.6 > 0.5
    assert len({tuple(stream[step].completion_ids[row]) for row in alert.rows}) == 1


def test_diversity_stays_quiet_when_groups_differ():
    assert first_alert(diversity, collapsing_stream(random.Random(5), [1] * 40)) is None  # 1 of 4 groups: 25%


def test_diversity_counts_near_identical_groups_with_identical_share():
    rng = random.Random(6)
    batches = []
    for step in range(10):
        completions = distinct_completions(rng, 6)
        for group in range(4):  # three of each group's four completions are the same
            completions[group * GROUP + 1 : group * GROUP + 3] = [list(completions[group * GROUP])] * 2
        batches.append(rollout_batch(step, completions))
    assert first_alert(diversity, batches) is None
    assert first_alert(diversity, batches, identical_share=0.75)[1].kind == "collapsed"


def test_diversity_logs_distinct_n_within_groups():
    same = rollout_batch(0, [[1, 2, 3]] * 4)
    result = diversity(same, {})
    assert result.metrics["distinct_n"] == pytest.approx(2 / 8) and result.metrics["collapsed_share"] == 1.0


# --- repetition ---------------------------------------------------------------------------------------------------


def test_repetition_fires_when_completions_loop():
    rng = random.Random(7)
    stream = []
    for step in range(10):
        completions = distinct_completions(rng, 12)
        if step >= 4:
            completions[:4] = [[5, 6, 7] * 4] * 4  # a quarter of the batch repeats one 3-gram
        stream.append(rollout_batch(step, completions))
    step, alert = first_alert(repetition, stream)
    assert alert.kind == "looping" and step == 5  # window 3: (0 + .25 + .25) / 3 > 0.1
    assert stream[step].completion_ids[alert.rows[0]] == [5, 6, 7] * 4


def test_repetition_stays_quiet_on_completions_without_loops():
    rng = random.Random(8)
    assert first_alert(repetition, [rollout_batch(s, distinct_completions(rng, 12)) for s in range(30)]) is None


# --- reward_divergence --------------------------------------------------------------------------------------------


def reward_stream(trained_means, audit_means, seed=9):
    """Batches whose trained and audit 0/1 rewards have the given means (exactly, 16 completions each)."""
    rng = random.Random(seed)
    batches = []
    for step, (trained, audit) in enumerate(zip(trained_means, audit_means, strict=True)):
        accuracy = [1.0] * round(16 * trained) + [0.0] * (16 - round(16 * trained))
        working = [1.0] * round(16 * audit) + [0.0] * (16 - round(16 * audit))
        rng.shuffle(working)
        batches.append(rollout_batch(step, distinct_completions(rng, 6), accuracy=accuracy, working=working))
    return batches


def test_reward_divergence_fires_when_the_trained_reward_rises_and_the_audit_reward_falls():
    rising = [0.25 + 0.0125 * step for step in range(40)]  # +0.125 from one 10-batch half to the next
    falling = [0.5 - 0.0125 * step for step in range(40)]
    step, alert = first_alert(reward_divergence, reward_stream(rising, falling))
    assert alert.kind == "diverged" and step == 19  # the first full window of 20 batches
    assert "audit reward 'working' changed -" in alert.message


def test_reward_divergence_fires_when_the_audit_reward_stays_flat():
    rising = [0.25 + 0.0125 * step for step in range(40)]
    assert first_alert(reward_divergence, reward_stream(rising, [0.5] * 40))[1].kind == "diverged"


def test_reward_divergence_stays_quiet_when_both_rewards_rise():
    rising = [0.25 + 0.0125 * step for step in range(40)]
    assert first_alert(reward_divergence, reward_stream(rising, rising)) is None


def test_reward_divergence_stays_quiet_when_the_trained_reward_does_not_rise():
    assert first_alert(reward_divergence, reward_stream([0.5] * 40, [0.5 - 0.0125 * s for s in range(40)])) is None


def test_reward_divergence_names_the_completions_the_reward_likes_and_the_audit_does_not():
    batch = rollout_batch(0, [[1]] * 4, accuracy=[1.0, 1.0, 0.0, 0.0], working=[1.0, 0.0, 0.0, 1.0])
    state = {"trained": [0.0] * 10 + [1.0] * 9, "audit": {"working": [1.0] * 19}}
    assert reward_divergence(batch, state).alerts[0].rows[0] == 1


def test_reward_divergence_refuses_a_run_without_audit_rewards():
    with pytest.raises(ValueError, match="audit_rewards"):
        reward_divergence.check_run(("accuracy",), ())


# --- flagged_samples ----------------------------------------------------------------------------------------------


def test_flagged_samples_writes_the_completions_behind_each_alert(tmp_path):
    runner = MonitorRunner([bound(flagged_samples), bound(length_drift, {"baseline_batches": 1, "window": 1})])
    assert [m.name for m in runner.monitors] == ["length_drift", "flagged_samples"]  # readers of alerts run last
    runner.check(rollout_batch(0, [[1, 2, 3, 4, 5, 6]] * 4, output_dir=str(tmp_path)))
    runner.check(rollout_batch(1, [[1, 2]] * 3 + [[9]], output_dir=str(tmp_path)))
    (line,) = (tmp_path / "monitor_samples.jsonl").read_text().splitlines()
    record = json.loads(line)
    assert (record["step"], record["monitor"], record["kind"]) == (1, "length_drift", "shrank")
    assert record["samples"][0]["completion"] == "9" and record["samples"][0]["length"] == 1


def test_flagged_samples_writes_nothing_without_alerts(tmp_path):
    assert flagged_samples(rollout_batch(0, [[1]] * 4, output_dir=str(tmp_path)), {}).metrics == {"written": 0.0}
    assert not (tmp_path / "monitor_samples.jsonl").exists()


# --- the runner ---------------------------------------------------------------------------------------------------


def bound(func, options=None, name=None):
    return RolloutMonitor(func, name or func.__name__, "monitors", options)


def always_alerts(batch, state, *, kind="odd"):
    state["calls"] = state.get("calls", 0) + 1
    return MonitorResult({"calls": state["calls"]}, [Alert(kind, f"saw something at {batch.step}", (1,))])


def test_the_runner_logs_each_metric_under_the_monitor_s_name():
    runner = MonitorRunner([bound(always_alerts), bound(repetition)])
    metrics, raised = runner.check(rollout_batch(3, [[1, 2, 3]] * 4))
    assert metrics["monitor/always_alerts/calls"] == 1.0 and metrics["monitor/always_alerts/alerts"] == 1.0
    assert metrics["monitor/repetition/alerts"] == 0.0 and "monitor/repetition/repeated_share" in metrics
    assert [(a.step, a.monitor, a.kind) for a in raised] == [(3, "always_alerts", "odd")]


def test_a_monitor_s_answer_is_checked():
    def bad(batch, state):
        return {"length": math.inf}

    with pytest.raises(PluginError, match="Rollout monitor 'bad'.*finite"):
        MonitorRunner([bound(bad)]).check(rollout_batch(0, [[1]] * 4))


class FakeTrainer:
    """What `observe` uses of a trainer, around a fixed batch."""

    def __init__(self, batch):
        self.batch = batch
        self._metrics = {"train": defaultdict(list)}
        self.accelerator = type("Accelerator", (), {"num_processes": 1, "is_main_process": True})()


def observe(runner, batch):
    trainer = FakeTrainer(batch)
    runner.batch_of = lambda trainer, output: batch
    runner.observe(trainer, {})
    return trainer


def test_warn_logs_the_first_alert_of_each_kind_with_an_example_completion(caplog):
    runner = MonitorRunner([bound(always_alerts)], action="warn")
    with caplog.at_level(logging.WARNING, logger="trl_grpo_plus.rollout_monitoring"):
        for step in range(3):
            trainer = observe(runner, rollout_batch(step, [[1], [7, 7], [1], [1]]))
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "at step 0: saw something at 0" in warnings[0] and "'7 7'" in warnings[0]
    assert trainer._metrics["train"]["monitor/always_alerts/alerts"] == [1.0]
    assert len(runner.alerts) == 3 and "always_alerts (odd): first at step 0, 3 batches" in runner.verdict()


def test_the_runner_s_state_survives_a_checkpoint(tmp_path):
    rng = random.Random(10)
    stream = [rollout_batch(step, distinct_completions(rng, 8 if step < 5 else 3)) for step in range(12)]
    uninterrupted = MonitorRunner([bound(length_drift)])
    first_half, resumed = MonitorRunner([bound(length_drift)]), MonitorRunner([bound(length_drift)])
    for batch in stream[:6]:
        uninterrupted.check(batch)
        first_half.check(batch)
    first_half.save(str(tmp_path))
    resumed.load(str(tmp_path))
    for batch in stream[6:]:
        assert uninterrupted.check(batch) == resumed.check(batch)
    assert resumed.alerts == uninterrupted.alerts and resumed.batches == 12


# --- settings -----------------------------------------------------------------------------------------------------


def config(tmp_path, **fields):
    return GRPOConfig(**tiny_grpo_settings(tmp_path), **fields)


def build(tmp_path, plugin_manager, **fields):
    tokenizer = tiny_tokenizer()
    return GRPOTrainer(
        model=tiny_model(tokenizer),
        reward_funcs=[lambda completions, **kw: [float(len(c)) for c in completions]],
        args=config(tmp_path, **fields),
        train_dataset=tiny_prompt_dataset(),
        processing_class=tokenizer,
        plugin_manager=plugin_manager,
    )


def test_rollout_monitors_reads_comma_separated_names(tmp_path):
    assert config(tmp_path, rollout_monitors=["length_drift,diversity"]).rollout_monitors == [
        "length_drift",
        "diversity",
    ]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"monitor_alert_action": "halt"}, "monitor_alert_action must be 'warn'.*or 'stop'"),
        (
            {"monitor_kwargs": {"length_drift": {"factor": 2}}},
            "options for 'length_drift', which is not in rollout_mon",
        ),
        ({"rollout_monitors": ["diversity"], "monitor_kwargs": {"diversity": 0.5}}, "monitor_kwargs must map"),
        ({"rollout_monitors": ["diversity", "diversity"]}, "more than once"),
    ],
)
def test_bad_monitor_settings_are_refused_by_the_config(tmp_path, fields, message):
    with pytest.raises(ValueError, match=message):
        config(tmp_path, **fields)


def test_an_unknown_monitor_name_lists_the_available_ones(tmp_path, plugin_manager):
    with pytest.raises(UnknownComponentError, match="Unknown rollout monitor 'lenght_drift'. Did you mean 'length_d"):
        build(tmp_path, plugin_manager, rollout_monitors=["lenght_drift"])


def test_a_misspelled_monitor_option_names_the_options(tmp_path, plugin_manager):
    with pytest.raises(PluginError, match="'length_drift'.*no option 'factr'.*factor"):
        build(
            tmp_path, plugin_manager, rollout_monitors=["length_drift"], monitor_kwargs={"length_drift": {"factr": 2}}
        )


@pytest.mark.parametrize(
    ("monitor", "options", "message"),
    [
        ("diversity", {"window": 2.5}, "window must be a whole number, got 2.5"),
        ("length_drift", {"baseline_batches": 1.5}, "baseline_batches must be a whole number"),
        ("reward_divergence", {"audit": "working"}, r"audit must be a list of audit reward names, e.g. \['working'\]"),
    ],
)
def test_a_window_or_name_list_of_the_wrong_type_is_refused(tmp_path, plugin_manager, monitor, options, message):
    with pytest.raises(PluginError, match=message):
        build(tmp_path, plugin_manager, rollout_monitors=[monitor], monitor_kwargs={monitor: options})


def test_a_bad_monitor_option_value_is_refused(tmp_path, plugin_manager):
    with pytest.raises(PluginError, match="factor must be > 1"):
        build(
            tmp_path,
            plugin_manager,
            rollout_monitors=["length_drift"],
            monitor_kwargs={"length_drift": {"factor": 0.5}},
        )


def test_reward_divergence_without_an_audit_reward_is_refused_before_training(tmp_path, plugin_manager):
    with pytest.raises(PluginError, match="'reward_divergence'.*cannot watch this run.*audit_rewards"):
        build(tmp_path, plugin_manager, rollout_monitors=["reward_divergence"])


# --- in training ----------------------------------------------------------------------------------------------------


class Recording:
    """A plugin whose monitor keeps every batch it sees, and alerts from `alert_at` on."""

    def __init__(self, alert_at=None):
        self.batches, self.alert_at = [], alert_at

    @hookimpl
    def register_rollout_monitors(self, register):
        def recording(batch, state):
            self.batches.append(batch)
            alerts = (
                [Alert("seen", f"batch {batch.step}", (0,))]
                if self.alert_at is not None and batch.step >= self.alert_at
                else []
            )
            return MonitorResult({"rows": len(batch)}, alerts)

        register(recording)


def text_length(completions, **kwargs):
    return [float(len(c) % 3) for c in completions]


def train_recorded(tmp_path, plugin_manager, register_plugin, monitor, **fields):
    register_plugin(monitor, name="recording_plugin")
    tokenizer = tiny_tokenizer()
    recorder = TrainingRecorder(tokenizer)
    settings = tiny_grpo_settings(tmp_path, per_device_train_batch_size=8, max_steps=3, logging_steps=1)
    trainer = GRPOTrainer(
        model=tiny_model(tokenizer),
        reward_funcs=[recorder.reward(text_length)],
        args=GRPOConfig(**settings, rollout_monitors=["recording", "length_drift"], **fields),
        train_dataset=tiny_prompt_dataset(),
        processing_class=tokenizer,
        plugin_manager=plugin_manager,
    )
    recorder.attach(trainer)
    return trainer, recorder


@pytest.mark.parametrize("fields", [{}, {"filter_zero_variance_groups": True}], ids=["all-kept", "filtered"])
def test_a_monitor_sees_every_scored_completion_and_the_advantage_the_loss_received(
    tmp_path, plugin_manager, register_plugin, fields
):
    monitor = Recording()
    trainer, recorder = train_recorded(tmp_path, plugin_manager, register_plugin, monitor, **fields)
    trainer.train()
    assert len(monitor.batches) == len(recorder.generations) == 3
    for batch, generation in zip(monitor.batches, recorder.generations, strict=True):
        scored = [row for round_rows in generation["rounds"] for row in round_rows]
        assert [recorder._unpadded(ids) for ids in batch.completion_ids] == [row["completion_ids"] for row in scored]
        assert batch.prompts == [row["prompt"] for row in scored]
        assert batch.rewards["text_length"].tolist() == [row["reward"] for row in scored]
        trained = {
            (row["prompt"], tuple(row["completion_ids"])): row["advantage"]
            for loss in generation["losses"]
            for row in loss
        }
        seen = {
            (batch.prompts[i], tuple(recorder._unpadded(batch.completion_ids[i]))): batch.advantages[i].item()
            for i in range(len(batch))
            if batch.kept[i]
        }
        assert seen.keys() == trained.keys()
        assert all(abs(seen[key] - trained[key]) < 1e-5 for key in trained)
        assert all(math.isnan(a) for a, kept in zip(batch.advantages.tolist(), batch.kept.tolist()) if not kept)
    if fields:
        assert any(not batch.kept.all() for batch in monitor.batches), "no group was ever dropped"
    logged = [log for log in trainer.state.log_history if "monitor/recording/rows" in log]
    assert len(logged) == 3 and "monitor/length_drift/mean_length" in logged[0]


def test_stop_saves_a_checkpoint_then_stops_with_what_was_seen(tmp_path, plugin_manager, register_plugin):
    trainer, _ = train_recorded(
        tmp_path, plugin_manager, register_plugin, Recording(alert_at=1), monitor_alert_action="stop"
    )
    with pytest.raises(
        RolloutMonitorStop, match="stopped: rollout monitor 'recording' \\(seen\\) at step 1: batch 1"
    ) as stop:
        trainer.train()
    assert trainer.state.global_step == 1  # the alerting batch did not train
    checkpoint = tmp_path / "checkpoint-1"
    assert stop.value.checkpoint == str(checkpoint) and (checkpoint / "model.safetensors").exists()
    # The checkpoint holds the monitors as they were before the batch: a resume generates step 1 anew, counted once
    saved = json.loads((checkpoint / STATE_FILE).read_text())
    assert saved["batches"] == 1 and saved["alerts"] == []
    assert [(a.step, a.monitor) for a in trainer.rollout_monitors.alerts] == [(1, "recording")]


def test_without_monitors_the_trainer_has_no_runner(tmp_path, plugin_manager):
    assert build(tmp_path, plugin_manager).rollout_monitors is None


def test_the_built_in_monitors_are_registered_by_the_monitors_plugin(plugin_manager):
    monitors = get_registry(plugin_manager).rollout_monitors
    assert set(monitors) == {"length_drift", "diversity", "repetition", "reward_divergence", "flagged_samples"}
    assert {monitors.plugin_of(name) for name in monitors} == {"monitors"}


@pytest.mark.slow
def test_the_demo_s_working_dropping_run_is_flagged_by_divergence_and_length(tmp_path):
    # benchmarks/monitors.py measured, seed 0: reward_divergence first at step 19, length_drift (shrank) at 35
    from trl_grpo_plus.demo import DemoSettings, run_demo

    summary = run_demo(DemoSettings(output_dir=str(tmp_path), seed=0, max_steps=40, eval_every=40))
    first = {(alert["monitor"], alert["kind"]): alert["first_step"] for alert in summary["monitor_alerts"]}
    assert first.get(("reward_divergence", "diverged"), math.inf) <= 25
    assert first.get(("length_drift", "shrank"), math.inf) <= 39
    assert not {monitor for monitor, _ in first} & {"diversity", "repetition"}
    assert (tmp_path / "monitor_samples.jsonl").read_text().count("\n") >= 2


@pytest.mark.slow
def test_the_demo_s_healthy_run_raises_no_alert(tmp_path):
    # benchmarks/monitors.py measured, seed 0: no alert in 150 batches when the trained reward checks the working
    from trl_grpo_plus.demo import DemoSettings, run_demo

    summary = run_demo(
        DemoSettings(output_dir=str(tmp_path), seed=0, max_steps=40, eval_every=40, train_on_working=True)
    )
    assert summary["monitor_alerts"] == []
    assert not (tmp_path / "monitor_samples.jsonl").exists() or not (tmp_path / "monitor_samples.jsonl").read_text()
