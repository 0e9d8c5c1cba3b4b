"""Run recipes/gsm8k.py exactly as launched, and record on every rank what its training ran on and ended with.

    accelerate launch --config_file <config> recipes/.../recipe_recorded.py <record_dir> <recipe arguments...>

Right after `trainer.train()` every rank writes `<record_dir>/rank<k>.json` (process type, how the prepared model is
wrapped, whether its parameters are DTensor shards and how much of them this rank holds) and `rank<k>.pt` (the full
parameters, gathered from the shards); then the recipe goes on (save, evaluation after training).
"""

import json
import os
import runpy
import sys
from pathlib import Path

import torch
from torch.distributed.fsdp import FSDPModule
from torch.distributed.tensor import DTensor

from trl_grpo_plus import GRPOTrainer

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "gsm8k.py"


def full_parameters(trainer) -> tuple[dict[str, torch.Tensor], dict]:
    """Every parameter whole, on every rank (a collective under FSDP and ZeRO-3), and how it was held."""
    model = trainer.model_wrapped
    unwrapped = trainer.accelerator.unwrap_model(model)
    held = {"local": 0, "full": 0, "dtensors": 0, "parameters": 0}
    params = {}
    if type(model).__name__ == "DeepSpeedEngine":
        held["zero_stage"] = model.zero_optimization_stage()
        # the fp32 master weights this rank updates: its share of the optimizer state
        optimizer = model.optimizer
        groups = getattr(optimizer, "single_partition_of_fp32_groups", None)  # ZeRO-1/2
        groups = groups if groups is not None else getattr(optimizer, "fp32_partitioned_groups_flat", [])  # ZeRO-3
        held["optimizer_local"] = sum(group.numel() for group in groups)
    if held.get("zero_stage") == 3:
        import deepspeed

        for name, p in unwrapped.named_parameters():
            held["local"] += p.ds_tensor.numel()
            held["full"] += p.ds_numel
            held["parameters"] += 1
            with deepspeed.zero.GatheredParameters([p]):
                params[name] = p.detach().clone()
        return params, held
    for name, p in unwrapped.named_parameters():
        held["parameters"] += 1
        if isinstance(p, DTensor):
            held["dtensors"] += 1
            held["local"] += p.to_local().numel()
            p = p.full_tensor()
        else:
            held["local"] += p.numel()
        held["full"] += p.numel()
        params[name] = p.detach().clone()
    return params, held


def main() -> None:
    record_dir = Path(sys.argv.pop(1))
    record_dir.mkdir(parents=True, exist_ok=True)
    train = GRPOTrainer.train

    def recorded_train(trainer, *args, **kwargs):
        output = train(trainer, *args, **kwargs)
        params, held = full_parameters(trainer)
        rank = trainer.accelerator.process_index
        torch.save(params, record_dir / f"rank{rank}.pt")
        record = {
            "distributed_type": str(trainer.accelerator.distributed_type),
            "num_processes": trainer.accelerator.num_processes,
            "wrapper": type(trainer.model_wrapped).__name__,
            "fsdp_module": isinstance(trainer.model_wrapped, FSDPModule),
            "held": held,
            "log_history": trainer.state.log_history,
        }
        (record_dir / f"rank{rank}.json").write_text(json.dumps(record))
        return output

    GRPOTrainer.train = recorded_train
    sys.argv[0] = str(RECIPE)
    runpy.run_path(str(RECIPE), run_name="__main__")
    # The recipe has ended training; leave before gloo's teardown, which can hang a rank whose peer has exited
    # (see rank_records.write_and_finish).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
