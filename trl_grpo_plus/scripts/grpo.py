"""TRL's `grpo` script with our trainer: what `trl-grpo-plus grpo` launches through accelerate.

It takes every argument and YAML key of `trl grpo` (TRL's `GRPOScriptArguments`, `ModelConfig`,
`DatasetMixtureConfig`) with our `GRPOConfig` in place of TRL's, so every extension option is a key too, and runs
TRL's own `main` with our `GRPOTrainer`. Reward names (`--reward_funcs`, `--reward_plugins`) resolve through the
plugin registry, where TRL's reward library is registered under TRL's names; dotted import paths work as in TRL.

    trl-grpo-plus grpo --config run.yaml
    python -m trl_grpo_plus.scripts.grpo --config run.yaml   # one process, no launcher
"""

from __future__ import annotations

import atexit
import os
import sys

import trl
from trl import DatasetMixtureConfig, ModelConfig
from trl.scripts.grpo import GRPOScriptArguments
from trl.scripts.grpo import main as trl_main

from trl_grpo_plus import GRPOConfig, GRPOTrainer
from trl_grpo_plus.trl_parser import TrlParser


def make_parser(prog: str | None = None) -> TrlParser:
    return TrlParser((GRPOScriptArguments, GRPOConfig, ModelConfig, DatasetMixtureConfig), prog=prog)


def main(script_args, training_args, model_args, dataset_args) -> None:
    # TRL's script puts a reward model first, then its `reward_funcs` by name or dotted path; our trainer keeps that
    # order with every name in `reward_plugins`, ahead of any given there.
    training_args.reward_plugins = list(script_args.reward_funcs or []) + list(training_args.reward_plugins or [])
    script_args.reward_funcs = None
    # TRL's `main` looks its trainer up as `trl.GRPOTrainer` when it runs; this process runs nothing else. The
    # trainer is kept past `main`'s return, so its DDP model is never freed (see the end of this file).
    kept = []

    def trainer(*args, **kwargs) -> GRPOTrainer:
        kept.append(GRPOTrainer(*args, **kwargs))
        return kept[-1]

    trl.GRPOTrainer = trainer
    trl_main(script_args, training_args, model_args, dataset_args)
    return kept


if __name__ == "__main__":
    parser = make_parser()
    trainers = main(*parser.parse_args_and_config(fail_with_unknown_args=False))
    # Trained, saved, trackers closed. Freeing the DDP model after TRL has ended the process group joins gloo's
    # threads, which hangs a 2-process CPU run whose peer has exited (seen twice here, in ~Reducer ->
    # ~ProcessGroupGloo). So the trainers stay referenced; run the exit handlers (a tracker's or a reward module's),
    # then leave without that teardown.
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
