"""Running a training script under `tests/scripts/` with one process, or several (torchrun with gloo on CPU)."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

SCRIPTS = Path(__file__).parent / "scripts"


def run_script(script, output_dir, *args, processes=1):
    """Run `tests/scripts/<script>`; returns (prompts scored by the policy per step, all ranks, sorted; each
    rank's JSON record)."""
    command = script_command(script, output_dir, *args, processes=processes)
    result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:  # progress bars and warnings bury the cause; lead with the lines that name it
        lines = result.stderr.splitlines()
        causes = [
            line for line in lines if any(w in line for w in ("Error", "error:", "terminate", "Signal", "Abort"))
        ]
        raise AssertionError(f"exit {result.returncode}:\n" + "\n".join(causes[-20:] + lines[-40:]))
    records = [json.loads((Path(output_dir) / f"rank{rank}.json").read_text()) for rank in range(processes)]
    scored = {}
    for record in records:
        for step, prompts in record.get("scored", {}).items():
            scored.setdefault(int(step), []).extend(prompts)
    return {step: sorted(prompts) for step, prompts in scored.items()}, records


def script_command(script, output_dir, *args, processes=1):
    """The command line that runs `tests/scripts/<script>` with `processes` processes."""
    path = SCRIPTS / script
    if processes == 1:
        return [sys.executable, str(path), str(output_dir), *args]
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    # torchrun-based launcher; the script's use_cpu=True makes accelerate pick the gloo backend on CPU.
    command = [accelerate, "launch", "--multi_gpu", "--num_processes", str(processes), "--num_machines", "1"]
    return command + ["--mixed_precision", "no", "--dynamo_backend", "no", str(path), str(output_dir), *args]
