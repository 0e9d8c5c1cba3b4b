"""`TrlParser` for scripts built on trl_grpo_plus: TRL's parser, with errors a person can read.

argparse answers a bad value by printing the whole usage first: with GRPOConfig, ModelConfig and a script's own
options that is over 200 lines, and the one line that matters scrolls away. Here the error is the last, short thing
printed, with a pointer to `--help`.
"""

from __future__ import annotations

import trl


class TrlParser(trl.TrlParser):
    """TRL's `TrlParser` (same arguments, `--config` YAML included) whose errors skip the full usage text."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n{self.prog}: run with --help to list every option.\n")


__all__ = ["TrlParser"]
