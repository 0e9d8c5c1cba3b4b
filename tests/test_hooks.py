"""One test per hook (datasette's rule): a plugin implementing it is called through pluggy and its component used.

`tests/test_hookspecs.py` requires a `test_hook_<name>` here for every hook in `trl_grpo_plus.hookspecs`.
"""

import torch

from trl_grpo_plus import get_registry, hookimpl
from trl_grpo_plus.advantage_estimation import AdvantageEstimator
from trl_grpo_plus.group_size_planning import GroupSizeSchedule
from trl_grpo_plus.reward_guard import bind_plugin_reward
from trl_grpo_plus.rollout_monitoring import Alert, MonitorResult, MonitorRunner, RolloutBatch, RolloutMonitor
from trl_grpo_plus.schedule_requests import GroupSizeRequest, ScheduleHistory


def traced_hook_calls(plugin_manager) -> list[str]:
    """Record the hooks pluggy calls on `plugin_manager` (its tracing sees only calls made through pluggy)."""
    calls = []
    plugin_manager.add_hookcall_monitoring(lambda name, impls, kwargs: calls.append(name), lambda *args: None)
    return calls


def test_hook_register_reward_functions(plugin_manager, register_plugin):
    class Plugin:
        @hookimpl
        def register_reward_functions(self, register):
            def shout(completions, *, suffix="!", **kwargs):
                return [float(c.endswith(suffix)) for c in completions]

            register(shout)

    register_plugin(Plugin(), name="shouting")
    calls = traced_hook_calls(plugin_manager)
    reward = bind_plugin_reward("shout", get_registry(plugin_manager).reward_functions, {"suffix": "?"})
    assert "register_reward_functions" in calls
    assert reward.plugin == "shouting"
    assert reward(prompts=["", ""], completions=["why?", "no"], completion_ids=[[], []]) == [1.0, 0.0]


def test_hook_register_advantage_estimators(plugin_manager, register_plugin):
    class Plugin:
        @hookimpl
        def register_advantage_estimators(self, register):
            def centred(rewards_per_func, reward_weights, group_ids, *, scale=1.0):
                rewards = (rewards_per_func * reward_weights).nansum(dim=1)
                return scale * (rewards - rewards.mean())

            register(centred)

    register_plugin(Plugin(), name="centring")
    calls = traced_hook_calls(plugin_manager)
    registry = get_registry(plugin_manager)
    estimator = AdvantageEstimator.resolve("centred", registry.advantage_estimators, {"scale": 2.0})
    assert "register_advantage_estimators" in calls
    advantages = estimator(torch.tensor([[1.0], [3.0]]), torch.ones(1), torch.tensor([0, 0]))
    assert advantages.tolist() == [-2.0, 2.0]


def test_hook_register_group_size_schedules(plugin_manager, register_plugin):
    class Plugin:
        @hookimpl
        def register_group_size_schedules(self, register):
            def doubling(request, *, every=10):
                return request.uniform(2 ** (1 + request.step // every))

            register(doubling)

    register_plugin(Plugin(), name="doubling_plugin")
    calls = traced_hook_calls(plugin_manager)
    schedule = GroupSizeSchedule.resolve("doubling", get_registry(plugin_manager).group_size_schedules, {"every": 1})
    assert "register_group_size_schedules" in calls
    request = GroupSizeRequest(
        step=1,
        prompts=list(range(8)),
        examples=[{}] * 8,
        completions=16,
        num_prompts=None,
        num_generations=2,
        history=ScheduleHistory(),
    )
    assert schedule(request) == [4, 4, 4, 4]


def test_hook_register_rollout_monitors(plugin_manager, register_plugin):
    class Plugin:
        @hookimpl
        def register_rollout_monitors(self, register):
            def mostly_empty(batch, state, *, limit=0.5):
                share = sum(len(ids) == 0 for ids in batch.completion_ids) / len(batch)
                state["batches"] = state.get("batches", 0) + 1
                alerts = [Alert("empty", f"{share:.0%} of completions are empty")] if share > limit else []
                return MonitorResult({"empty_share": share, "batches": state["batches"]}, alerts)

            register(mostly_empty)

    register_plugin(Plugin(), name="emptiness")
    calls = traced_hook_calls(plugin_manager)
    registry = get_registry(plugin_manager)
    monitor = RolloutMonitor.resolve("mostly_empty", registry.rollout_monitors, {"limit": 0.25})
    assert "register_rollout_monitors" in calls
    assert monitor.plugin == "emptiness"
    batch = RolloutBatch(
        step=7,
        prompts=["a", "a"],
        completions=["", "x"],
        completion_ids=[[], [5]],
        completion_lengths=torch.tensor([0, 1]),
        rewards={"r": torch.tensor([0.0, 1.0])},
        trained_rewards=("r",),
        audit_rewards=(),
        reward_weights={"r": 1.0},
        group_ids=torch.tensor([0, 0]),
        advantages=torch.tensor([-0.7, 0.7]),
        kept=torch.tensor([True, True]),
    )
    metrics, alerts = MonitorRunner([monitor]).check(batch)
    assert metrics == {"monitor/mostly_empty/empty_share": 0.5, "monitor/mostly_empty/batches": 1.0,
                       "monitor/mostly_empty/alerts": 1.0}  # fmt: skip
    assert [(a.step, a.monitor, a.kind, a.message) for a in alerts] == [
        (7, "mostly_empty", "empty", "50% of completions are empty")
    ]
