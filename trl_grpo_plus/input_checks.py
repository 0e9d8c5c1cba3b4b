"""Bad inputs that TRL accepts, or refuses with a bare message or only once training runs: refused here before any
model is loaded, each error saying what is wrong and how to fix it.

Each check covers a mistake whose TRL outcome is a silent no-op (an empty or too small dataset trains 0 steps), a
crash after the model loaded (`max_completion_length=0`, rows without a column a reward reads, no `prompt` column),
or an error that names no setting (a JSON option that is not JSON). Nothing TRL trains with is refused.

Called from `GRPOConfig.__post_init__` (`check_json_options` before TRL's own, `explained_batch_errors` around it,
`check_config` after) and from `GRPOTrainer.__init__` (`check_trainer_arguments`, before TRL's `__init__` loads the
model).
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator, Mapping
from typing import Any

from .reward_guard import GuardedReward


def check_json_options(args: Any) -> None:
    """Refuse a dict option given as a string that is not JSON, naming the option; transformers parses the valid ones
    (strings starting with "{") after this, with a bare `json.loads` whose error names no option."""
    for name in args._VALID_DICT_FIELDS:
        value = getattr(args, name, None)
        if not (isinstance(value, str) and value.startswith("{")):
            continue
        try:
            json.loads(value)
        except json.JSONDecodeError as error:
            raise ValueError(
                f"{name} is not valid JSON ({error.msg}, at character {error.pos}): {value!r}. Give a JSON object "
                f'with keys and strings in double quotes, e.g. --{name} \'{{"name": {{"option": 1}}}}\' on the '
                f"command line (single quotes around it for the shell), or a mapping in YAML."
            ) from None


@contextlib.contextmanager
def explained_batch_errors(args: Any) -> Iterator[None]:
    """Around TRL's `__post_init__`: its refusals of a generation batch that does not split into groups or
    micro-batches state the arithmetic; these say which settings make up the batch and a value that fits."""
    explicit = args.generation_batch_size is not None  # set by the user, not derived by TRL from the batch size
    try:
        yield
    except ValueError as error:
        if "must be divisible by num_generations" in str(error):
            raise ValueError(_group_split_error(args, explicit)) from None
        if "must be divisible by the global batch size" in str(error):
            raise ValueError(_micro_batch_split_error(args)) from None
        raise


def _fitting_generation_batch(args: Any) -> int:
    # The smallest generation batch at least as large as asked that holds whole groups and whole micro-batches
    step = math.lcm(args.num_generations, args.per_device_train_batch_size * args.world_size)
    return step * math.ceil(args.generation_batch_size / step)


def _group_split_error(args: Any, explicit: bool) -> str:
    groups = args.num_generations
    if explicit:
        fitting = _fitting_generation_batch(args)
        return (
            f"generation_batch_size={args.generation_batch_size} does not split into whole groups of "
            f"num_generations={groups}. Set generation_batch_size to a multiple of both {groups} and the global batch "
            f"size (per_device_train_batch_size={args.per_device_train_batch_size} x {args.world_size} process(es)), "
            f"e.g. {fitting}, or lower num_generations to a divisor of {args.generation_batch_size}."
        )
    per_unit = args.world_size * args.steps_per_generation
    batch = args.per_device_train_batch_size
    fitting = next(size for size in range(batch, batch + groups + 1) if size * per_unit % groups == 0)
    return (
        f"The generation batch holds {args.generation_batch_size} completions (per_device_train_batch_size="
        f"{batch} x {args.world_size} process(es) x steps_per_generation={args.steps_per_generation}), which does "
        f"not split into whole groups of num_generations={groups}. Make that product a multiple of {groups}, e.g. "
        f"per_device_train_batch_size={fitting}, or lower num_generations to a divisor of it."
    )


def _micro_batch_split_error(args: Any) -> str:
    global_batch = args.per_device_train_batch_size * args.world_size
    fitting = _fitting_generation_batch(args)
    return (
        f"generation_batch_size={args.generation_batch_size} does not split into whole micro-batches of the global "
        f"batch size {global_batch} (per_device_train_batch_size={args.per_device_train_batch_size} x "
        f"{args.world_size} process(es)). Set it to a multiple of {global_batch} that also holds whole groups of "
        f"num_generations={args.num_generations}, e.g. {fitting}, or leave it unset (then it is the global batch "
        f"size x gradient_accumulation_steps)."
    )


def check_config(args: Any) -> None:
    """Refuse TRL settings that TRL accepts but that fail once training runs."""
    length = args.max_completion_length
    # TRL takes 0; transformers refuses `max_new_tokens=0` at the first generation, after the model loaded.
    if length is not None and (not isinstance(length, int) or isinstance(length, bool) or length < 1):
        raise ValueError(
            f"max_completion_length must be a number of tokens >= 1 (the longest completion generated), got "
            f"{length!r}. Set it to the completions' budget, e.g. max_completion_length=256."
        )


def check_trainer_arguments(args: Any, trl_arguments: Mapping[str, Any]) -> None:
    """Refuse what the trainer was given (TRL's `__init__` arguments, rewards resolved) when TRL would load the
    model and then fail at the first step, or train nothing without saying so."""
    reward_funcs = trl_arguments.get("reward_funcs") or []
    if not reward_funcs and trl_arguments.get("environment_factory") is None:
        # TRL raises the same, but only after loading the model; its opening words are kept for those matching on them
        raise ValueError(
            "No reward source provided: GRPO needs at least one reward to score completions. Pass reward_funcs=[...] "
            "(callables, registered names such as 'accuracy', or reward model ids), set reward_plugins (YAML: "
            "`reward_plugins: [accuracy]`; `trl-grpo-plus plugins` lists the names), or pass an environment_factory "
            "whose environment defines a `get_reward` method."
        )
    weights, audits = args.reward_weights, len(args.audit_rewards or ())
    if weights is not None and len(weights) != len(reward_funcs):  # TRL raises the same after loading the model
        raise ValueError(
            f"reward_weights has {len(weights) - audits} weight(s) for {len(reward_funcs) - audits} trained reward "
            f"function(s): give one weight per reward, in the order of reward_funcs then reward_plugins (audit "
            f"rewards take none), or drop reward_weights to weigh them all 1.0."
        )
    dataset = trl_arguments.get("train_dataset")
    if dataset is None:  # TRL refuses training without one when `train()` is called; evaluation needs none
        return
    columns = list(getattr(dataset, "column_names", None) or [])
    _check_size(dataset, args)
    # An environment_factory's environments may own the data: TRL then takes the prompt from `reset()`.
    if columns and "prompt" not in columns and trl_arguments.get("environment_factory") is None:
        raise ValueError(
            f"train_dataset has no 'prompt' column (it has: {', '.join(columns)}); GRPO generates from 'prompt'. "
            f"Rename your prompt column, e.g. dataset.rename_column('{columns[0]}', 'prompt')."
        )
    # A rollout_func's extra fields reach the rewards too, so a column it provides may be missing from the dataset.
    if columns and trl_arguments.get("rollout_func") is None:
        _check_reward_columns(reward_funcs, columns, args)


def _check_size(dataset: Any, args: Any) -> None:
    try:
        size = len(dataset)
    except TypeError:  # an iterable dataset: its size is unknown before it is read
        return
    # TRL's sampler yields only whole generation batches, so a smaller dataset yields none: 0 steps, no error.
    prompts = args.generation_batch_size // args.num_generations
    if size == 0:
        raise ValueError(
            "train_dataset is empty (0 rows), so there is nothing to train on (TRL would run 0 steps without an "
            "error). Pass a dataset with prompts: check the split, the data files and any filter or limit applied."
        )
    if size < prompts:
        raise ValueError(
            f"train_dataset has {size} prompt(s), fewer than one generation batch takes ({prompts}: "
            f"generation_batch_size={args.generation_batch_size} / num_generations={args.num_generations}), so TRL's "
            f"sampler yields no batch and the run would train 0 steps. Add prompts, or make the batch smaller: "
            f"per_device_train_batch_size, gradient_accumulation_steps (or generation_batch_size) down, or "
            f"num_generations up."
        )


def _check_reward_columns(reward_funcs: list[Any], columns: list[str], args: Any) -> None:
    for reward in reward_funcs:
        if not isinstance(reward, GuardedReward):
            continue  # reward models read the completions only
        needed = reward.required_columns()
        missing = next((names for names in needed if not set(names) & set(columns)), None)
        if missing is not None:
            raise ValueError(
                f"{reward.describe()} reads the dataset column {' or '.join(map(repr, missing))}, which train_dataset "
                f"does not have (it has: {', '.join(columns)}). Add that column (e.g. dataset.rename_column('<your "
                f"column>', '{missing[0]}')), or use another reward."
            )
        dropped = sorted({name for names in needed for name in names} & set(columns) - {"prompt", "image", "images"})
        if dropped and args.remove_unused_columns:
            raise ValueError(
                f"remove_unused_columns=True drops every dataset column but prompt and image(s) before the rewards "
                f"see the rows, so {reward.describe()} would not get {', '.join(map(repr, dropped))}. Set "
                f"remove_unused_columns=False (TRL's default for GRPO)."
            )
