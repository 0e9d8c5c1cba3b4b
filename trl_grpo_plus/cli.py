"""`trl-grpo-plus` command line: `grpo` is `trl grpo` with our trainer, `plugins` lists what is installed, `demo`
runs the offline demo."""

from __future__ import annotations

import argparse
import json
import sys

from .demo import DemoSettings, run_demo
from .registry import get_registry


def plugins_report(registry) -> dict:
    """Every loaded plugin with its origin and what it registers, plus load failures."""
    manager = registry.plugin_manager
    report = {}
    for name, _ in manager.loaded():
        info = manager.info(name)
        report[name] = {
            "distribution": info.distribution,
            "version": info.version,
            "builtin": info.builtin,
            **{
                kind: sorted(n for n in table if table.plugin_of(n) == name)
                for kind, table in registry.kinds().items()
            },
        }
    failures = [failure.describe() for failure in registry.load_failures]
    return {"plugins": report, "failures": failures}


def _print_plugins(report: dict) -> None:
    for name, entry in report["plugins"].items():
        origin = "built-in" if entry["builtin"] else f"{entry['distribution']} {entry['version']}"
        print(f"{name} ({origin})")
        for kind in ("reward_functions", "advantage_estimators", "group_size_schedules", "rollout_monitors"):
            if entry[kind]:
                print(f"  {kind}: {', '.join(entry[kind])}")
    for failure in report["failures"]:
        print(f"FAILED: {failure}")


def grpo(argv: list[str]) -> int:
    """`trl grpo`'s launch, with our script: TRL parses (so bad options fail before launching), resolves
    `--accelerate_config` (TRL's shipped configs by name, or a path), and hands what is left to `accelerate launch`."""
    from accelerate.commands.launch import launch_command, launch_command_parser
    from trl.cli.accelerate_config import resolve_accelerate_config_argument
    from trl.cli.commands.training import _subtract_subsequence  # what TRL's TrainingCommand.run uses

    from .scripts import grpo as script

    parser = script.make_parser(prog="trl-grpo-plus grpo")
    try:
        *_, config_remaining, cli_remaining = parser.parse_args_and_config(
            argv, return_remaining_strings=True, separate_remaining_strings=True
        )
        launch_args = resolve_accelerate_config_argument(config_remaining + cli_remaining)
    except (ValueError, ImportError) as error:  # a bad option or value: one line, before any process starts
        parser.error(str(error))
    script_args = _subtract_subsequence(argv, cli_remaining)
    launch_command(launch_command_parser().parse_args([*launch_args, script.__file__, *script_args]))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["grpo"]:  # its options are TRL's and ours, parsed by TrlParser, not here
        return grpo(argv[1:])
    parser = argparse.ArgumentParser(prog="trl-grpo-plus", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "grpo",
        help="train with GRPO as `trl grpo` does (same options and YAML keys), with this trainer and its plugins; "
        "`trl-grpo-plus grpo --help` lists every option",
        add_help=False,
    )
    plugins = commands.add_parser("plugins", help="list installed plugins, their versions and what each registers")
    plugins.add_argument("--json", action="store_true", help="print JSON instead of text")
    demo = commands.add_parser(
        "demo", help="offline demo: a small model learns word problems, warm start then GRPO (CPU, minutes)"
    )
    defaults = DemoSettings()
    demo.add_argument("--output-dir", default=defaults.output_dir, help="where to write the model, history and plot")
    demo.add_argument("--seed", type=int, default=defaults.seed, help="seed of the model, data and sampling")
    demo.add_argument("--warm-start-steps", type=int, default=defaults.warm_start_steps, help="supervised steps")
    demo.add_argument("--max-steps", type=int, default=defaults.max_steps, help="GRPO optimizer steps")
    demo.add_argument("--eval-every", type=int, default=defaults.eval_every, help="held-out evaluation interval")
    demo.add_argument(
        "--compare",
        action="store_true",
        help="also train TRL's own GRPOTrainer from the same warm start with the same settings, and plot both "
        "against completions generated (twice the time)",
    )
    args = parser.parse_args(argv)

    if args.command == "plugins":
        report = plugins_report(get_registry())
        print(json.dumps(report, indent=2)) if args.json else _print_plugins(report)
        return 0
    try:
        settings = DemoSettings(
            output_dir=args.output_dir,
            seed=args.seed,
            warm_start_steps=args.warm_start_steps,
            max_steps=args.max_steps,
            eval_every=args.eval_every,
            compare=args.compare,
        )
    except ValueError as error:
        parser.error(str(error))
    run_demo(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
