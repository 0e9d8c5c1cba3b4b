"""What the training scripts record on each rank, and how they end a (possibly distributed) run cleanly."""

import json
import os
import sys


def record_scored_prompts(trainer, tokenizer) -> dict:
    """Collect, per optimizer step, the prompt of every sequence that enters the policy's scoring forward."""
    scored = {}

    def count_scoring_forward(module, args, kwargs):
        if "labels" in kwargs:  # TRL's log-prob forward passes labels; generation's forwards do not
            texts = tokenizer.batch_decode(kwargs["input_ids"], skip_special_tokens=True)
            scored.setdefault(trainer.state.global_step, []).extend(t[: t.index("=") + 1] for t in texts)

    trainer.model.register_forward_pre_hook(count_scoring_forward, with_kwargs=True)
    return scored


def write_and_finish(trainer, output_dir, record: dict) -> None:
    """Write `<output_dir>/rank<k>.json`, wait for every rank, and exit at once.

    Past this point nothing is left to do, and gloo's teardown is fragile: left to interpreter exit its threads can
    abort one rank, and `destroy_process_group` has hung rank 0 after rank 1 had exited (seen once under load)."""
    (output_dir / f"rank{trainer.accelerator.process_index}.json").write_text(json.dumps(record))
    trainer.accelerator.wait_for_everyone()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
