"""The kill-and-resume kit: an uninterrupted run, and the same run SIGKILLed mid-step then resumed, side by side.

`tests/scripts/train_resumable.py` trains with a checkpoint every 3 steps. A killed run dies (SIGKILL, every
process) in the generation or the backward of step `kill_at`; it is then resumed with `resume_from_checkpoint=True`,
from the last checkpoint on disk. CPU training is deterministic, so the resumed run must end with the very same
parameters, and log the very same metrics after the checkpoint, as the uninterrupted one.
"""

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import torch
from launching import run_script, script_command

# Wall-clock measurements differ between any two runs; everything else logged must not.
TIMINGS = re.compile(r"(step_time|_runtime|_per_second|^rewards/.+/seconds)$")


@dataclass
class Run:
    folder: Path
    records: list  # each rank's JSON record

    def parameters(self, rank=0):
        return torch.load(self.folder / f"parameters_rank{rank}.pt")

    def metrics_after(self, step):
        """Every per-step log entry after `step`, without timings. The end-of-training summary is left out: its
        `train_loss` averages over the steps this process ran, which after a resume are only the resumed ones."""
        return [
            {key: value for key, value in entry.items() if not TIMINGS.search(key)}
            for entry in self.records[0]["log_history"]
            if entry["step"] > step and "train_runtime" not in entry
        ]


def train(folder, settings, *args, processes=1):
    _, records = run_script(
        "train_resumable.py", folder, "--settings", json.dumps(settings), *args, processes=processes
    )
    return Run(Path(folder), records)


def kill(folder, settings, kill_at, during, *args, processes=1):
    """Train until SIGKILLed in step `kill_at`'s generation or backward; returns the checkpoints left on disk."""
    arguments = ["--settings", json.dumps(settings), "--kill_at", str(kill_at), "--kill_during", during, *args]
    command = script_command("train_resumable.py", folder, *arguments, processes=processes)
    result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=600)
    assert result.returncode != 0, "the run was to be killed, but it finished"
    assert not list(Path(folder).glob("rank*.json")), "the run was to be killed, but it finished"
    return sorted(Path(folder).glob("checkpoint-*"), key=lambda path: int(path.name.split("-")[1]))


def kill_and_resume(tmp_path, settings, kill_at=5, during="generation", processes=1, script_args=()):
    """(uninterrupted run, killed-then-resumed run, the step it resumed from)."""
    uninterrupted = train(tmp_path / "uninterrupted", settings, *script_args, processes=processes)
    checkpoints = kill(tmp_path / "killed", settings, kill_at, during, *script_args, processes=processes)
    assert checkpoints, "the run was killed before its first checkpoint"
    resumed_from = int(checkpoints[-1].name.split("-")[1])
    resumed = train(tmp_path / "killed", settings, "--resume", *script_args, processes=processes)
    return uninterrupted, resumed, resumed_from


def assert_resumed_exactly(uninterrupted, resumed, resumed_from, processes=1):
    for rank in range(processes):
        expected, got = uninterrupted.parameters(rank), resumed.parameters(rank)
        differing = [name for name in expected if not torch.equal(expected[name], got[name])]
        assert not differing, f"rank {rank}: parameters differ from the uninterrupted run's: {differing}"
    after = uninterrupted.metrics_after(resumed_from)
    assert after, "no step was logged after the checkpoint"
    assert resumed.metrics_after(resumed_from) == after
