"""A few GRPO steps on a real pretrained checkpoint (stories260K) and real GSM8K rows, rewards by name."""

import json

import torch

from trl_grpo_plus import GRPOTrainer, hookimpl
from trl_grpo_plus.testing import tiny_grpo_config


class WordVariety:
    """A reward with real spread across a story model's completions, so the update is not vacuous."""

    @staticmethod
    def word_variety(completions, **kwargs):
        return [len(set(c.split())) / 8 for c in completions]

    @hookimpl
    def register_reward_functions(self, register):
        register(self.word_variety)


def test_grpo_trains_a_real_llama_checkpoint_on_gsm8k_rows(shared_dir, tmp_path, plugin_manager, register_plugin):
    register_plugin(WordVariety())
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = shared_dir / "models" / "stories260K"
    rows = [json.loads(line) for line in (shared_dir / "data" / "gsm8k" / "train.jsonl").open()][:8]
    dataset = Dataset.from_list([{"prompt": row["question"] + "\nAnswer:", "answer": row["answer"]} for row in rows])
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    before = [p.detach().clone() for p in model.parameters()]
    trainer = GRPOTrainer(
        model=model,
        args=tiny_grpo_config(
            tmp_path,
            max_completion_length=16,
            reward_plugins=["accuracy", "overlong_penalty", "word_variety"],
            reward_kwargs={"overlong_penalty": {"max_length": 16, "cache_length": 8}},
        ),
        train_dataset=dataset,
        processing_class=AutoTokenizer.from_pretrained(model_dir),
        plugin_manager=plugin_manager,
    )
    trainer.train()
    assert trainer.state.global_step == 2
    assert "rewards/accuracy/mean" in trainer.state.log_history[0]
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))
