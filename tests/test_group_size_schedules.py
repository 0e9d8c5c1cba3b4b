"""Group-size schedules as plain functions of a request: what each built-in answers, and what the checks refuse."""

import json
import math

import pytest
import torch

from trl_grpo_plus import hookimpl
from trl_grpo_plus.errors import PluginError, UnknownComponentError
from trl_grpo_plus.group_size_planning import GroupSizePlanner, GroupSizeSchedule, PromptStream
from trl_grpo_plus.registry import get_registry
from trl_grpo_plus.schedule_requests import BatchRecord, GroupSizeRequest, ScheduleHistory, even_sizes


@pytest.fixture
def schedules(plugin_manager):
    return get_registry(plugin_manager).group_size_schedules


def request(step=0, completions=16, num_prompts=None, num_generations=4, history=None, prompts=None):
    prompts = list(range(completions // 2 if num_prompts is None else num_prompts)) if prompts is None else prompts
    return GroupSizeRequest(
        step=step,
        prompts=prompts,
        examples=[{"prompt": str(i)} for i in prompts],
        completions=None if num_prompts is not None else completions,
        num_prompts=num_prompts,
        num_generations=num_generations,
        history=history if history is not None else ScheduleHistory(),
    )


def sizes_at(schedules, name, options, **request_fields):
    return GroupSizeSchedule.resolve(name, schedules, options)(request(**request_fields))


# --- splitting a budget ------------------------------------------------------------------------------------------


def test_a_budget_that_a_size_does_not_divide_makes_groups_differing_by_at_most_one():
    assert even_sizes(16, 3) == [3, 3, 3, 3, 4]
    assert even_sizes(12, 4) == [4, 4, 4]
    assert even_sizes(24, 5) == [6, 6, 6, 6]


@pytest.mark.parametrize("size", [0, 1])
def test_a_group_below_two_completions_is_refused(size):
    with pytest.raises(ValueError, match="below 2"):
        even_sizes(16, size)


def test_a_group_larger_than_the_budget_is_refused():
    with pytest.raises(ValueError, match="does not fit a generation batch of 16 completions"):
        even_sizes(16, 17)


# --- the built-ins -------------------------------------------------------------------------------------------


def test_constant_is_num_generations_by_default(schedules):
    assert sizes_at(schedules, "constant", None) == [4, 4, 4, 4]
    assert sizes_at(schedules, "constant", {"size": 8}) == [8, 8]


def test_constant_with_fixed_prompts_gives_every_prompt_the_size(schedules):
    assert sizes_at(schedules, "constant", {"size": 6}, num_prompts=3) == [6, 6, 6]


def test_linear_ramps_from_start_to_end_then_holds(schedules):
    ramp = {"start": 2, "end": 8, "steps": 6}
    firsts = [sizes_at(schedules, "linear", ramp, step=s, num_prompts=1)[0] for s in range(9)]
    assert firsts == [2, 3, 4, 5, 6, 7, 8, 8, 8]


def test_linear_rounds_half_up(schedules):
    # 2 + (3 - 2) * 1/2 = 2.5 -> 3 (round() would give 2)
    assert sizes_at(schedules, "linear", {"start": 2, "end": 3, "steps": 2}, step=1, completions=12)[0] == 3


def test_cosine_ramps_slowly_at_both_ends(schedules):
    ramp = {"start": 2, "end": 18, "steps": 8}
    firsts = [sizes_at(schedules, "cosine", ramp, step=s, num_prompts=1)[0] for s in range(10)]
    expected = [math.floor(18 + (2 - 18) * (1 + math.cos(math.pi * min(s, 8) / 8)) / 2 + 0.5) for s in range(10)]
    assert firsts == expected == [2, 3, 4, 7, 10, 13, 16, 17, 18, 18]


def test_step_changes_size_at_each_milestone(schedules):
    options = {"milestones": [2, 5], "sizes": [2, 4, 8]}
    firsts = [sizes_at(schedules, "step", options, step=s)[0] for s in range(7)]
    assert firsts == [2, 2, 4, 4, 4, 8, 8]


def test_adaptive_zero_variance_raises_the_size_while_most_groups_carry_no_signal(schedules):
    schedule = GroupSizeSchedule.resolve("adaptive_zero_variance", schedules, {"change": 2})
    history = ScheduleHistory()
    assert schedule(request(history=history, completions=64)) == [4] * 16
    sizes = []
    for share in (0.9, 0.9, 0.3, 0.0, 0.0):
        history.batches.append(BatchRecord(0, [4], share))
        sizes.append(schedule(request(history=history, completions=64))[0])
    assert sizes == [6, 8, 8, 6, 4]  # up while > 0.5, held in between, down while < 0.2


def test_adaptive_zero_variance_stays_within_its_bounds(schedules):
    schedule = GroupSizeSchedule.resolve("adaptive_zero_variance", schedules, {"min_size": 3, "max_size": 5})
    history = ScheduleHistory()
    seen = []
    for share in [1.0] * 4 + [0.0] * 6:
        history.batches.append(BatchRecord(0, [4], share))
        seen.append(schedule(request(history=history, completions=64))[0])
    assert max(seen) == 5 and min(seen) == 3


def test_per_prompt_adaptive_shares_evenly_among_unseen_prompts(schedules):
    assert sizes_at(schedules, "per_prompt_adaptive", None, completions=16) == [4, 4, 4, 4]


def seen_history(outcomes):
    """A history where prompt i scored `outcomes[i]` (a list of 0/1 rewards)."""
    history = ScheduleHistory()
    for index, rewards in enumerate(outcomes):
        history.record(0, [index], [len(rewards)], torch.tensor(rewards, dtype=torch.float32), tolerance=1e-6)
    return history


MIXED_HISTORY = [[1.0] * 32, [0.0] * 32, [1.0, 0.0] * 16, [1.0, 0.0, 0.0, 0.0] * 8]  # always, never, 1/2, 1/4


def test_per_prompt_adaptive_spends_what_settled_prompts_save_on_more_prompts(schedules):
    history = seen_history(MIXED_HISTORY)  # prompts 4.. are unseen
    sizes = sizes_at(schedules, "per_prompt_adaptive", None, completions=16, history=history)
    # The always and never solved prompts need only 2 each, which buys a fifth prompt at num_generations.
    assert sizes == [2, 2, 4, 4, 4]


def test_per_prompt_adaptive_gives_uncertain_prompts_more_at_a_fixed_prompt_count(schedules):
    history = seen_history(MIXED_HISTORY)
    sizes = sizes_at(schedules, "per_prompt_adaptive", None, num_prompts=4, history=history)
    # 4 prompts x num_generations 4. A 1-in-4 prompt needs more samples than a 1-in-2 one to show both outcomes.
    assert sizes == [2, 2, 5, 7]


def test_per_prompt_adaptive_respects_max_size(schedules):
    history = seen_history(MIXED_HISTORY)
    sizes = sizes_at(schedules, "per_prompt_adaptive", {"max_size": 6}, num_prompts=4, history=history)
    assert sizes == [2, 2, 6, 6]


# --- options and answers the trainer refuses -------------------------------------------------------------------


def test_an_unknown_schedule_lists_the_available_names(schedules):
    with pytest.raises(UnknownComponentError, match="Available group-size schedules: adaptive_zero_variance, "):
        GroupSizeSchedule.resolve("lineer", schedules)


def test_schedule_options_without_a_schedule_say_none_was_chosen_and_which_takes_them(schedules):
    with pytest.raises(PluginError) as info:
        GroupSizeSchedule.resolve("constant", schedules, {"start": 4, "end": 16, "steps": 200})
    message = str(info.value)
    assert "group_size_schedule is 'constant' (the default when no schedule is chosen)" in message
    assert "'linear', 'cosine' take end, start, steps, e.g. group_size_schedule='linear'" in message


def test_options_no_schedule_takes_are_named_with_where_to_look(schedules):
    with pytest.raises(PluginError, match="No installed schedule takes all of them; `trl-grpo-plus plugins`"):
        GroupSizeSchedule.resolve("constant", schedules, {"warm_steps": 5})


def test_a_ramp_needs_its_options(schedules):
    with pytest.raises(PluginError, match="needs option 'end', 'start', 'steps'"):
        GroupSizeSchedule.resolve("linear", schedules)


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("linear", {"start": 1, "end": 8, "steps": 4}, "start must be an integer group size >= 2"),
        ("cosine", {"start": 2, "end": 8, "steps": 0}, "steps must be an integer >= 1"),
        ("step", {"milestones": [3, 1], "sizes": [2, 4, 8]}, "strictly increasing"),
        ("step", {"milestones": [3], "sizes": [2]}, "one group size more than milestones"),
        ("constant", {"size": 1}, "size must be an integer group size >= 2"),
        ("adaptive_zero_variance", {"min_size": 8, "max_size": 4}, r"max_size \(4\) must be >= min_size \(8\)"),
        ("adaptive_zero_variance", {"raise_above": 0.1, "lower_below": 0.5}, "lower_below <= raise_above"),
        ("per_prompt_adaptive", {"prior": 0}, "prior must be a number > 0"),
        ("per_prompt_adaptive", {"min_signal": 2}, r"min_signal must be a probability in \[0, 1\]"),
    ],
)
def test_bad_options_are_refused_with_the_reason(schedules, name, options, message):
    with pytest.raises(PluginError, match=message):
        GroupSizeSchedule.resolve(name, schedules, options)


def test_a_size_above_the_budget_names_the_schedule_and_step(schedules):
    with pytest.raises(PluginError, match="'linear'.*step 4: group size 32 does not fit .* 16 completions"):
        sizes_at(schedules, "linear", {"start": 4, "end": 32, "steps": 4}, step=4)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ([4, 4, 4], "sum to 12, but a generation batch holds exactly 16"),
        ([8, 7, 1], "group size 1 is below 2"),
        ((4, 4.0, 4, 4), "list of int group sizes"),
        ([], "at least one prompt"),
    ],
)
def test_answers_outside_the_contract_are_refused(register_plugin, plugin_manager, answer, message):
    class Plugin:
        @staticmethod
        @hookimpl
        def register_group_size_schedules(register):
            register(lambda request: answer, name="broken")

    register_plugin(Plugin, "broken_plugin")
    schedule = GroupSizeSchedule.resolve("broken", get_registry(plugin_manager).group_size_schedules)
    with pytest.raises(PluginError, match=message):
        schedule(request())


# --- the prompt stream and the planner -------------------------------------------------------------------------


def test_the_stream_visits_every_prompt_once_per_pass_and_reshuffles_between_passes():
    stream = PromptStream(10, seed=3)
    first, second = stream.peek(10), PromptStream(10, seed=3).peek(20)[10:]
    assert sorted(first) == sorted(second) == list(range(10))
    assert first != second


def test_the_stream_resumes_from_its_cursor():
    whole = PromptStream(7, seed=0).peek(20)
    resumed = PromptStream(7, seed=0)
    resumed.cursor = 9
    assert resumed.peek(11) == whole[9:]


def planner(schedule, completions=16, num_prompts=None, num_processes=1, size=10):
    return GroupSizePlanner(
        schedule,
        [{"prompt": str(i)} for i in range(size)],
        completions=completions,
        num_prompts=num_prompts,
        num_generations=4,
        num_processes=num_processes,
        seed=0,
    )


def test_prompts_a_batch_does_not_use_lead_the_next_one(schedules):
    ramp = planner(GroupSizeSchedule.resolve("linear", schedules, {"start": 8, "end": 2, "steps": 1}))
    stream = PromptStream(10, seed=0).peek(12)
    first, second = ramp.plan(0), ramp.plan(1)
    assert first.prompts == stream[:2] and first.sizes == [8, 8]
    assert second.prompts == stream[2:10] and second.sizes == [2] * 8


def test_fixed_prompts_pad_the_completions_to_a_multiple_of_the_processes(schedules):
    plan = planner(
        GroupSizeSchedule.resolve("constant", schedules, {"size": 3}), completions=None, num_prompts=3, num_processes=4
    ).plan(0)
    assert plan.sizes == [4, 4, 4]
    plan = planner(
        GroupSizeSchedule.resolve("constant", schedules, {"size": 3}), completions=None, num_prompts=3, num_processes=2
    ).plan(0)
    assert plan.sizes == [4, 3, 3]


def test_plans_list_every_completions_group_in_order(schedules):
    plan = planner(GroupSizeSchedule.resolve("constant", schedules, {"size": 3})).plan(0)
    assert plan.sizes == [3, 3, 3, 3, 4]
    assert plan.group_ids.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 4]
    assert plan.rows == [p for p, n in zip(plan.prompts, plan.sizes) for _ in range(n)]
    assert plan.metrics() == pytest.approx(
        {"group_size/mean": 3.2, "group_size/min": 3.0, "group_size/max": 4.0, "group_size/prompts_per_batch": 5.0}
    )


def test_a_planners_state_round_trips_and_plans_on_identically(schedules):
    adaptive = GroupSizeSchedule.resolve("per_prompt_adaptive", schedules)
    original = planner(adaptive)
    for step in range(3):
        plan = original.plan(step)
        rewards = torch.tensor(
            [float(i % 2) if p % 2 else 1.0 for p, n in zip(plan.prompts, plan.sizes) for i in range(n)]
        )
        original.record(plan, rewards)
    copy = planner(adaptive)
    copy.load_state_dict(json.loads(json.dumps(original.state_dict())))  # as a checkpoint stores it
    assert [copy.plan(s).sizes for s in range(3, 6)] == [original.plan(s).sizes for s in range(3, 6)]


def test_a_checkpoint_from_another_schedule_is_refused(schedules):
    state = planner(GroupSizeSchedule.resolve("constant", schedules, {"size": 2})).state_dict()
    with pytest.raises(ValueError, match="trained with group-size schedule 'constant', but this run uses 'linear'"):
        planner(GroupSizeSchedule.resolve("linear", schedules, {"start": 2, "end": 4, "steps": 2})).load_state_dict(
            state
        )


def test_history_records_pass_rates_per_prompt_and_zero_variance_per_batch():
    history = ScheduleHistory()
    history.record(0, [7, 9], [2, 3], torch.tensor([1.0, 1.0, 0.0, 1.0, math.nan]), tolerance=1e-6)
    assert history.prompts[7].rewards == [1.0, 1.0] and history.prompts[9].rewards == [0.0, 1.0]
    assert history.prompts[7].pass_rate(0.5, prior=1.0) == pytest.approx(3 / 4)
    assert history.batches[-1].zero_variance_share == 0.5


def test_history_keeps_the_most_recent_batches_only():
    history = ScheduleHistory()
    for step in range(1005):
        history.record(step, [0], [2], torch.tensor([0.0, 1.0]), tolerance=1e-6)
    assert len(history.batches) == 1000 and history.batches[0].step == 5
    assert len(history.prompts[0].rewards) == 64
