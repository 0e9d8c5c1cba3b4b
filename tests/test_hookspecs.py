"""Meta-tests: every hook is documented in the README with its exact signature, and every hook has a test."""

import inspect
import re
from pathlib import Path

import pytest

from trl_grpo_plus import get_registry, hookspecs

ROOT = Path(__file__).resolve().parents[1]
HOOKS = {
    name: function
    for name, function in vars(hookspecs).items()
    if inspect.isfunction(function) and hasattr(function, "trl_grpo_plus_spec")
}


def documented_signatures() -> dict[str, str]:
    readme = (ROOT / "README.md").read_text()
    return dict(re.findall(r"^#### `(register_\w+)(\(.*\))`", readme, flags=re.MULTILINE))


def test_the_hooks_are_the_four_registration_hooks():
    assert set(HOOKS) == {
        "register_reward_functions",
        "register_advantage_estimators",
        "register_group_size_schedules",
        "register_rollout_monitors",
    }


@pytest.mark.parametrize("name", sorted(HOOKS))
def test_every_hook_spec_is_documented_in_its_docstring(name):
    assert len(inspect.getdoc(HOOKS[name])) > 200


@pytest.mark.parametrize("name", sorted(HOOKS))
def test_every_hook_is_documented_in_the_readme_with_its_signature(name):
    parameters = inspect.signature(HOOKS[name]).parameters
    assert documented_signatures().get(name) == f"({', '.join(parameters)})"


def test_the_readme_documents_no_hook_that_does_not_exist():
    assert set(documented_signatures()) <= set(HOOKS)


@pytest.mark.parametrize("name", sorted(HOOKS))
def test_every_hook_has_its_own_test(name):
    # datasette's rule: a test named for the hook, implementing it (tests/test_hooks.py)
    sources = [path.read_text() for path in (ROOT / "tests").glob("test_*.py") if path.name != Path(__file__).name]
    assert any(re.search(rf"^def test_hook_{name}\(", source, flags=re.MULTILINE) for source in sources)
    assert any(re.search(rf"def {name}\(", source) for source in sources)


PROTOCOLS = {
    "reward_functions": hookspecs.RewardFunction,
    "advantage_estimators": hookspecs.AdvantageEstimatorFunction,
    "group_size_schedules": hookspecs.GroupSizeScheduleFunction,
    "rollout_monitors": hookspecs.RolloutMonitorFunction,
}


def protocol_call(protocol):
    """The arguments the trainer passes a component of this kind: (positional names, keyword names)."""
    parameters = [p for name, p in inspect.signature(protocol.__call__).parameters.items() if name != "self"]
    positional = [p.name for p in parameters if p.kind is p.POSITIONAL_ONLY]
    keywords = [p.name for p in parameters if p.kind is p.KEYWORD_ONLY]
    return positional, keywords


@pytest.mark.parametrize("kind", sorted(PROTOCOLS))
def test_every_built_in_component_accepts_the_call_its_protocol_states(kind, plugin_manager):
    # The Protocols in hookspecs.py state each kind's call once; every built-in accepts exactly that call (plus a
    # dataset column for rewards), with only its required options added.
    positional, keywords = protocol_call(PROTOCOLS[kind])
    for name, component in get_registry(plugin_manager).kinds()[kind].items():
        parameters = inspect.signature(component).parameters.values()
        required_options = {
            p.name: None
            for p in parameters
            if p.kind is p.KEYWORD_ONLY and p.default is p.empty and p.name not in keywords
        }
        extra_column = {"some_dataset_column": []} if kind == "reward_functions" else {}
        if kind == "reward_functions":  # the dataset columns a reward needs (e.g. `solution`) arrive by keyword
            extra_column |= {
                p.name: [] for p in parameters if p.kind is p.POSITIONAL_OR_KEYWORD and p.default is p.empty
            }
            extra_column = {k: v for k, v in extra_column.items() if k not in keywords}
        inspect.signature(component).bind(
            *positional, **dict.fromkeys(keywords), **extra_column, **required_options
        )  # raises TypeError if the call does not fit
