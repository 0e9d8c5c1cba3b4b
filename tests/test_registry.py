"""How plugins register components, and the errors a bad registration gives."""

from pathlib import Path

import pytest

import trl_grpo_plus
from trl_grpo_plus import DuplicateComponentError, UnknownComponentError, build_plugin_manager, get_registry, hookimpl
from trl_grpo_plus.plugin_manager import PluginInfo


def well_named(completions, **kwargs):
    return [0.0] * len(completions)


class RewardPlugin:
    def __init__(self, *funcs, names=None):
        self.funcs, self.names = funcs, names or [None] * len(funcs)

    @hookimpl
    def register_reward_functions(self, register):
        for func, name in zip(self.funcs, self.names):
            register(func, name=name)


def test_built_in_rewards_are_registered_through_the_hooks(plugin_manager):
    registry = get_registry(plugin_manager)
    assert {"accuracy", "format", "overlong_penalty"} <= set(registry.reward_functions)
    assert registry.reward_functions.plugin_of("accuracy") == "rewards"
    assert plugin_manager.info("rewards").builtin


def test_a_reward_registers_under_its_function_name_by_default(plugin_manager, register_plugin):
    register_plugin(RewardPlugin(well_named), name="mine")
    registry = get_registry(plugin_manager)
    assert registry.reward_functions["well_named"] is well_named
    assert registry.reward_functions.plugin_of("well_named") == "mine"


def test_a_reward_registers_under_an_explicit_name(plugin_manager, register_plugin):
    register_plugin(RewardPlugin(well_named, names=["renamed"]))
    assert "renamed" in get_registry(plugin_manager).reward_functions


def test_two_plugins_registering_one_name_fail_naming_both(plugin_manager, register_plugin):
    register_plugin(RewardPlugin(well_named, names=["clash"]), name="first_plugin")
    register_plugin(RewardPlugin(well_named, names=["clash"]), name="second_plugin")
    with pytest.raises(DuplicateComponentError, match="'clash'.*'first_plugin'.*'second_plugin'"):
        get_registry(plugin_manager)


def test_a_plugin_may_not_reuse_a_built_in_name(plugin_manager, register_plugin):
    register_plugin(RewardPlugin(well_named, names=["accuracy"]), name="shadow")
    with pytest.raises(DuplicateComponentError, match=r"'rewards' \(built-in\) and 'shadow'"):
        get_registry(plugin_manager)


def test_an_unknown_name_lists_what_is_available(plugin_manager):
    rewards = get_registry(plugin_manager).reward_functions
    with pytest.raises(
        UnknownComponentError,
        match="Did you mean 'accuracy'.*Available reward functions: accuracy, accuracy_reward, format",
    ):
        rewards.resolve("acuracy")


def test_a_plugin_whose_hook_raises_is_reported_and_the_rest_still_work(plugin_manager, register_plugin):
    class Broken:
        @hookimpl
        def register_reward_functions(self, register):
            register(well_named, name="half_registered")
            raise RuntimeError("boom")

    register_plugin(Broken(), name="broken")
    registry = get_registry(plugin_manager)
    assert "accuracy" in registry.reward_functions
    assert "half_registered" not in registry.reward_functions
    [failure] = registry.load_failures
    assert "plugin 'broken' (registered in code) failed to load: RuntimeError: boom" == failure.describe()
    with pytest.raises(UnknownComponentError, match="failed to load and may provide it.*boom"):
        registry.reward_functions.resolve("half_registered")


def test_registering_something_not_callable_is_reported_with_the_plugin(plugin_manager, register_plugin):
    register_plugin(RewardPlugin(42, names=["answer"]), name="numbers")
    [failure] = get_registry(plugin_manager).load_failures
    assert "'numbers'" in failure.describe() and "not callable" in failure.describe()


def test_a_lambda_needs_an_explicit_name(plugin_manager, register_plugin):
    register_plugin(RewardPlugin(lambda completions, **kw: [0.0]), name="anon")
    [failure] = get_registry(plugin_manager).load_failures
    assert "without a usable name" in str(failure.error)


def test_a_misspelled_hook_is_caught_with_a_suggestion(plugin_manager, register_plugin):
    class Misspelled:
        @hookimpl
        def register_reward_function(self, register):
            register(well_named)

    with pytest.raises(
        Exception, match="'register_reward_function' is not a trl_grpo_plus hook.*register_reward_functions"
    ):
        register_plugin(Misspelled(), name="typo")
    assert plugin_manager.get_plugin("typo") is None


def test_each_registration_hook_fills_its_own_kind(plugin_manager, register_plugin):
    def estimator(rewards_per_func, reward_weights, group_ids, **options):
        return rewards_per_func.sum(dim=1)

    def schedule(**kwargs):
        return None

    class Everything:
        @hookimpl
        def register_reward_functions(self, register):
            register(well_named)

        @hookimpl
        def register_advantage_estimators(self, register):
            register(estimator, name="my_estimator")

        @hookimpl
        def register_group_size_schedules(self, register):
            register(schedule, name="my_schedule")

    register_plugin(Everything(), name="everything")
    registry = get_registry(plugin_manager)
    assert registry.reward_functions["well_named"] is well_named
    assert registry.advantage_estimators["my_estimator"] is estimator
    assert registry.group_size_schedules["my_schedule"] is schedule
    assert registry.advantage_estimators.plugin_of("my_estimator") == "everything"


def test_an_implementation_may_take_fewer_arguments_than_the_spec(plugin_manager, register_plugin):
    calls = []

    class NoArgs:
        @hookimpl
        def register_reward_functions(self):
            calls.append("called")

    register_plugin(NoArgs(), name="noargs")
    get_registry(plugin_manager)
    assert calls == ["called"]


def test_every_manager_is_independent(plugin_manager, register_plugin):
    from trl_grpo_plus import build_plugin_manager

    register_plugin(RewardPlugin(well_named))
    assert "well_named" not in get_registry(build_plugin_manager(load_entrypoints=False)).reward_functions


def test_resolving_twice_reports_a_broken_plugin_once(plugin_manager, register_plugin):
    class Broken:
        @hookimpl
        def register_reward_functions(self, register):
            raise RuntimeError("boom")

    register_plugin(Broken(), name="broken")
    get_registry(plugin_manager)
    assert len(get_registry(plugin_manager).load_failures) == 1


def test_the_core_names_no_specific_plugin():
    # Plugins are found through hooks and entry points; the core must not special-case any of them by name.
    core = Path(trl_grpo_plus.__file__).parent
    sources = [path for path in core.rglob("*.py") if "default_plugins" not in path.parts and "demo" not in path.parts]
    for name in ("math_verify", "trl-grpo-plus-math", "code_tests", "trl-grpo-plus-code"):
        for literal in (f'"{name}"', f"'{name}'"):  # as a string in code; prose may mention them
            assert not [path.name for path in sources if literal in path.read_text()], literal


def test_a_plugin_cannot_register_on_behalf_of_another(plugin_manager, register_plugin):
    class Impostor:
        @hookimpl
        def register_reward_functions(self, register):
            register(well_named, _plugin="rewards")

    register_plugin(Impostor(), name="impostor")
    registry = get_registry(plugin_manager)
    assert "well_named" not in registry.reward_functions
    [failure] = registry.load_failures
    assert failure.plugin.name == "impostor" and isinstance(failure.error, TypeError)


def test_a_blocked_plugin_stays_out_even_when_registered_later():
    manager = build_plugin_manager(load_entrypoints=False, blocked=["advantages"])
    assert manager.is_blocked("advantages")
    from trl_grpo_plus.default_plugins import advantages

    assert not manager.register_plugin(advantages, PluginInfo("advantages"))
    assert len(get_registry(manager).advantage_estimators) == 0


def test_blocked_names_are_not_listed_as_plugins():
    manager = build_plugin_manager(load_entrypoints=False, blocked=["schedules", "no_such_plugin"])
    assert [name for name, _ in manager.loaded()] == ["rewards", "advantages", "trl_rewards", "monitors"]


def test_module_paths_of_0_2_still_import_with_a_deprecation_warning():
    with pytest.warns(DeprecationWarning, match="trl_grpo_plus.groups moved to trl_grpo_plus.ragged_groups"):
        from trl_grpo_plus.groups import GroupLayout
    from trl_grpo_plus.ragged_groups import GroupLayout as moved

    assert GroupLayout is moved
