"""The accelerate launch is held to what it asked for (`trl_grpo_plus.launchers`), and recipes/gsm8k.py trains
sharded on CPU processes: FSDP2 (`recipes/accelerate/fsdp2_cpu.yaml`) and DeepSpeed ZeRO-2/3 (`zero2_cpu.yaml`,
`zero3_cpu.yaml`), 2 processes over gloo, matching the DDP run (`cpu.yaml`).

Each launch that does not take is a real 2-process `accelerate launch` of the recipe, and must stop in the trainer's
start-up, before the recipe's first evaluation.
"""

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest
import test_gsm8k_recipe
import torch
from accelerate.utils import DistributedType, is_deepspeed_available
from test_gsm8k_recipe import OFFLINE, RECIPE, ROOT, assert_succeeded, assert_trained, recipe_arguments, weights

from trl_grpo_plus import GRPOTrainer, LaunchError
from trl_grpo_plus import trainer as trainer_module
from trl_grpo_plus.launchers import check_launch, check_sharded
from trl_grpo_plus.testing import tiny_grpo_config, tiny_model, tiny_prompt_dataset, tiny_tokenizer

# The same GSM8K files and tiny checkpoint as recipes/gsm8k.py's own tests (module-scoped fixtures).
gsm8k_dir = test_gsm8k_recipe.gsm8k_dir
model_dir = test_gsm8k_recipe.model_dir
CONFIGS = ROOT / "recipes" / "accelerate"
RECORDED = ROOT / "tests" / "scripts" / "recipe_recorded.py"
# Every feature that meets the sharded model: zero-variance filtering (ragged micro-batches), a schedule (group sizes
# 2 then 4), Liger's fused loss (the LM head gathered whole), and the evaluation before and after training (greedy
# generation, every rank in step). A learning rate large enough that 2 steps move every parameter visibly.
FEATURES = (
    "--filter_zero_variance_groups", "true",
    "--group_size_schedule", "linear", "--group_size_kwargs", '{"start": 2, "end": 4, "steps": 2}',
    "--use_liger_loss", "true",
    "--learning_rate", "1e-3",
)  # fmt: skip
needs_deepspeed = pytest.mark.skipif(
    not is_deepspeed_available(), reason="DeepSpeed is not installed: pip install 'trl-grpo-plus[deepspeed]'"
)


def launch(config: Path, *arguments: str, env: dict[str, str] = OFFLINE) -> subprocess.CompletedProcess:
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    command = [accelerate, "launch", "--config_file", str(config), *arguments]
    return subprocess.run(command, check=False, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)


def assert_refused_at_start_up(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """Both ranks stopped with a LaunchError holding `fragments`, before the recipe evaluated anything."""
    assert result.returncode != 0, result.stdout[-2000:]
    errors = [line for line in result.stderr.splitlines() if "LaunchError: " in line]
    assert {line.split(":", 1)[0] for line in errors} == {"[rank0]", "[rank1]"}, result.stderr[-5000:]
    message = errors[0].split("LaunchError: ", 1)[1]
    for fragment in fragments:
        assert fragment in message, message
    assert "pass@1 before" not in result.stdout + result.stderr, "the launch must be refused before evaluation"
    return message


# --- launches that did not take --------------------------------------------------------------------------------


def test_processes_that_each_run_alone_are_refused(gsm8k_dir, model_dir, tmp_path):
    # The worst case: an FSDP config without use_cpu on a machine without GPUs. Accelerate makes each of the
    # 2 processes a single one (process 0 of 1, DistributedType.NO), both writing to one output_dir.
    arguments = recipe_arguments(gsm8k_dir, model_dir, tmp_path / "out", "--use_cpu", "false")
    result = launch(CONFIGS / "fsdp2_cpu.yaml", str(RECIPE), *arguments)
    message = assert_refused_at_start_up(result, "WORLD_SIZE=2", "as 1 of 1", "DistributedType.NO", "use_cpu: true")
    assert str(tmp_path / "out") in message
    assert not (tmp_path / "out" / "checkpoint-2").exists()


# The check itself, on every kind of launch: what accelerate set up against what the launcher asked for.


def accelerator(kind: DistributedType, processes: int, backend: str | None = "gloo") -> SimpleNamespace:
    return SimpleNamespace(distributed_type=kind, num_processes=processes, state=SimpleNamespace(backend=backend))


@pytest.fixture
def launched(monkeypatch):
    """`launched(world_size, engine=None)`: the environment `accelerate launch` gives each process."""
    for name in ("WORLD_SIZE", "ACCELERATE_USE_FSDP", "ACCELERATE_USE_DEEPSPEED"):
        monkeypatch.delenv(name, raising=False)

    def launch_environment(world_size: int, engine: str | None = None) -> None:
        monkeypatch.setenv("WORLD_SIZE", str(world_size))
        if engine is not None:
            monkeypatch.setenv("ACCELERATE_USE_FSDP" if engine == "FSDP" else "ACCELERATE_USE_DEEPSPEED", "true")

    return launch_environment


ARGS = SimpleNamespace(output_dir="out")


def test_fewer_processes_than_launched_are_refused(launched):
    launched(2)
    with pytest.raises(LaunchError, match=r"WORLD_SIZE=2, but accelerate runs this process as 1 of 1 .*use_cpu: true"):
        check_launch(accelerator(DistributedType.NO, 1, backend=None), ARGS)


def test_processes_joined_without_data_parallelism_are_refused(launched):
    # e.g. ddp_backend gloo without use_cpu: a gloo group of 2, yet accelerate wraps nothing in DDP
    launched(2)
    with pytest.raises(LaunchError, match=r"2 processes share a process group, .*DistributedType.NO.*use_cpu: true"):
        check_launch(accelerator(DistributedType.NO, 2), ARGS)


@pytest.mark.parametrize(("engine", "fix"), [("FSDP", "ddp_backend: gloo"), ("DeepSpeed", "ACCELERATE_USE_CPU")])
def test_an_engine_config_that_would_train_ddp_is_refused(engine, fix, launched):
    launched(2, engine)
    with pytest.raises(
        LaunchError, match=f"asks for {engine}, but accelerate set up DistributedType.MULTI_CPU.*{fix}"
    ):
        check_launch(accelerator(DistributedType.MULTI_CPU, 2, backend="mpi"), ARGS)


@pytest.mark.parametrize(
    ("world_size", "engine", "kind"),
    [
        (1, None, DistributedType.NO),
        (2, None, DistributedType.MULTI_CPU),
        (2, "FSDP", DistributedType.FSDP),
        (2, "DeepSpeed", DistributedType.DEEPSPEED),
        (1, "FSDP", DistributedType.FSDP),
    ],
)
def test_a_launch_that_took_is_accepted(world_size, engine, kind, launched):
    launched(world_size, engine)
    check_launch(accelerator(kind, world_size), ARGS)


@needs_deepspeed
@pytest.mark.slow
def test_a_deepspeed_config_that_would_train_ddp_on_cpu_is_refused(gsm8k_dir, model_dir, tmp_path):
    # ACCELERATE_USE_CPU makes accelerate skip DeepSpeed and wrap the model in DDP instead.
    arguments = recipe_arguments(gsm8k_dir, model_dir, tmp_path / "out")
    env = {**OFFLINE, "ACCELERATE_USE_CPU": "true"}
    result = launch(CONFIGS / "zero2_cpu.yaml", str(RECIPE), *arguments, env=env)
    assert_refused_at_start_up(result, "asks for DeepSpeed", "DistributedType.MULTI_CPU", "ACCELERATE_USE_CPU")


@pytest.mark.slow
def test_joined_processes_without_data_parallelism_are_refused_at_start_up(gsm8k_dir, model_dir, tmp_path):
    arguments = recipe_arguments(gsm8k_dir, model_dir, tmp_path / "out", "--use_cpu", "false", "--ddp_backend", "gloo")
    result = launch(CONFIGS / "cpu.yaml", str(RECIPE), *arguments)
    assert_refused_at_start_up(result, "2 processes share a process group", "DistributedType.NO", "use_cpu: true")


@pytest.mark.parametrize("engine", ["FSDP", "DeepSpeed"])
def test_a_prepared_model_the_engine_did_not_shard_is_refused(engine, launched):
    # The last check, after accelerate.prepare: whatever the process type says, the model itself must be sharded.
    launched(2, engine)
    model = torch.nn.Linear(2, 2)  # as DDP, or no wrapper at all, leaves it: whole on every rank
    kind = DistributedType.FSDP if engine == "FSDP" else DistributedType.DEEPSPEED
    with pytest.raises(
        LaunchError, match=f"asks for {engine}, but the model accelerate prepared for training is a Linear"
    ):
        check_sharded(model, accelerator(kind, 2), ARGS)


def test_training_stops_when_accelerate_prepared_an_unsharded_model(launched, monkeypatch, tmp_path):
    # One process told to use FSDP2: accelerate sets up DistributedType.NO and prepares the model unwrapped. With the
    # start-up check out of the way, the check after accelerate.prepare must stop training before its first step.
    launched(1, "FSDP")
    monkeypatch.setenv("FSDP_VERSION", "2")
    monkeypatch.setattr(trainer_module, "check_launch", lambda accelerator, args: None)
    tokenizer = tiny_tokenizer()
    trainer = GRPOTrainer(
        model=tiny_model(tokenizer),
        reward_funcs=[lambda completions, **kwargs: [float(len(c)) for c in completions]],
        args=tiny_grpo_config(tmp_path),
        train_dataset=tiny_prompt_dataset(8),
        processing_class=tokenizer,
    )
    with pytest.raises(LaunchError, match="asks for FSDP, but the model accelerate prepared for training is a Qwen2"):
        trainer.train()
    assert trainer.state.global_step == 0


def test_an_unsharded_model_is_fine_when_no_engine_is_asked_for(launched):
    launched(2)
    check_sharded(torch.nn.Linear(2, 2), accelerator(DistributedType.MULTI_CPU, 2), ARGS)


# --- the recipe sharded on CPU ---------------------------------------------------------------------------------


@dataclass
class Run:
    output: Path
    stdout: str
    records: list[dict]
    parameters: list[dict[str, torch.Tensor]]  # each rank's full parameters right after training


@pytest.fixture(scope="module")
def recipe_run(gsm8k_dir, model_dir, tmp_path_factory):
    """`recipe_run("<config>.yaml")`: the recipe launched with 2 processes with that config and `FEATURES`, once."""
    runs = {}

    def run(config: str) -> Run:
        if config not in runs:
            output = tmp_path_factory.mktemp(config.removesuffix(".yaml"))
            arguments = recipe_arguments(gsm8k_dir, model_dir, output, *FEATURES)
            result = launch(CONFIGS / config, str(RECORDED), str(output / "records"), *arguments)
            assert_succeeded(result)
            records = [json.loads((output / "records" / f"rank{k}.json").read_text()) for k in range(2)]
            parameters = [torch.load(output / "records" / f"rank{k}.pt") for k in range(2)]
            runs[config] = Run(output, result.stdout, records, parameters)
        return runs[config]

    return run


def assert_ranks_hold_the_same_trained_model(run: Run, model_dir: Path) -> None:
    first, second = run.parameters
    assert first.keys() == second.keys()
    assert all(torch.equal(first[name], second[name]) for name in first), "the ranks ended with different models"
    initial = weights(model_dir)
    assert all(not torch.equal(first[name], initial[name]) for name in initial), "a parameter did not train"
    assert_trained(run.output, model_dir)  # checkpoint-2 reloads and equals the final save; eval before and after
    saved = weights(run.output)
    assert all(torch.equal(saved[name], first[name]) for name in saved), "the saved model is not the trained one"


def assert_features_ran(run: Run) -> None:
    steps = [log for log in run.records[0]["log_history"] if "loss" in log]
    assert [log["group_size/mean"] for log in steps] == [2.0, 4.0]
    assert all("filter/frac_groups_dropped" in log for log in steps)
    assert "loss: Liger fused linear GRPO" in run.stdout


def max_relative_difference(run: Run, baseline: Run, model_dir: Path) -> float:
    """Largest, over parameters, of |run - baseline| / |baseline - initial| (Frobenius norms)."""
    initial = weights(model_dir)
    ours, theirs = run.parameters[0], baseline.parameters[0]
    return max(((ours[n] - theirs[n]).norm() / (theirs[n] - initial[n]).norm()).item() for n in initial)


def test_the_fsdp2_cpu_config_trains_the_recipe_sharded(recipe_run, model_dir):
    run = recipe_run("fsdp2_cpu.yaml")
    for record in run.records:
        assert record["distributed_type"] == "DistributedType.FSDP" and record["num_processes"] == 2
        assert record["fsdp_module"], record["wrapper"]
        held = record["held"]
        assert held["dtensors"] == held["parameters"] == 26
        assert held["local"] < 0.6 * held["full"], held  # each rank holds about half of every parameter
    assert_ranks_hold_the_same_trained_model(run, model_dir)
    assert_features_ran(run)


@pytest.mark.slow
def test_fsdp2_on_cpu_trains_what_ddp_trains(recipe_run, model_dir):
    ddp, fsdp = recipe_run("cpu.yaml"), recipe_run("fsdp2_cpu.yaml")
    assert ddp.records[0]["wrapper"] == "DistributedDataParallel"
    assert_ranks_hold_the_same_trained_model(ddp, model_dir)
    # Measured here: 1.7e-7 (largest difference 7.5e-9 where training moved parameters by up to 1.5e-3): FSDP2
    # reduce-scatters gradients where DDP all-reduces buckets, so float rounding differs. Bound: 60x that.
    assert max_relative_difference(fsdp, ddp, model_dir) <= 1e-5


@pytest.mark.slow
@needs_deepspeed
@pytest.mark.parametrize("stage", [2, 3])
def test_deepspeed_zero_on_cpu_trains_what_ddp_trains(stage, recipe_run, model_dir):
    ddp, run = recipe_run("cpu.yaml"), recipe_run(f"zero{stage}_cpu.yaml")
    for record in run.records:
        assert record["distributed_type"] == "DistributedType.DEEPSPEED" and record["wrapper"] == "DeepSpeedEngine"
        held = record["held"]
        assert held["zero_stage"] == stage
        assert held["optimizer_local"] < 0.6 * held["full"], held  # each rank updates about half of the weights
        if stage == 3:
            assert held["local"] < 0.6 * held["full"], held  # and holds about half of every parameter
    assert_ranks_hold_the_same_trained_model(run, model_dir)
    assert_features_ran(run)
    # Measured here: 1.7e-7 (ZeRO-2) and 4.8e-6 (ZeRO-3; largest difference 2.7e-7 where training moved parameters
    # by up to 1.5e-3): DeepSpeed reduces gradients in its own partitions, so float rounding differs from DDP's.
    # Bound: 20x the larger.
    assert max_relative_difference(run, ddp, model_dir) <= 1e-4
