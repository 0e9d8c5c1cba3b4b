"""Group-size schedules in the trainer: logged sizes, data flow, resuming, several processes, and refused setups."""

import sys
from pathlib import Path

import launching
import pytest
import trl
from datasets import Dataset, IterableDataset
from readme_examples import readme_plugin

from trl_grpo_plus import GRPOConfig, GRPOTrainer
from trl_grpo_plus.errors import PluginError, UnknownComponentError
from trl_grpo_plus.testing import tiny_grpo_settings, tiny_model, tiny_prompt_dataset, tiny_tokenizer

sys.path.insert(0, str(Path(__file__).parent / "scripts"))
from train_scheduled import train  # noqa: E402  (the script the 2-process test launches, run in-process)


def logged(trainer, key):
    return [log[key] for log in trainer.state.log_history if key in log]


def test_logged_group_sizes_follow_a_linear_ramp_exactly(tmp_path):
    # 12 completions per batch; the ramp asks for 2, 3, 4, 5, 6. 12 holds two groups of 5 only as two of 6.
    trainer, plans, _ = train(
        tmp_path, "linear", {"start": 2, "end": 6, "steps": 4}, per_device_train_batch_size=12, max_steps=5
    )
    assert [plan["step"] for plan in plans] == [0, 1, 2, 3, 4]
    assert logged(trainer, "group_size/min") == [2, 3, 4, 6, 6]
    assert logged(trainer, "group_size/max") == [2, 3, 4, 6, 6]
    assert logged(trainer, "group_size/mean") == [2, 3, 4, 6, 6]
    assert logged(trainer, "group_size/prompts_per_batch") == [6, 4, 3, 2, 2]
    assert [sum(plan["sizes"]) for plan in plans] == [12] * 5


def test_the_policy_scores_exactly_the_planned_completions(tmp_path):
    trainer, plans, scored = train(
        tmp_path, "linear", {"start": 2, "end": 6, "steps": 4}, per_device_train_batch_size=12, max_steps=3
    )
    dataset = trainer.train_dataset
    for plan in plans:
        expected = sorted(
            dataset[i]["prompt"] for i in plan["prompts"] for _ in range(plan["sizes"][plan["prompts"].index(i)])
        )
        assert sorted(scored[plan["step"]]) == expected


def test_no_prompt_is_skipped_when_group_sizes_change(tmp_path):
    _, plans, _ = train(
        tmp_path,
        "step",
        {"milestones": [2], "sizes": [6, 2]},
        per_device_train_batch_size=12,
        max_steps=4,
        num_prompts=9,
    )
    seen = [i for plan in plans for i in plan["prompts"]]
    # 2 + 2 + 6 + 6 prompts: the first pass over the 9 prompts is complete before any repeats
    assert sorted(seen[:9]) == list(range(9))


def test_generation_batches_are_planned_once_per_generation_with_accumulation_and_iterations(tmp_path):
    trainer, plans, _ = train(
        tmp_path,
        "linear",
        {"start": 2, "end": 4, "steps": 2},
        per_device_train_batch_size=4,
        gradient_accumulation_steps=2,
        steps_per_generation=4,
        num_iterations=2,
        max_steps=8,
    )
    # one generation per 4 x 2 micro-steps = 4 optimizer steps of 2 micro-steps each
    assert [plan["step"] for plan in plans] == [0, 4]
    assert [plan["sizes"] for plan in plans] == [[2] * 8, [4] * 4]
    assert trainer.state.global_step == 8


def test_fixed_prompts_vary_the_completions_per_batch(tmp_path):
    trainer, plans, scored = train(
        tmp_path,
        "linear",
        {"start": 2, "end": 5, "steps": 3},
        group_size_budget="prompts",
        per_device_train_batch_size=4,
        steps_per_generation=2,
        max_steps=6,
    )
    # 8 completions at num_generations 4 fix 2 prompts per batch, generated every 2 steps
    assert [(plan["step"], plan["sizes"]) for plan in plans] == [(0, [2, 2]), (2, [4, 4]), (4, [5, 5])]
    # each completion is scored twice: TRL's old-policy log-prob pass (steps_per_generation > accumulation), then
    # the loss forward of its micro-batch
    assert [len(scored[plan["step"]]) + len(scored[plan["step"] + 1]) for plan in plans] == [2 * 4, 2 * 8, 2 * 10]
    assert logged(trainer, "group_size/prompts_per_batch") == [2, 2, 2]


def test_schedules_work_with_zero_variance_filtering(tmp_path):
    trainer, plans, scored = train(
        tmp_path,
        "linear",
        {"start": 2, "end": 6, "steps": 2},
        per_device_train_batch_size=12,
        max_steps=3,
        filter_zero_variance_groups=True,
    )
    dataset = trainer.train_dataset
    for plan in plans:
        kinds = {dataset[i]["prompt"]: dataset[i]["kind"] for i in plan["prompts"]}
        # prompts solved always or never have zero variance and never reach the policy
        assert all(kinds[prompt] == "sometimes" for prompt in scored.get(plan["step"], []))
    assert logged(trainer, "group_size/min") == [2, 4, 6]


def test_a_resumed_run_plans_the_same_group_sizes_as_an_uninterrupted_one(tmp_path):
    settings = dict(per_device_train_batch_size=12, max_steps=8, save_strategy="steps", save_steps=4, num_prompts=9)
    _, whole, _ = train(tmp_path / "whole", "per_prompt_adaptive", None, **settings)
    _, resumed, _ = train(
        tmp_path / "resumed", "per_prompt_adaptive", None, resume_from=tmp_path / "whole" / "checkpoint-4", **settings
    )
    assert [plan["step"] for plan in resumed] == [4, 5, 6, 7]
    assert resumed == whole[4:]
    # The history mattered: by then some prompts get more completions than others.
    assert any(len(set(plan["sizes"])) > 1 for plan in whole[4:])


def test_two_processes_plan_the_same_batches_and_share_their_completions(tmp_path):
    ramp = ["--schedule", "linear", "--schedule_kwargs", '{"start": 2, "end": 6, "steps": 3}', "--max_steps", "4"]
    one, [single] = launching.run_script(
        "train_scheduled.py", tmp_path / "one", *ramp, "--per_device_train_batch_size", "12"
    )
    two, ranks = launching.run_script(
        "train_scheduled.py", tmp_path / "two", *ramp, "--per_device_train_batch_size", "6", processes=2
    )
    assert ranks[0]["plans"] == ranks[1]["plans"] == single["plans"]
    assert two == one  # the same completions' prompts reach the policy, split across the two ranks
    for rank in ranks:
        assert len(rank["scored"]["0"]) == 6  # each rank scores half of the 12 completions


def test_two_processes_agree_under_an_adaptive_schedule(tmp_path):
    _, ranks = launching.run_script(
        "train_scheduled.py",
        tmp_path,
        "--schedule",
        "per_prompt_adaptive",
        "--max_steps",
        "8",
        "--num_prompts",
        "9",
        "--per_device_train_batch_size",
        "6",
        processes=2,
    )
    assert ranks[0]["plans"] == ranks[1]["plans"]
    assert any(len(set(plan["sizes"])) > 1 for plan in ranks[0]["plans"])


# --- the default and refused setups --------------------------------------------------------------------------------


def test_constant_is_trls_sampler_and_logs_no_extra_metrics(tmp_path):
    tokenizer = tiny_tokenizer()
    trainer = GRPOTrainer(
        model=tiny_model(tokenizer),
        reward_funcs=[lambda completions, **kw: [0.0] * len(completions)],
        args=GRPOConfig(**tiny_grpo_settings(tmp_path, group_size_schedule="constant")),
        train_dataset=tiny_prompt_dataset(8),
        processing_class=tokenizer,
    )
    assert trainer.group_size_planner is None
    trainer.train()
    assert not any(key.startswith("group_size/") for log in trainer.state.log_history for key in log)


def build(tmp_path, model="no/such-model-is-loaded", dataset=None, **overrides):
    return GRPOTrainer(
        model=model,
        reward_funcs=[lambda completions, **kw: [0.0] * len(completions)],
        args=GRPOConfig(**tiny_grpo_settings(tmp_path, **overrides)),
        train_dataset=dataset if dataset is not None else tiny_prompt_dataset(8),
    )


def test_an_unknown_schedule_fails_before_the_model_loads(tmp_path):
    with pytest.raises(UnknownComponentError, match="Unknown group-size schedule 'ramp'.*Available group-size"):
        build(tmp_path, group_size_schedule="ramp")


def test_a_size_the_budget_cannot_hold_fails_before_training(tmp_path):
    with pytest.raises(PluginError, match="at step 2: group size 6 does not fit a generation batch of 4 completions"):
        build(
            tmp_path, group_size_schedule="linear", group_size_kwargs={"start": 2, "end": 8, "steps": 3}, max_steps=5
        )


def test_a_group_size_below_two_fails_before_training(tmp_path):
    with pytest.raises(PluginError, match="start must be an integer group size >= 2"):
        build(tmp_path, group_size_schedule="linear", group_size_kwargs={"start": 1, "end": 4, "steps": 3})


def test_sizes_that_do_not_sum_to_the_budget_fail_before_training(tmp_path, register_plugin, plugin_manager):
    from trl_grpo_plus import hookimpl

    class Short:
        @staticmethod
        @hookimpl
        def register_group_size_schedules(register):
            register(lambda request: [2], name="short")

    register_plugin(Short)
    with pytest.raises(PluginError, match="sizes sum to 2, but a generation batch holds exactly 4 completions"):
        GRPOTrainer(
            model="no/such-model-is-loaded",
            reward_funcs=[lambda completions, **kw: [0.0] * len(completions)],
            args=GRPOConfig(**tiny_grpo_settings(tmp_path, group_size_schedule="short")),
            train_dataset=tiny_prompt_dataset(8),
            plugin_manager=plugin_manager,
        )


def test_an_iterable_dataset_is_refused_with_a_schedule(tmp_path):
    stream = IterableDataset.from_generator(lambda: iter([{"prompt": "1+1="}] * 8))
    with pytest.raises(ValueError, match="not supported with an iterable or missing train_dataset"):
        build(tmp_path, dataset=stream, group_size_schedule="per_prompt_adaptive")


def test_dynamic_sampling_is_refused_with_a_schedule(tmp_path):
    with pytest.raises(ValueError, match="Use dynamic_sampling or a group-size schedule, not both"):
        GRPOConfig(
            **tiny_grpo_settings(
                tmp_path,
                group_size_schedule="per_prompt_adaptive",
                filter_zero_variance_groups=True,
                dynamic_sampling=True,
            )
        )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("group_size_budget", "tokens", "group_size_budget must be 'completions'"),
        ("group_size_kwargs", [4], "group_size_kwargs must be a dict"),
        ("group_size_schedule", "", "group_size_schedule must be a schedule name"),
    ],
)
def test_bad_group_size_fields_are_refused(tmp_path, field, value, message):
    with pytest.raises(ValueError, match=message):
        GRPOConfig(**tiny_grpo_settings(tmp_path, **{field: value}))


def test_a_trl_config_keeps_trls_fixed_group_size(tmp_path):
    tokenizer = tiny_tokenizer()
    trainer = GRPOTrainer(
        model=tiny_model(tokenizer),
        reward_funcs=[lambda completions, **kw: [0.0] * len(completions)],
        args=trl.GRPOConfig(**tiny_grpo_settings(tmp_path)),
        train_dataset=Dataset.from_list([{"prompt": "1+1="}] * 8),
        processing_class=tokenizer,
    )
    assert trainer.group_size_planner is None and trainer.group_size_schedule.name == "constant"


def test_the_readme_schedule_plugin_trains(tmp_path, register_plugin, plugin_manager):
    register_plugin(readme_plugin("def warm_up", "readme_schedule"))
    tokenizer = tiny_tokenizer()
    trainer = GRPOTrainer(
        model=tiny_model(tokenizer),
        reward_funcs=[lambda completions, **kw: [float(len(c) % 2) for c in completions]],
        args=GRPOConfig(
            **tiny_grpo_settings(
                tmp_path, max_steps=3, group_size_schedule="warm_up", group_size_kwargs={"warm_steps": 2, "size": 4}
            )
        ),
        train_dataset=tiny_prompt_dataset(8),
        processing_class=tokenizer,
        plugin_manager=plugin_manager,
    )
    trainer.train()
    assert trainer.group_size_schedule.plugin == "readme_schedule"
    assert logged(trainer, "group_size/max") == [2, 2, 4]
