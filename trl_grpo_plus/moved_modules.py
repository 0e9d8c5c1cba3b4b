"""Import paths that moved in 0.3: still importable, with a `DeprecationWarning` that names the new place.

`import trl_grpo_plus.groups` gives a module holding what `trl_grpo_plus.ragged_groups` holds (the same objects, so
classes and functions keep their real `__module__`). Remove in 1.0.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import types
import warnings

MOVED = {
    "trl_grpo_plus.groups": ("trl_grpo_plus.ragged_groups",),
    "trl_grpo_plus.group_sizes": ("trl_grpo_plus.schedule_requests", "trl_grpo_plus.group_size_planning"),
    "trl_grpo_plus.planner": ("trl_grpo_plus.group_size_planning",),
    "trl_grpo_plus.parsing": ("trl_grpo_plus.trl_parser",),
    "trl_grpo_plus.plugins": ("trl_grpo_plus.plugin_manager",),
    "trl_grpo_plus.reward_functions": ("trl_grpo_plus.reward_guard",),
    "trl_grpo_plus.advantages": ("trl_grpo_plus.advantage_estimation",),
    "trl_grpo_plus.filtering": ("trl_grpo_plus.zero_variance_filtering", "trl_grpo_plus.batch_rows"),
    "trl_grpo_plus.options": ("trl_grpo_plus.components",),
    "trl_grpo_plus.scratch": ("trl_grpo_plus.testing.models",),
    "trl_grpo_plus.word_problems": ("trl_grpo_plus.demo.word_problems",),
    "trl_grpo_plus.warm_start": ("trl_grpo_plus.demo.warm_start",),
}


class MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds the old module paths and builds each from its new module(s)."""

    def find_spec(self, fullname, path=None, target=None):
        return importlib.util.spec_from_loader(fullname, self) if fullname in MOVED else None

    def create_module(self, spec):
        return types.ModuleType(spec.name)

    def exec_module(self, module: types.ModuleType) -> None:
        targets = MOVED[module.__name__]
        warnings.warn(
            f"{module.__name__} moved to {' and '.join(targets)} in trl-grpo-plus 0.3; import from there "
            f"(the old path goes in 1.0).",
            DeprecationWarning,
            stacklevel=2,
        )
        for target in targets:
            names = vars(importlib.import_module(target))
            module.__dict__.update({name: value for name, value in names.items() if not name.startswith("__")})


def install() -> None:
    if not any(isinstance(finder, MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.append(MovedModuleFinder())
