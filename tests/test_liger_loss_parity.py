"""`use_liger_loss` computes TRL's loss: same value, same gradients, same metrics, on the same micro-batch.

Each case builds TRL's trainer and ours (with `use_liger_loss=True`) from one checkpoint and settings, feeds both
`_compute_loss` one synthetic micro-batch, and compares the loss, the gradient of the backbone's last hidden states,
every parameter's gradient (the LM head's included) and the logged metrics. Errors are norm-relative, fp32. The
model's vocabulary (4,200) is wider than Liger's vocabulary chunk (4,096), so the chunked softmax is exercised.
"""

import dataclasses

import pytest
import torch
import trl
from transformers import Qwen2Config, Qwen2ForCausalLM

import trl_grpo_plus
from trl_grpo_plus.testing import tiny_grpo_settings, tiny_prompt_dataset, tiny_tokenizer

pytest.importorskip("liger_kernel", reason="liger-kernel is not installed (pip install 'trl-grpo-plus[liger]')")
from trl_grpo_plus.fused_loss import FusedGRPOLoss  # noqa: E402

TOLERANCE = 1e-5
VOCAB = 4200
BATCH, PROMPT_LENGTH, COMPLETION_LENGTH = 6, 5, 12


def constant_reward(completions, **kwargs):
    return [1.0] * len(completions)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    config = Qwen2Config(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("parity-model")
    Qwen2ForCausalLM(config).save_pretrained(path)
    return str(path)


def build_trainer(trainer_cls, config_cls, checkpoint, output_dir, peft_config=None, **settings):
    args = config_cls(
        **tiny_grpo_settings(output_dir, gradient_accumulation_steps=2, steps_per_generation=4, **settings)
    )
    trainer = trainer_cls(
        model=checkpoint,
        reward_funcs=constant_reward,
        args=args,
        train_dataset=tiny_prompt_dataset(8),
        processing_class=tiny_tokenizer(),
        peft_config=peft_config,
    )
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 2  # set by the training loop, read by the loss
    return trainer


def micro_batch(trainer, *, with_old_logps=True, seed=1):
    """Random prompts and completions (left-padded prompts, ragged completions, one empty) with noisy old and
    reference log-probs around the model's own, so that ratios clip on both sides and the KL is nonzero."""
    generator = torch.Generator().manual_seed(seed)
    prompt_ids = torch.randint(4, VOCAB, (BATCH, PROMPT_LENGTH), generator=generator)
    prompt_mask = torch.ones_like(prompt_ids)
    prompt_mask[0, :2] = 0
    prompt_mask[3, :1] = 0
    completion_ids = torch.randint(4, VOCAB, (BATCH, COMPLETION_LENGTH), generator=generator)
    lengths = torch.tensor([12, 7, 3, 12, 0, 9])
    completion_mask = (torch.arange(COMPLETION_LENGTH) < lengths[:, None]).long()
    with torch.no_grad():
        logps, _, _ = trainer._get_per_token_logps_and_entropies(
            trainer.model,
            torch.cat([prompt_ids, completion_ids], 1),
            torch.cat([prompt_mask, completion_mask], 1),
            COMPLETION_LENGTH,
        )
    inputs = {
        "prompt_ids": prompt_ids,
        "prompt_mask": prompt_mask,
        "completion_ids": completion_ids,
        "completion_mask": completion_mask,
        "advantages": torch.tensor([1.2, -0.8, 0.5, -1.5, 0.3, -0.2]),
        "ref_per_token_logps": logps + 0.2 * torch.randn(logps.shape, generator=generator),
        "num_items_in_batch": completion_mask.sum() * 3.0,  # the generation batch spans more than this micro-batch
    }
    if with_old_logps:
        inputs["old_per_token_logps"] = logps + 0.3 * torch.randn(logps.shape, generator=generator)
    return inputs


def loss_gradients_metrics(trainer, inputs):
    trainer.model.zero_grad()
    trainer._metrics["train"].clear()
    captured = {}

    def keep_hidden_states(module, args, output):
        output.last_hidden_state.retain_grad()
        captured["hidden"] = output.last_hidden_state

    model = trainer.model.get_base_model() if hasattr(trainer.model, "get_base_model") else trainer.model
    handle = model.base_model.register_forward_hook(keep_hidden_states)
    try:
        loss = trainer._compute_loss(trainer.model, inputs)
        loss.backward()
    finally:
        handle.remove()
    gradients = {"hidden states": captured["hidden"].grad}
    gradients.update((name, p.grad) for name, p in trainer.model.named_parameters() if p.requires_grad)
    metrics = {key: values[-1] for key, values in trainer._metrics["train"].items()}
    return loss.detach(), gradients, metrics


def relative_error(ours, reference):
    return ((ours - reference).norm() / reference.norm().clamp(min=1e-30)).item()


def assert_same_loss(tmp_path, checkpoint, settings, *, with_old_logps=True, peft_config=None, fused_settings=None):
    reference = build_trainer(
        trl.GRPOTrainer, trl.GRPOConfig, checkpoint, tmp_path / "trl", peft_config=peft_config, **settings
    )
    ours = build_trainer(
        trl_grpo_plus.GRPOTrainer,
        trl_grpo_plus.GRPOConfig,
        checkpoint,
        tmp_path / "ours",
        peft_config=peft_config,
        use_liger_loss=True,
        **settings,
        **(fused_settings or {}),
    )
    inputs = micro_batch(reference, with_old_logps=with_old_logps)
    ref_loss, ref_gradients, ref_metrics = loss_gradients_metrics(reference, inputs)
    our_loss, our_gradients, our_metrics = loss_gradients_metrics(ours, inputs)

    # a case that cannot pass trivially: a nonzero loss that reaches the hidden states and the weights
    # (LoRA's A matrices get none at first: their B matrices start at zero)
    ref_hidden_gradient = ref_gradients.pop("hidden states")
    assert ref_loss.abs() > 0 and ref_hidden_gradient.norm() > 0
    assert sum(gradient.norm() > 0 for gradient in ref_gradients.values()) >= len(ref_gradients) / 2
    assert relative_error(our_loss, ref_loss) <= TOLERANCE, (our_loss, ref_loss)
    assert our_gradients.keys() == ref_gradients.keys() | {"hidden states"}
    for name, ref_gradient in (("hidden states", ref_hidden_gradient), *ref_gradients.items()):
        assert relative_error(our_gradients[name], ref_gradient) <= TOLERANCE, name
    # Everything TRL logs but the entropy, which the fused loss never forms
    assert our_metrics.keys() == ref_metrics.keys() - {"entropy"}
    for key, value in ref_metrics.items():
        if key != "entropy":
            assert our_metrics[key] == pytest.approx(value, rel=TOLERANCE, abs=1e-7), key
    return ref_metrics


@pytest.mark.parametrize("importance_sampling_level", ["token", "sequence"])
@pytest.mark.parametrize("beta", [0.0, 0.1])
@pytest.mark.parametrize("loss_type", ["grpo", "dapo", "dr_grpo", "bnpo"])
def test_fused_loss_equals_trl_loss(tmp_path, checkpoint, loss_type, beta, importance_sampling_level):
    metrics = assert_same_loss(
        tmp_path,
        checkpoint,
        dict(loss_type=loss_type, beta=beta, importance_sampling_level=importance_sampling_level),
    )
    assert metrics["clip_ratio/region_mean"] > 0  # the noisy old log-probs put some ratios outside the clip range


@pytest.mark.parametrize("beta", [0.0, 0.1])
@pytest.mark.parametrize("loss_type", ["cispo", "sapo", "vespo"])
def test_fused_loss_equals_trl_loss_for_token_level_loss_types(tmp_path, checkpoint, loss_type, beta):
    assert_same_loss(tmp_path, checkpoint, dict(loss_type=loss_type, beta=beta, epsilon_high=1.3))


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param(dict(temperature=0.7), id="temperature"),
        pytest.param(dict(epsilon=0.1, epsilon_high=0.28), id="asymmetric-clip"),
        pytest.param(dict(delta=1.4), id="two-sided-clip-delta"),
        pytest.param(dict(beta=0.1, use_bias_correction_kl=True), id="bias-corrected-kl"),
        pytest.param(dict(beta=0.1, importance_sampling_level="sequence", use_bias_correction_kl=True), id="gspo-kl"),
    ],
)
def test_fused_loss_equals_trl_loss_with_settings(tmp_path, checkpoint, settings):
    assert_same_loss(tmp_path, checkpoint, settings)


@pytest.mark.parametrize("loss_type", ["grpo", "dapo"])
def test_fused_loss_equals_trl_loss_without_old_logps(tmp_path, checkpoint, loss_type):
    # num_iterations=1: TRL uses the detached current log-probs as the old ones, and so does Liger
    assert_same_loss(tmp_path, checkpoint, dict(loss_type=loss_type, beta=0.1), with_old_logps=False)


def test_fused_loss_equals_trl_loss_for_sequence_level_luspo(tmp_path, checkpoint):
    assert_same_loss(tmp_path, checkpoint, dict(loss_type="luspo", importance_sampling_level="sequence"))


@pytest.mark.parametrize(
    "ratio_shape", [(BATCH, COMPLETION_LENGTH), (BATCH, 1)], ids=["token-ratios", "sequence-ratios"]
)
@pytest.mark.parametrize("loss_type", ["dapo", "vespo"])
def test_fused_loss_applies_vllm_importance_sampling_ratios_as_trl_does(tmp_path, checkpoint, loss_type, ratio_shape):
    # vLLM is not installed here, so both trainers are switched to its correction after construction
    settings = dict(loss_type=loss_type, beta=0.1)
    reference = build_trainer(trl.GRPOTrainer, trl.GRPOConfig, checkpoint, tmp_path / "trl", **settings)
    ours = build_trainer(
        trl_grpo_plus.GRPOTrainer,
        trl_grpo_plus.GRPOConfig,
        checkpoint,
        tmp_path / "ours",
        use_liger_loss=True,
        **settings,
    )
    inputs = micro_batch(reference)
    inputs["importance_sampling_ratio"] = torch.rand(ratio_shape, generator=torch.Generator().manual_seed(2)) + 0.5
    results = []
    for trainer in (reference, ours):
        trainer.use_vllm = trainer.vllm_importance_sampling_correction = True
        results.append(loss_gradients_metrics(trainer, inputs))
    (ref_loss, ref_gradients, _), (our_loss, our_gradients, _) = results
    assert relative_error(our_loss, ref_loss) <= TOLERANCE
    for name, ref_gradient in ref_gradients.items():
        assert relative_error(our_gradients[name], ref_gradient) <= TOLERANCE, name


@pytest.mark.parametrize(
    "fused_settings",
    [
        pytest.param(dict(liger_chunk_size=2), id="chunks-of-2"),
        pytest.param(dict(liger_chunk_size=6), id="one-chunk"),
        pytest.param(dict(liger_compile=True), id="compiled"),
    ],
)
def test_the_fused_loss_options_keep_trls_loss(tmp_path, checkpoint, fused_settings):
    assert_same_loss(tmp_path, checkpoint, dict(loss_type="dapo", beta=0.1), fused_settings=fused_settings)


def test_fused_loss_equals_trl_loss_with_lora(tmp_path, checkpoint):
    from peft import LoraConfig

    # The LM head stays frozen (TRL refuses adapters on it); the gradients reach the LoRA weights only
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    assert_same_loss(tmp_path, checkpoint, dict(loss_type="dapo", beta=0.1), peft_config=lora)


def test_liger_luspo_at_token_level_is_not_trls_which_is_why_the_config_refuses_it(tmp_path, checkpoint):
    # Liger weights every position of luspo's per-token loss, padding included; TRL masks. Should Liger change,
    # this fails, and the refusal in `liger_loss_conflicts` can go.
    reference = build_trainer(
        trl.GRPOTrainer,
        trl.GRPOConfig,
        checkpoint,
        tmp_path / "trl",
        loss_type="luspo",
        importance_sampling_level="token",
    )
    ours = build_trainer(
        trl_grpo_plus.GRPOTrainer,
        trl_grpo_plus.GRPOConfig,
        checkpoint,
        tmp_path / "ours",
        loss_type="luspo",
        importance_sampling_level="sequence",  # the config accepts this form only
        use_liger_loss=True,
    )
    ours.importance_sampling_level = "token"
    settings = dataclasses.replace(ours.fused_loss.loss.settings, importance_sampling_level="token")
    ours.fused_loss.loss = FusedGRPOLoss(settings)
    inputs = micro_batch(reference)
    ref_loss, _, _ = loss_gradients_metrics(reference, inputs)
    our_loss, _, _ = loss_gradients_metrics(ours, inputs)
    assert relative_error(our_loss, ref_loss) > 0.01
