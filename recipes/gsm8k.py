"""GRPO on GSM8K with trl-grpo-plus: rewards, advantage estimator and group-size schedule chosen by name.

Greedy pass@1 on the test split is measured before and after training, printed as a table and written to
`<output_dir>/eval_results.json`. Every GRPOConfig, ModelConfig and script option below works on the command line and
in the YAML file given to --config (command-line values win).

One GPU (Qwen2.5-0.5B-Instruct from the Hub):
    accelerate launch --config_file recipes/accelerate/single_gpu.yaml recipes/gsm8k.py \
        --config recipes/configs/gsm8k.yaml

Eight GPUs on one machine: DDP, DeepSpeed ZeRO-2 / ZeRO-3 or FSDP2 (set num_processes in the file or on the line):
    accelerate launch --config_file recipes/accelerate/multi_gpu.yaml recipes/gsm8k.py --config recipes/configs/gsm8k.yaml
    accelerate launch --config_file recipes/accelerate/zero2.yaml recipes/gsm8k.py --config recipes/configs/gsm8k.yaml
    accelerate launch --config_file recipes/accelerate/zero3.yaml recipes/gsm8k.py --config recipes/configs/gsm8k.yaml
    accelerate launch --config_file recipes/accelerate/fsdp2.yaml recipes/gsm8k.py --config recipes/configs/gsm8k.yaml

Several machines: see recipes/accelerate/multi_node.yaml (run the same command on every machine).

LoRA, and vLLM generation (colocated with training, or a server started with `trl vllm-serve`):
    accelerate launch --config_file recipes/accelerate/single_gpu.yaml recipes/gsm8k.py \
        --config recipes/configs/gsm8k.yaml --use_peft --lora_r 32 --lora_alpha 64
    accelerate launch --config_file recipes/accelerate/single_gpu.yaml recipes/gsm8k.py \
        --config recipes/configs/gsm8k.yaml --use_vllm --vllm_mode colocate

CPU only, two processes, local GSM8K files, a small model (no GPU needed):
    accelerate launch --config_file recipes/accelerate/cpu.yaml --num_processes 2 recipes/gsm8k.py \
        --config recipes/configs/gsm8k_cpu.yaml --dataset_path ../shared/data/gsm8k --model_name_or_path <model dir>

CPU only, sharded over gloo: FSDP2 (fsdp2_cpu.yaml), or DeepSpeed ZeRO-2 / ZeRO-3 (zero2_cpu.yaml, zero3_cpu.yaml):
    accelerate launch --config_file recipes/accelerate/fsdp2_cpu.yaml recipes/gsm8k.py \
        --config recipes/configs/gsm8k_cpu.yaml --dataset_path ../shared/data/gsm8k --model_name_or_path <model dir>

Evaluation only (no training), on the first 200 test problems:
    accelerate launch --config_file recipes/accelerate/single_gpu.yaml recipes/gsm8k.py \
        --config recipes/configs/gsm8k.yaml --eval_only --eval_limit 200
"""

from transformers import AutoTokenizer
from trl import ModelConfig, get_peft_config, get_quantization_config

from trl_grpo_plus import GRPOConfig, GRPOTrainer, UnknownComponentError
from trl_grpo_plus.evaluation import evaluate_trainer, report_table, write_report
from trl_grpo_plus.gsm8k import GSM8KScriptArguments, as_prompts, load_gsm8k
from trl_grpo_plus.trl_parser import TrlParser

parser = TrlParser((GSM8KScriptArguments, GRPOConfig, ModelConfig))
script_args, training_args, model_args = parser.parse_args_and_config()
if not training_args.reward_plugins:
    training_args.reward_plugins = ["accuracy", "format"]
training_args.model_init_kwargs = {
    "revision": model_args.model_revision,
    "dtype": model_args.dtype,
    "attn_implementation": model_args.attn_implementation,
    "trust_remote_code": training_args.trust_remote_code,
    "quantization_config": get_quantization_config(model_args),
    **(training_args.model_init_kwargs or {}),
}

# Data first: a wrong path or column fails in seconds, before any model is loaded.
load = dict(
    dataset_path=script_args.dataset_path,
    dataset_name=script_args.dataset_name,
    dataset_config=script_args.dataset_config,
)
train_dataset = load_gsm8k(script_args.dataset_train_split, limit=script_args.train_limit, **load)
evaluate = script_args.eval_limit != 0  # --eval_limit 0 skips evaluation, and so needs no test split
if evaluate:
    test_dataset = load_gsm8k(script_args.dataset_test_split, limit=script_args.eval_limit, **load)
    evaluate = len(test_dataset) > 0
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
    test_dataset = as_prompts(test_dataset, tokenizer, script_args.system_prompt)

# Reward names are resolved here, before the model is loaded. This repository's own plugins ship as separate
# distributions; an unknown name among their rewards says which one to install.
try:
    trainer = GRPOTrainer(
        model=model_args.model_name_or_path,
        args=training_args,
        train_dataset=train_dataset,
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
    )
except UnknownComponentError as error:
    if error.name != "math_verify":
        raise
    raise UnknownComponentError(f"{error} It comes with pip install ./plugins/trl-grpo-plus-math") from None
trainer.accelerator.print(trainer.describe_plugins())

eval_settings = dict(
    batch_size=script_args.eval_batch_size,
    max_new_tokens=script_args.eval_max_new_tokens or training_args.max_completion_length,
)
evaluations = {}
if evaluate:
    evaluations["before"] = evaluate_trainer(
        trainer, test_dataset["prompt"], test_dataset["answer"], description="pass@1 before", **eval_settings
    )
    if not script_args.eval_only:  # with --eval_only the closing table is the only one
        trainer.accelerator.print(report_table(evaluations))

if not script_args.eval_only:
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    trainer.save_model(training_args.output_dir)
    trainer.accelerator.print(f"Model saved to {training_args.output_dir}")
    if evaluate:
        evaluations["after"] = evaluate_trainer(
            trainer, test_dataset["prompt"], test_dataset["answer"], description="pass@1 after", **eval_settings
        )

if evaluate and trainer.accelerator.is_main_process:
    print(report_table(evaluations))
    path = write_report(f"{training_args.output_dir}/eval_results.json", evaluations)
    print(f"Evaluation written to {path}")

trainer.accelerator.wait_for_everyone()
trainer.accelerator.end_training()
