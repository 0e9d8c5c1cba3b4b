"""The accelerate launch, held to what it asked for: as many processes as were started, training together, on the
engine the accelerate config names (FSDP, DeepSpeed), with the model really sharded; and FSDP2 on CPU processes.

Accelerate gives no warning when a launch does not take: without a GPU and without `use_cpu`, every process started
by `accelerate launch` sets itself up as a single process (`DistributedType.NO`), so N copies train alone and write
to the same `output_dir`; and with `use_cpu`, an FSDP or DeepSpeed config can fall back to DDP. The trainer refuses
both, saying what happened and how to fix it.

Accelerate 1.15 applies its FSDP plugin only to GPU-like process types (`AcceleratorState.__init__` turns
`MULTI_GPU`, `MULTI_XPU`, ... into `FSDP`, never `MULTI_CPU`), though PyTorch's FSDP2 (`fully_shard`) runs on CPU
over gloo. When the launch asks for FSDP2 and the processes are CPU ones joined over gloo, `shard_cpu_processes` does
what that branch does (`recipes/accelerate/fsdp2_cpu.yaml`).

TRL seams (see `trainer.py`): `create_accelerator_and_postprocess` (FSDP2 on CPU, then `check_launch`) and
`_prepare_for_training` (`check_sharded`, once accelerate has prepared the model).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from accelerate.state import PartialState
from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin, is_deepspeed_available
from torch.distributed.tensor import DTensor

from .errors import LaunchError

logger = logging.getLogger(__name__)

FSDP, DEEPSPEED = "FSDP", "DeepSpeed"

_CPU_FIX = (
    "On CPU, set use_cpu: true in the training config (--use_cpu true), so that the processes join over gloo "
    "(recipes/configs/gsm8k_cpu.yaml does; launch with recipes/accelerate/cpu.yaml for DDP or fsdp2_cpu.yaml for "
    "FSDP2); on GPUs, check that every process sees its GPU (CUDA_VISIBLE_DEVICES, nvidia-smi)."
)

_DDP_COPIES = " (every process holding a full copy under DDP)"


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "false").lower() in ("1", "true", "yes")


def requested_engine(args: Any) -> str | None:
    """`"FSDP"` or `"DeepSpeed"` when the accelerate config (the launcher's `ACCELERATE_USE_*` variables) or the
    training arguments (`fsdp`, `deepspeed`) ask for that engine; None otherwise."""
    if _env_flag("ACCELERATE_USE_DEEPSPEED") or getattr(args, "deepspeed", None):
        return DEEPSPEED
    if _env_flag("ACCELERATE_USE_FSDP") or getattr(args, "fsdp_plugin_args", None):
        return FSDP
    return None


def shard_cpu_processes(accelerator: Any, args: Any) -> bool:
    """Select FSDP2 for CPU processes joined over gloo when the launch asks for FSDP2; True when it did.

    Does what accelerate's own FSDP branch does for GPU processes: the FSDP plugin (from the launcher's `FSDP_*`
    variables, or the training arguments' `fsdp_config`, as transformers builds it) becomes the state's, and the
    process type becomes `FSDP`, so `accelerator.prepare` shards the model with `fully_shard`. Other backends (mpi)
    are left as accelerate set them, for `check_launch` to refuse.
    """
    state = accelerator.state
    if (
        requested_engine(args) != FSDP
        or state.distributed_type != DistributedType.MULTI_CPU
        or state.backend != "gloo"
    ):
        return False
    # FSDP1's plugin refuses to be built without an accelerator device, so this is FSDP2
    plugin = FullyShardedDataParallelPlugin(**(getattr(args, "fsdp_plugin_args", None) or {}))
    if state.mixed_precision != "no":
        plugin.set_mixed_precision(state.mixed_precision)
    state.fsdp_plugin = plugin
    state.distributed_type = DistributedType.FSDP
    # As AcceleratorState records its choice: a later AcceleratorState() copies the process type from here.
    PartialState._shared_state["distributed_type"] = DistributedType.FSDP
    if accelerator.is_main_process:
        logger.info(
            "trl_grpo_plus: FSDP2 over gloo on %d CPU processes (accelerate runs CPU processes as DDP; the launch "
            "asked for FSDP2).",
            accelerator.num_processes,
        )
    return True


def check_launch(accelerator: Any, args: Any) -> None:
    """Refuse a launch that did not take: fewer processes than `WORLD_SIZE`, processes that do not train together,
    or an engine other than the one the accelerate config asks for."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    processes, kind = accelerator.num_processes, accelerator.distributed_type
    if world_size > processes:
        raise LaunchError(
            f"WORLD_SIZE={world_size}, but accelerate runs this process as {processes} of {processes} "
            f"({kind}): each of the {world_size} launched processes would train its own copy of the model and "
            f"write to the same output_dir ({args.output_dir}). Accelerate found no GPU for it and was not told "
            f"to use the CPU. {_CPU_FIX}"
        )
    if processes > 1 and kind == DistributedType.NO:
        raise LaunchError(
            f"{processes} processes share a process group, but accelerate set up no data parallelism for them "
            f"({kind}, backend {accelerator.state.backend}): each would train its own copy of the model, its "
            f"gradients never averaged with the others'. Accelerate found no GPU and use_cpu is not set. {_CPU_FIX}"
        )
    engine = requested_engine(args)
    expected = {FSDP: DistributedType.FSDP, DEEPSPEED: DistributedType.DEEPSPEED}.get(engine)
    if expected is not None and kind != expected:
        raise LaunchError(
            f"The accelerate config asks for {engine}, but accelerate set up {kind} with {processes} process(es): "
            f"the model would not be sharded{_DDP_COPIES if processes > 1 else ''}. "
            f"{_engine_fix(engine, accelerator, args)}"
        )


def _engine_fix(engine: str, accelerator: Any, args: Any) -> str:
    if accelerator.distributed_type != DistributedType.MULTI_CPU:
        return f"{engine} runs on GPU processes, or on CPU processes joined over gloo; these are neither. {_CPU_FIX}"
    if engine == DEEPSPEED:
        return (
            "Accelerate skips DeepSpeed for CPU processes when the environment tells it to use the CPU "
            "(ACCELERATE_USE_CPU): unset it and keep use_cpu: true in the training config (recipes/accelerate/"
            "zero2_cpu.yaml, zero3_cpu.yaml), or launch with recipes/accelerate/fsdp2_cpu.yaml."
        )
    return (
        f"FSDP2 on CPU processes runs over gloo; these use {accelerator.state.backend}: set ddp_backend: gloo "
        "(recipes/accelerate/fsdp2_cpu.yaml), or launch with recipes/accelerate/cpu.yaml for DDP."
    )


def check_sharded(model: Any, accelerator: Any, args: Any) -> None:
    """After `accelerator.prepare`: refuse a model the engine asked for did not shard (FSDP: an `FSDPModule` whose
    parameters are `DTensor` shards, or FSDP1's wrapper; DeepSpeed: a `DeepSpeedEngine`)."""
    engine = requested_engine(args)
    if engine is None:
        return
    if engine == FSDP:
        from torch.distributed.fsdp import FSDPModule, FullyShardedDataParallel

        sharded = isinstance(model, FullyShardedDataParallel) or (
            isinstance(model, FSDPModule) and all(isinstance(p, DTensor) for p in model.parameters())
        )
    else:
        sharded = is_deepspeed_available() and type(model).__name__ == "DeepSpeedEngine"
    if not sharded:
        raise LaunchError(
            f"The accelerate config asks for {engine}, but the model accelerate prepared for training is a "
            f"{type(model).__name__} ({accelerator.distributed_type}, {accelerator.num_processes} process(es)): it "
            f"is not sharded, so every process would hold and train a full copy. "
            f"{_engine_fix(engine, accelerator, args)}"
        )
