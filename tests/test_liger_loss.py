"""`use_liger_loss`: trains like TRL's loss, logs TRL's loss metrics, and refuses what it cannot compute exactly."""

import importlib.util
import subprocess
import sys

import launching
import pytest
import torch
import trl
from transformers import Qwen2MoeConfig, Qwen2MoeForCausalLM

import trl_grpo_plus
from trl_grpo_plus.testing import tiny_grpo_config, tiny_grpo_settings, tiny_model, tiny_prompt_dataset, tiny_tokenizer

pytest.importorskip("liger_kernel", reason="liger-kernel is not installed (pip install 'trl-grpo-plus[liger]')")


def digit_share(completions, **kwargs):
    return [sum(ch.isdigit() for ch in c) / max(len(c), 1) for c in completions]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-model")
    tiny_model(tiny_tokenizer()).save_pretrained(path)  # beta > 0: TRL loads the reference model from a path
    return str(path)


def train(trainer_cls, config_cls, checkpoint, output_dir, peft_config=None, **overrides):
    settings = tiny_grpo_settings(
        output_dir,
        max_steps=12,
        learning_rate=5e-2,
        beta=0.05,
        gradient_accumulation_steps=2,
        per_device_train_batch_size=8,
        num_generations=8,
    )
    tokenizer = tiny_tokenizer()
    trainer = trainer_cls(
        model=checkpoint,
        reward_funcs=digit_share,
        args=config_cls(**{**settings, **overrides}),
        train_dataset=tiny_prompt_dataset(64),
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    trainer.train()
    return trainer


def logged(trainer, key):
    return [entry[key] for entry in trainer.state.log_history if key in entry]


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_training_with_the_fused_loss_follows_training_with_trls_loss(tmp_path, checkpoint, lora):
    from peft import LoraConfig

    peft_config = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"]) if lora else None
    reference = train(trl.GRPOTrainer, trl.GRPOConfig, checkpoint, tmp_path / "trl", peft_config)
    fused = train(
        trl_grpo_plus.GRPOTrainer,
        trl_grpo_plus.GRPOConfig,
        checkpoint,
        tmp_path / "fused",
        peft_config,
        use_liger_loss=True,
    )
    ref_rewards, fused_rewards = logged(reference, "reward"), logged(fused, "reward")
    assert len(fused_rewards) == 12
    # Equal losses sample equal completions here, so the reward curves agree step by step
    assert fused_rewards == pytest.approx(ref_rewards, abs=0.02)
    if not lora:  # the full model learns the task within these steps
        assert sum(fused_rewards[-3:]) / 3 > sum(fused_rewards[:3]) / 3 + 0.3
    for key in ("loss", "kl", "grad_norm", "clip_ratio/region_mean"):
        assert logged(fused, key) == pytest.approx(logged(reference, key), rel=1e-3, abs=1e-5), key
    assert "entropy" not in fused.state.log_history[0]  # the fused loss never forms the full distribution


def test_the_start_up_line_names_the_fused_loss(tmp_path):
    tokenizer = tiny_tokenizer()
    trainer = trl_grpo_plus.GRPOTrainer(
        model=tiny_model(tokenizer),
        reward_funcs=digit_share,
        args=tiny_grpo_config(tmp_path, use_liger_loss=True, liger_chunk_size=2),
        train_dataset=tiny_prompt_dataset(8),
        processing_class=tokenizer,
    )
    assert "loss: Liger fused linear GRPO (dapo, chunk 2)" in trainer.describe_plugins()


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(liger_chunk_size=0), "liger_chunk_size must be an integer >= 1"),
        (dict(liger_chunk_size=4), "configure the fused loss, which is off"),
        (dict(liger_compile=True), "configure the fused loss, which is off"),
        (dict(use_liger_loss=True, loss_type="luspo"), "loss_type='luspo' unless importance_sampling_level"),
        (dict(use_liger_loss=True, top_entropy_quantile=0.2), "top_entropy_quantile < 1"),
        (dict(use_liger_loss=True, entropy_coef=0.01), "an entropy bonus"),
        (dict(use_liger_loss=True, off_policy_mask_threshold=0.5), "off_policy_mask_threshold"),
    ],
)
def test_bad_fused_loss_settings_fail_in_the_config(tmp_path, settings, message):
    with pytest.raises(ValueError, match=message):
        tiny_grpo_config(tmp_path, **settings)


def test_the_config_says_how_to_install_liger_when_it_is_missing(tmp_path, monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *args: None if name == "liger_kernel" else find_spec(name, *args)
    )
    with pytest.raises(ImportError, match=r"pip install 'trl-grpo-plus\[liger\]'"):
        tiny_grpo_config(tmp_path, use_liger_loss=True)


def test_a_softcapped_lm_head_is_refused_at_construction(tmp_path):
    tokenizer = tiny_tokenizer()
    model = tiny_model(tokenizer)
    model.config.final_logit_softcapping = 30.0  # as Gemma 2 sets it
    with pytest.raises(ValueError, match="final logit softcapping"):
        trl_grpo_plus.GRPOTrainer(
            model=model,
            reward_funcs=digit_share,
            args=tiny_grpo_config(tmp_path, use_liger_loss=True),
            train_dataset=tiny_prompt_dataset(8),
            processing_class=tokenizer,
        )


def test_a_moe_router_auxiliary_loss_is_refused_at_construction(tmp_path):
    tokenizer = tiny_tokenizer()
    config = Qwen2MoeConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        moe_intermediate_size=32,
        shared_expert_intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
        num_experts=4,
        num_experts_per_tok=2,
        router_aux_loss_coef=0.01,
    )
    torch.manual_seed(0)
    with pytest.raises(ValueError, match="router_aux_loss_coef=0.0"):
        trl_grpo_plus.GRPOTrainer(
            model=Qwen2MoeForCausalLM(config),
            reward_funcs=digit_share,
            args=tiny_grpo_config(tmp_path, use_liger_loss=True),
            train_dataset=tiny_prompt_dataset(8),
            processing_class=tokenizer,
        )


def test_two_processes_synchronise_the_fused_loss_gradients(tmp_path):
    # DDP averages gradients in hooks armed by its forward; the fused loss runs the backbone through that forward
    # (TRL's forward redirection), or the ranks, which score different completions, would drift apart.
    _, fused = launching.run_script("train_fused_loss.py", tmp_path / "fused", "--use_liger_loss", processes=2)
    _, reference = launching.run_script("train_fused_loss.py", tmp_path / "trl", processes=2)
    fused_params = [torch.load(tmp_path / "fused" / f"rank{rank}.pt") for rank in range(2)]
    reference_params = torch.load(tmp_path / "trl" / "rank0.pt")
    initial = tiny_model(tiny_tokenizer()).state_dict()
    for name, value in reference_params.items():
        assert torch.equal(fused_params[0][name], fused_params[1][name]), name
        # Adam turns float-level gradient differences into up to ~1% of a 5e-2 step on near-zero gradients
        torch.testing.assert_close(fused_params[0][name], value, rtol=0, atol=1e-3, msg=name)
    assert any(not torch.equal(value, initial[name]) for name, value in reference_params.items())

    def first_grad_norm(log_history):
        return next(entry["grad_norm"] for entry in log_history if "grad_norm" in entry)

    # the synchronised gradient of the first step, both ranks' completions in it
    assert first_grad_norm(fused[0]["log_history"]) == pytest.approx(first_grad_norm(reference[0]["log_history"]))


def test_a_liger_that_is_installed_but_fails_to_import_says_so(monkeypatch):
    from trl_grpo_plus import fused_loss

    fused_loss._grpo_function_with_stats.cache_clear()
    monkeypatch.setitem(sys.modules, "liger_kernel.chunked_loss.grpo_loss", None)  # its import now fails
    try:
        with pytest.raises(ImportError, match="needs liger-kernel, which failed to import"):
            fused_loss.FusedGRPOLoss(fused_loss.FusedLossSettings())
    finally:
        fused_loss._grpo_function_with_stats.cache_clear()


def test_importing_the_package_does_not_import_liger():
    code = "import sys, trl_grpo_plus; assert 'liger_kernel' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
