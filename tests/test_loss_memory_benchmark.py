"""`benchmarks/loss_memory.py` runs end to end (at a toy shape, so in seconds) and reports every path."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("liger_kernel", reason="liger-kernel is not installed (pip install 'trl-grpo-plus[liger]')")

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "loss_memory.py"


def test_the_loss_memory_benchmark_measures_each_path_against_the_floor(tmp_path):
    output = tmp_path / "loss_memory.json"
    toy = ["--lengths", "16", "--batch", "2", "--hidden", "64", "--vocab", "5000", "--devices", "cpu"]
    subprocess.run([sys.executable, str(SCRIPT), *toy, "--output", str(output)], check=True, capture_output=True)
    [row] = json.loads(output.read_text())["rows"]
    assert row["floor_bytes"] == 2 * (2 * 16 * 64 + 5000 * 64) * 2 + 2 * 16 * 2 * 8  # bf16 tensors, int64 ids/mask
    for path in ("naive", "trl", "liger"):
        # at a toy shape the step may fit in pages the process already holds, so a peak of 0 is possible
        assert row["paths"][path]["peak_bytes"] >= 0 and row["paths"][path]["seconds"] > 0
    assert "liger_vs_floor" in row["ratios"]
    assert "| cpu | 16 |" in output.with_suffix(".md").read_text()
