"""Benchmark: peak memory and time of one GRPO loss forward+backward, from the last hidden states to their gradients.

Three ways to compute the same loss (TRL's defaults: loss_type "dapo", beta 0, one policy update per generation):

- naive: the full (batch, length, vocab) logits, then log-softmax and the loss, as TRL did before it chunked;
- trl: TRL 1.16's chunked LM head (`trl.kernels.ChunkedLogProbFunction`, log-probs and entropy, as GRPOTrainer asks
  for them), then the loss;
- liger: Liger's fused linear GRPO loss, through this package's `FusedGRPOLoss` (what `use_liger_loss=True` runs).

Each (device, length, path) runs in its own process, so one path's allocator cache cannot hide another's peak. The
peak counts everything the step allocates: the inputs (hidden states, token ids, mask) and the LM-head weight, their
gradients, and the temporaries. The physical floor is what any method must hold: inputs, weight and their gradients.
On CPU the peak is the process's resident-memory high-water mark (reset after imports) minus the resident memory
before the step; on CUDA it is `torch.cuda.max_memory_allocated`. The naive path is skipped (and its estimated need
reported) where it cannot fit. Time is one call's wall time on CPU; on CUDA, a second call after a warm-up.

    python benchmarks/loss_memory.py      # Qwen2.5-0.5B's head (896 x 151936), batch 8, lengths 256/1024/4096
    python benchmarks/loss_memory.py --lengths 256 --dtype float32      # quicker; fp32
Writes benchmarks/results/loss_memory.json and benchmarks/results/loss_memory.md (the README links the table).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

PATHS = ("naive", "trl", "liger")
RESULTS = Path(__file__).parent / "results"
GIB = 2**30


# --- one measurement, in a worker process ------------------------------------------------------------------------


def dapo_loss(logps: torch.Tensor, mask: torch.Tensor, advantages: torch.Tensor, epsilon: float = 0.2):
    """TRL's `_compute_loss` at its defaults (dapo, beta 0, old log-probs = the detached current ones)."""
    coef = torch.exp(logps - logps.detach())
    unclipped = coef * advantages[:, None]
    clipped = torch.clamp(coef, 1 - epsilon, 1 + epsilon) * advantages[:, None]
    return (-torch.min(unclipped, clipped) * mask).sum() / mask.sum().clamp(min=1.0)


def step(path: str, hidden, weight, ids, mask, advantages) -> None:
    if path == "naive":
        logits = (hidden @ weight.t()).float()
        logps = logits.gather(-1, ids[..., None]).squeeze(-1) - torch.logsumexp(logits, dim=-1)
        dapo_loss(logps, mask, advantages).backward()
    elif path == "trl":
        from trl.kernels import ChunkedLogProbFunction
        from trl.trainer.utils import _CHUNKED_LOGPROB_CHUNK_SIZE

        flat = hidden.reshape(-1, hidden.size(-1))
        logps, _entropy, *_ = ChunkedLogProbFunction.apply(
            flat, weight, None, ids.reshape(-1), 1.0, _CHUNKED_LOGPROB_CHUNK_SIZE, None, 1.0, ("log_probs", "entropy")
        )
        dapo_loss(logps.view_as(mask), mask, advantages).backward()
    else:
        from trl_grpo_plus.fused_loss import FusedGRPOLoss, FusedLossSettings

        settings = FusedLossSettings(loss_type="dapo", beta=0.0, max_completion_length=mask.size(1))
        loss, _ = FusedGRPOLoss(settings)(
            hidden,
            weight,
            None,
            ids,
            mask,
            advantages,
            old_per_token_logps=None,
            ref_per_token_logps=None,
            importance_sampling_ratio=None,
            dapo_normalizer=mask.sum(),
            accumulation_steps=1,
        )
        loss.backward()


def inputs(cli, device):
    generator = torch.Generator().manual_seed(0)
    dtype = getattr(torch, cli.dtype)
    shape = (cli.batch, cli.length)
    hidden = torch.randn(*shape, cli.hidden, generator=generator).to(device, dtype).requires_grad_()
    weight = (torch.randn(cli.vocab, cli.hidden, generator=generator) * 0.02).to(device, dtype).requires_grad_()
    ids = torch.randint(0, cli.vocab, shape, generator=generator).to(device)
    mask = torch.ones(shape, dtype=torch.long, device=device)
    advantages = torch.randn(cli.batch, generator=generator).to(device)
    return hidden, weight, ids, mask, advantages


def resident_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def measure(cli) -> dict:
    torch.manual_seed(0)
    if cli.device == "cuda":
        step(cli.path, *inputs(cli, "cuda"))  # warm-up: kernels, cuBLAS workspaces
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        start = time.perf_counter()
        step(cli.path, *inputs(cli, "cuda"))
        torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        peak = torch.cuda.max_memory_allocated() - before
    else:
        if cli.path == "trl":  # import before the baseline, as the other paths' imports are
            import trl.kernels  # noqa: F401
        else:
            import trl_grpo_plus.fused_loss  # noqa: F401
        before = resident_bytes("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # reset the high-water mark to the current resident size
        start = time.perf_counter()
        step(cli.path, *inputs(cli, "cpu"))
        seconds = time.perf_counter() - start
        peak = resident_bytes("VmHWM") - before
    return {"peak_bytes": peak, "seconds": seconds}


# --- the driver ------------------------------------------------------------------------------------------------


def floor_bytes(cli, length: int) -> int:
    """Inputs, weight and their gradients: what every method holds at the end of the backward."""
    element = torch.empty((), dtype=getattr(torch, cli.dtype)).element_size()
    tokens = cli.batch * length
    return 2 * (tokens * cli.hidden + cli.vocab * cli.hidden) * element + tokens * 2 * 8  # + ids and mask (int64)


def naive_need_bytes(cli, length: int) -> int:
    """Rough peak of the naive path: per logit, the input-dtype logits and their gradient, and three fp32 tensors
    (the upcast copy, its gradient, a softmax temporary); 10% under what length 256 measured on CPU."""
    element = torch.empty((), dtype=getattr(torch, cli.dtype)).element_size()
    logits = cli.batch * length * cli.vocab
    return floor_bytes(cli, length) + logits * (2 * element + 3 * 4)


def available_bytes(device: str) -> int:
    if device == "cuda":
        return torch.cuda.mem_get_info()[0]
    return resident_available()


def resident_available() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def run_worker(cli, device: str, length: int, path: str) -> dict:
    command = [sys.executable, __file__, "--worker", "--device", device, "--path", path, "--length", str(length)]
    command += ["--batch", str(cli.batch), "--hidden", str(cli.hidden), "--vocab", str(cli.vocab)]
    command += ["--dtype", cli.dtype]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        reason = "killed (out of memory?)" if result.returncode < 0 else result.stderr.strip().splitlines()[-1]
        return {"skipped": f"failed: {reason}"}
    return json.loads(result.stdout.strip().splitlines()[-1])


def markdown(result: dict) -> str:
    setup = result["setup"]
    lines = [
        f"Peak memory of one GRPO loss forward+backward (hidden {setup['hidden']}, vocab {setup['vocab']}, batch "
        f"{setup['batch']}, {setup['dtype']}); floor = inputs + LM-head weight + their gradients. "
        "Produced by `python benchmarks/loss_memory.py`.",
        "",
        "| device | length | floor GiB | naive GiB | TRL chunked GiB | Liger GiB | Liger / TRL | Liger / floor "
        "| naive s | TRL s | Liger s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        paths = row["paths"]

        def gib(path):
            value = paths[path]
            return f"{value['peak_bytes'] / GIB:.2f}" if "peak_bytes" in value else value["skipped"]

        def seconds(path):
            return f"{paths[path]['seconds']:.1f}" if "seconds" in paths[path] else "-"

        ratios = row.get("ratios", {})
        lines.append(
            f"| {row['device']} | {row['length']} | {row['floor_bytes'] / GIB:.2f} | {gib('naive')} | {gib('trl')} "
            f"| {gib('liger')} | {ratios.get('liger_vs_trl', float('nan')):.2f} "
            f"| {ratios.get('liger_vs_floor', float('nan')):.2f} | {seconds('naive')} | {seconds('trl')} "
            f"| {seconds('liger')} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[256, 1024, 4096], help="completion lengths")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=896, help="Qwen2.5-0.5B's hidden size")
    parser.add_argument("--vocab", type=int, default=151936, help="Qwen2.5's vocabulary")
    parser.add_argument(
        "--dtype",
        default="bfloat16",
        choices=["bfloat16", "float32"],
        help="dtype of the hidden states and the LM head (bf16, as Qwen2.5 trains)",
    )
    parser.add_argument("--devices", nargs="+", default=None, help="default: cpu, and cuda when present")
    parser.add_argument("--paths", nargs="+", default=list(PATHS), choices=PATHS)
    parser.add_argument("--output", type=Path, default=RESULTS / "loss_memory.json")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--device", help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    parser.add_argument("--length", type=int, help=argparse.SUPPRESS)
    cli = parser.parse_args()
    if cli.worker:
        print(json.dumps(measure(cli)))
        return

    devices = cli.devices or ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    for device in devices:
        for length in cli.lengths:
            row = {"device": device, "length": length, "floor_bytes": floor_bytes(cli, length), "paths": {}}
            for path in cli.paths:
                need = naive_need_bytes(cli, length)
                if path == "naive" and need > 0.8 * available_bytes(device):
                    row["paths"][path] = {"skipped": f"needs ~{need / GIB:.0f} GiB", "estimated_bytes": need}
                else:
                    row["paths"][path] = run_worker(cli, device, length, path)
                print(device, length, path, row["paths"][path], flush=True)
            peaks = {path: value["peak_bytes"] for path, value in row["paths"].items() if "peak_bytes" in value}
            if "liger" in peaks:
                row["ratios"] = {"liger_vs_floor": peaks["liger"] / row["floor_bytes"]}
                if peaks.get("trl"):  # a toy shape can peak at 0 bytes
                    row["ratios"]["liger_vs_trl"] = peaks["liger"] / peaks["trl"]
                    row["ratios"]["seconds_liger_vs_trl"] = (
                        row["paths"]["liger"]["seconds"] / row["paths"]["trl"]["seconds"]
                    )
            rows.append(row)
    result = {
        "setup": {
            "batch": cli.batch,
            "hidden": cli.hidden,
            "vocab": cli.vocab,
            "dtype": cli.dtype,
            "loss": "dapo, beta 0 (TRL's defaults)",
            "torch": torch.__version__,
            "cpu": platform.processor() or platform.machine(),
            "cpu_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        },
        "rows": rows,
    }
    cli.output.parent.mkdir(parents=True, exist_ok=True)
    cli.output.write_text(json.dumps(result, indent=2) + "\n")
    table = markdown(result)
    cli.output.with_suffix(".md").write_text(table)
    print(table)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
