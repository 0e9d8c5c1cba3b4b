"""Rewards that cannot take a run down: timeouts, failure policies, concurrency, failure metrics, circuit breaker."""

import asyncio
import functools
import json
import math
import statistics
import threading
import time
import types

import launching
import pytest
import torch

from trl_grpo_plus import GRPOTrainer, PluginError, RewardFunctionError
from trl_grpo_plus.reward_guard import RewardPolicy, RewardRunner, guard
from trl_grpo_plus.testing import TrainingRecorder, tiny_grpo_config, tiny_model, tiny_prompt_dataset, tiny_tokenizer

ONE_PROCESS = types.SimpleNamespace(gather=lambda tensor: tensor, device="cpu")
COMPLETIONS = ["a", "bb", "boom", "dddd"]


def resilient(func, runner=None, **policy):
    runner = runner or RewardRunner(max_workers=4)
    return guard(func, func.__name__, policy=RewardPolicy(**policy), runner=runner), runner


def score(reward, completions=COMPLETIONS):
    n = len(completions)
    return asyncio.run(
        reward(prompts=["p"] * n, completions=list(completions), completion_ids=[[1]] * n, tag=["t"] * n)
    )


def finish(runner):
    metrics = {}
    runner.finish_batch(ONE_PROCESS, _Metrics(metrics))
    return {key: values[-1] for key, values in metrics.items()}


class _Metrics(dict):
    def __init__(self, store):
        super().__init__()
        self.store = store

    def __getitem__(self, key):
        return self.store.setdefault(key, [])


def length(completions, **kwargs):
    return [float(len(c)) for c in completions]


def raises_on_boom(completions, **kwargs):
    if any("boom" in c for c in completions):
        raise ValueError("cannot score boom")
    return [float(len(c)) for c in completions]


def test_a_reward_that_raises_on_one_completion_loses_only_that_one():
    reward, runner = resilient(raises_on_boom)
    assert score(reward) == [1.0, 2.0, None, 4.0]
    assert finish(runner) == pytest.approx(
        {
            "rewards/raises_on_boom/failures": 1,
            "rewards/raises_on_boom/timeouts": 0,
            "rewards/raises_on_boom/seconds": 0,
        },
        abs=1.0,
    )


def test_a_fixed_score_replaces_what_failed():
    reward, _ = resilient(raises_on_boom, on_error=-1.0)
    assert score(reward) == [1.0, 2.0, -1.0, 4.0]


def test_under_raise_the_first_failure_stops_the_run_naming_reward_and_completion():
    reward, _ = resilient(raises_on_boom, on_error="raise")
    with pytest.raises(RewardFunctionError, match=r"'raises_on_boom' raised ValueError: cannot score boom.*'boom'"):
        score(reward)


def test_a_hanging_sync_reward_times_out_and_its_completions_are_skipped():
    release = threading.Event()

    def hangs(completions, **kwargs):
        release.wait(30)  # blocked outside Python: lingers until released, as a stuck network call would
        return [0.0] * len(completions)

    reward, runner = resilient(hangs, timeout=0.2, max_failure_share=1.0)
    assert score(reward) == [None] * 4
    metrics = finish(runner)
    assert metrics["rewards/hangs/timeouts"] == 4 and metrics["rewards/hangs/failures"] == 0
    release.set()


def test_a_timed_out_pure_python_loop_is_stopped_not_left_running():
    started = []

    def spins(completions, **kwargs):
        started.append(threading.current_thread())
        while True:
            pass

    reward, _ = resilient(spins, timeout=0.2)
    assert score(reward) == [None] * 4
    [thread] = started
    thread.join(timeout=5)
    assert not thread.is_alive()


def test_calls_that_stay_stuck_after_their_timeout_stop_the_run_before_they_pile_up(monkeypatch):
    monkeypatch.setattr(RewardRunner, "MAX_LATE_THREADS", 1)
    release = threading.Event()

    def leaks(completions, **kwargs):
        release.wait(30)
        return [0.0] * len(completions)

    reward, runner = resilient(leaks, timeout=0.1, max_failure_share=1.0)
    score(reward)
    finish(runner)  # one stuck call is tolerated
    score(reward)
    with pytest.raises(
        RewardFunctionError, match="2 calls of reward\\(s\\) leaks are still running after their timeout"
    ):
        finish(runner)
    release.set()


def test_an_async_reward_times_out_too():
    async def sleeps(completions, **kwargs):
        await asyncio.sleep(30)
        return [0.0] * len(completions)

    reward, runner = resilient(sleeps, timeout=0.2, max_failure_share=1.0)
    assert score(reward) == [None] * 4
    assert finish(runner)["rewards/sleeps/timeouts"] == 4


def test_an_async_reward_that_raises_on_one_completion_loses_only_that_one():
    async def async_boom(completions, **kwargs):
        return raises_on_boom(completions)

    reward, _ = resilient(async_boom)
    assert score(reward) == [1.0, 2.0, None, 4.0]


@pytest.mark.parametrize(
    "output, expected",
    [
        pytest.param([1.0, math.nan, None, 2.0], [1.0, math.nan, None, 2.0], id="nan-and-none-mean-unscorable"),
        pytest.param([1.0, math.inf, 3.0, 4.0], [1.0, None, 3.0, 4.0], id="inf-fails-that-completion"),
        pytest.param([1.0, 1e39, 3.0, 4.0], [1.0, None, 3.0, 4.0], id="beyond-float32-fails-that-completion"),
        pytest.param([1.0, "2", 3.0, 4.0], [1.0, None, 3.0, 4.0], id="a-string-value-fails-that-completion"),
        pytest.param([1.0, 2.0], [None] * 4, id="wrong-count-fails-the-call"),
        pytest.param("1.0", [None] * 4, id="not-a-list-fails-the-call"),
    ],
)
def test_answers_outside_the_contract_fail_what_they_must(output, expected):
    def odd(completions, **kwargs):
        return output

    reward, _ = resilient(odd, max_failure_share=1.0)
    got = score(reward)
    assert [("nan" if isinstance(v, float) and math.isnan(v) else v) for v in got] == [
        ("nan" if isinstance(v, float) and math.isnan(v) else v) for v in expected
    ]


def test_a_reward_failing_on_most_of_a_batch_trips_the_circuit_breaker():
    def always_raises(completions, **kwargs):
        raise ConnectionError("verifier down")

    reward, runner = resilient(always_raises)
    assert score(reward) == [None] * 4
    with pytest.raises(
        RewardFunctionError, match=r"failed on 4 of 4 completions.*max_failure_share=0.5.*verifier down"
    ):
        finish(runner)


def test_failures_within_the_share_let_the_run_go_on():
    reward, runner = resilient(raises_on_boom, max_failure_share=0.25)
    score(reward)
    assert finish(runner)["rewards/raises_on_boom/failures"] == 1


def test_sync_rewards_of_one_batch_run_at_the_same_time():
    both_running = threading.Barrier(2, timeout=5)

    def first(completions, **kwargs):
        both_running.wait()  # breaks (BrokenBarrierError) unless the other reward runs meanwhile
        return [1.0] * len(completions)

    def second(completions, **kwargs):
        both_running.wait()
        return [2.0] * len(completions)

    runner = RewardRunner(max_workers=2)
    rewards = [resilient(func, runner, on_error="raise")[0] for func in (first, second)]

    async def batch():
        kwargs = {"prompts": ["p"], "completions": ["c"], "completion_ids": [[1]]}
        return await asyncio.gather(*(reward(**kwargs) for reward in rewards))

    assert asyncio.run(batch()) == [[1.0], [2.0]]


def test_one_worker_runs_rewards_one_at_a_time():
    running, overlaps = [0], []

    def counted(completions, **kwargs):
        running[0] += 1
        overlaps.append(running[0])
        time.sleep(0.05)
        running[0] -= 1
        return [0.0] * len(completions)

    runner = RewardRunner(max_workers=1)
    rewards = [resilient(counted, runner)[0] for _ in range(3)]

    async def batch():
        kwargs = {"prompts": ["p"], "completions": ["c"], "completion_ids": [[1]]}
        return await asyncio.gather(*(reward(**kwargs) for reward in rewards))

    asyncio.run(batch())
    assert overlaps == [1, 1, 1]


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"reward_timeout": 0}, "reward_timeout must be a number of seconds > 0"),
        ({"reward_on_error": "ignore"}, "reward_on_error must be 'raise', 'skip' or a number"),
        ({"reward_on_error": "inf"}, "reward_on_error must be 'raise', 'skip' or a finite number"),
        ({"reward_max_failure_share": 1.5}, "reward_max_failure_share must be a share between 0 and 1"),
        ({"reward_max_workers": -1}, "reward_max_workers must be an integer >= 1"),
        ({"reward_policies": {"accuracy": {"timeot": 3}}}, "reward_policies\\['accuracy'\\] has 'timeot'"),
        ({"reward_policies": {"accuracy": {"on_error": "x"}}}, "reward_policies\\['accuracy'\\]\\['on_error'\\] must"),
        ({"reward_policies": ["accuracy"]}, "reward_policies must map reward names to their policy"),
    ],
)
def test_bad_policy_settings_fail_in_the_config(tmp_path, settings, message):
    with pytest.raises(ValueError, match=message):
        tiny_grpo_config(tmp_path, **settings)


def test_a_number_on_the_command_line_is_a_fixed_score(tmp_path):
    assert tiny_grpo_config(tmp_path, reward_on_error="0.0").reward_on_error == 0.0


def trainer_for(tmp_path, reward_funcs, plugin_manager, **settings):
    tokenizer = tiny_tokenizer()
    return GRPOTrainer(
        model=tiny_model(tokenizer),
        reward_funcs=reward_funcs,
        args=tiny_grpo_config(tmp_path, **settings),
        train_dataset=tiny_prompt_dataset(),
        processing_class=tokenizer,
        plugin_manager=plugin_manager,
    )


def test_a_policy_is_chosen_per_reward_by_name(tmp_path, plugin_manager):
    trainer = trainer_for(
        tmp_path,
        [raises_on_boom, "accuracy"],
        plugin_manager,
        reward_policies={"raises_on_boom": {"on_error": 0.5, "timeout": 2}},
    )
    mine, accuracy = trainer.reward_funcs
    assert mine.policy == RewardPolicy(timeout=2, on_error=0.5, max_failure_share=0.5)
    assert accuracy.policy == RewardPolicy()


def test_a_policy_for_a_reward_not_in_use_is_refused(tmp_path, plugin_manager):
    with pytest.raises(PluginError, match="reward_policies has a policy for 'acuracy'.*accuracy"):
        trainer_for(tmp_path, ["accuracy"], plugin_manager, reward_policies={"acuracy": {"timeout": 2}})


def test_a_run_under_skip_finishes_and_trains_past_a_reward_that_fails_on_some_completions(tmp_path, plugin_manager):
    def fails_on_digits(completions, **kwargs):
        for c in completions:  # the trainer finds which completions fail by scoring them one by one
            if any(ch.isdigit() for ch in c):
                raise ValueError("a digit")
        return [len(c) / 8 for c in completions]

    def has_digit(completions, **kwargs):
        return [float(any(ch.isdigit() for ch in c)) for c in completions]

    trainer = trainer_for(
        tmp_path, [fails_on_digits, has_digit], plugin_manager, max_steps=4, reward_max_failure_share=1.0
    )
    before = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.train()
    logs = [log for log in trainer.state.log_history if "rewards/fails_on_digits/failures" in log]
    assert len(logs) == 4
    failures = [log["rewards/fails_on_digits/failures"] for log in logs]
    with_digits = [log["rewards/has_digit/mean"] * 4 for log in logs]  # 4 completions a step
    assert failures == pytest.approx(with_digits) and sum(failures) > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))


def test_two_processes_agree_on_failures_and_train_the_same_model(tmp_path):
    settings = json.dumps({"reward_max_failure_share": 1.0, "max_steps": 4, "per_device_train_batch_size": 6})
    _, records = launching.run_script("train_failing_reward.py", tmp_path, "--settings", settings, processes=2)
    rank0, rank1 = records
    assert rank0["checksum"] == pytest.approx(rank1["checksum"], abs=1e-9)
    failures = [
        [log["rewards/fails_on_digits/failures"] for log in r["log_history"] if "loss" in log] for r in records
    ]
    assert failures[0] == failures[1] and len(failures[0]) == 4  # summed over both processes, logged alike
    assert sum(failures[0]) > 0  # the completions with a digit failed, and training went on


def test_under_skip_the_loss_trains_failed_completions_as_unscorable(tmp_path, plugin_manager):
    # What reaches the loss: a completion the reward failed on counts as unscored (advantage 0, outside its
    # group's baseline), and its group's other completions get the advantage of the scored ones alone.
    def fails_on_digits(completions, **kwargs):
        for c in completions:
            if any(ch.isdigit() for ch in c):
                raise ValueError("a digit")
        return [len(c) / 8 for c in completions]

    tokenizer = tiny_tokenizer()
    trainer = trainer_for(
        tmp_path,
        [fails_on_digits],
        plugin_manager,
        max_steps=4,
        per_device_train_batch_size=8,
        reward_max_failure_share=1.0,
    )
    recorder = TrainingRecorder(tokenizer)
    recorder.attach(trainer)
    trainer.train()
    failed = checked = 0
    for generation in recorder.generations:
        groups = {}
        for row in (row for micro_batch in generation["losses"] for row in micro_batch):
            text = tokenizer.decode(row["completion_ids"], skip_special_tokens=True)
            reward = None if any(ch.isdigit() for ch in text) else len(text) / 8
            groups.setdefault(row["prompt"], []).append((reward, row["advantage"]))
        for rows in groups.values():
            scored = [reward for reward, _ in rows if reward is not None]
            for reward, advantage in rows:
                if reward is None:
                    failed += 1
                    assert advantage == 0.0
                elif len(scored) < 2:  # nothing to compare it with
                    assert advantage == 0.0
                else:
                    expected = (reward - statistics.fmean(scored)) / (statistics.stdev(scored) + 1e-4)
                    assert advantage == pytest.approx(expected, abs=1e-4)
                checked += 1
    assert checked == 32 and failed > 0


def test_with_no_workers_a_sync_reward_runs_on_the_main_thread_under_its_policy():
    threads = []

    def where(completions, **kwargs):
        threads.append(threading.current_thread())
        return raises_on_boom(completions)

    reward, runner = resilient(where, RewardRunner(max_workers=0), on_error=0.0)
    n = len(COMPLETIONS)
    assert reward(prompts=["p"] * n, completions=COMPLETIONS, completion_ids=[[1]] * n) == [1.0, 2.0, 0.0, 4.0]
    assert set(threads) == {threading.main_thread()}
    assert finish(runner)["rewards/where/failures"] == 1


def test_policies_are_set_from_the_command_line_and_yaml(tmp_path):
    from trl_grpo_plus import GRPOConfig
    from trl_grpo_plus.trl_parser import TrlParser

    config_file = tmp_path / "run.yaml"
    config_file.write_text("reward_policies:\n  accuracy: {timeout: 30, on_error: raise}\nreward_max_workers: 2\n")
    common = ["--output_dir", str(tmp_path), "--use_cpu", "--bf16", "false", "--config", str(config_file)]
    (config,) = TrlParser((GRPOConfig,)).parse_args_and_config(
        [*common, "--reward_on_error", "-1", "--reward_timeout", "12.5"]
    )
    assert (config.reward_on_error, config.reward_timeout, config.reward_max_workers) == (-1.0, 12.5, 2)
    assert config.reward_policies == {"accuracy": {"timeout": 30, "on_error": "raise"}}
    assert RewardPolicy.for_reward(config, "accuracy") == RewardPolicy(30, "raise", 0.5)
    assert RewardPolicy.for_reward(config, "format") == RewardPolicy(12.5, -1.0, 0.5)


def test_a_timeout_is_not_swallowed_by_the_rewards_own_except_and_nothing_runs_after_it():
    calls = []

    def catches_everything(completions, **kwargs):
        calls.append(len(completions))
        try:
            while True:  # a judge retrying forever, catching every Exception
                try:
                    time.sleep(0.01)
                except Exception:
                    pass
        finally:
            calls.append("stopped")

    reward, _ = resilient(catches_everything, timeout=0.2, max_failure_share=1.0)
    assert score(reward) == [None] * 4
    for _ in range(100):  # the thread ends soon after its timeout
        if "stopped" in calls:
            break
        time.sleep(0.02)
    time.sleep(0.2)
    assert calls == [4, "stopped"]  # stopped, and no completion-by-completion retries started after the timeout


def test_a_column_a_failed_call_did_not_log_is_logged_empty_and_late_logs_are_dropped():
    logged = []
    fail = [False]

    def judged(completions, log_extra, **kwargs):
        if fail[0]:
            raise ValueError("judge down")
        log_extra("judge_note", [f"note {c}" for c in completions])
        return [1.0] * len(completions)

    reward, _ = resilient(judged, max_failure_share=1.0)
    n = len(COMPLETIONS)

    def batch():
        kwargs = {"prompts": ["p"] * n, "completions": COMPLETIONS, "completion_ids": [[1]] * n}
        log = {"log_extra": lambda column, values: logged.append((column, values))}
        return asyncio.run(reward(**kwargs, **log))

    batch()
    fail[0] = True
    assert batch() == [None] * n
    assert logged[-1] == ("judge_note", [None] * n)  # not the previous batch's notes


def test_rewards_that_share_a_name_are_counted_apart():
    def judge(completions, *, broken, **kwargs):
        if broken:
            raise ConnectionError("down")
        return [1.0] * len(completions)

    runner = RewardRunner(max_workers=1)
    healthy = guard(functools.partial(judge, broken=False), "judge", policy=RewardPolicy(), runner=runner)
    broken = guard(functools.partial(judge, broken=True), "judge", policy=RewardPolicy(), runner=runner)
    score(healthy)
    score(broken)
    with pytest.raises(RewardFunctionError, match="failed on 4 of 4 completions"):
        finish(runner)


def test_failure_warnings_name_the_reward_and_a_completion_and_are_rate_limited(caplog):
    reward, runner = resilient(raises_on_boom, max_failure_share=1.0)
    with caplog.at_level("WARNING", logger="trl_grpo_plus.reward_guard"):
        for _ in range(3):
            score(reward)
    [warning] = [record.getMessage() for record in caplog.records]
    assert "Reward 'raises_on_boom' failed on 1 completion(s)" in warning
    assert "ValueError: cannot score boom" in warning and "'boom'" in warning


def test_a_dotted_path_reward_takes_options_and_a_policy_by_the_path_as_typed(tmp_path, plugin_manager, monkeypatch):
    (tmp_path / "my_judges.py").write_text(
        "def strict(completions, *, threshold=0.5, **kwargs):\n    return [float(len(c) > threshold) for c in completions]\n"
    )
    monkeypatch.chdir(tmp_path)
    trainer = trainer_for(
        tmp_path,
        ["my_judges.strict"],
        plugin_manager,
        reward_kwargs={"my_judges.strict": {"threshold": 3}},
        reward_policies={"my_judges.strict": {"on_error": 0.0}},
    )
    [reward] = trainer.reward_funcs
    assert (reward.name, reward.options, reward.policy.on_error) == ("strict", {"threshold": 3}, 0.0)
