"""Zero-variance group filtering and dynamic sampling: what is kept, and that dropped groups cost no forward pass."""

import math

import launching
import pytest
import torch
from datasets import Dataset, IterableDataset

from trl_grpo_plus import GRPOConfig, GRPOTrainer
from trl_grpo_plus.batch_rows import process_share, split_rows
from trl_grpo_plus.ragged_groups import zero_variance_rows
from trl_grpo_plus.testing import tiny_grpo_config, tiny_grpo_settings, tiny_model, tiny_prompt_dataset, tiny_tokenizer
from trl_grpo_plus.zero_variance_filtering import KeptPool, Rollouts

NAN = math.nan


def rollouts(rewards, group_size, first_group=0):
    rewards = torch.tensor(rewards, dtype=torch.float32).unsqueeze(1)
    groups = first_group + torch.arange(len(rewards)) // group_size
    return Rollouts([{"row": i} for i in range(len(rewards))], rewards, groups)


# --- which groups are zero-variance ---------------------------------------------------------------------------


def test_a_group_whose_rewards_all_agree_is_zero_variance():
    rewards = torch.tensor([[1.0], [1.0], [0.0], [1.0]])
    assert zero_variance_rows(rewards, torch.ones(1), torch.tensor([0, 0, 1, 1]), 1e-6).tolist() == [
        True,
        True,
        False,
        False,
    ]


def test_the_tolerance_bounds_the_spread_that_still_counts_as_zero():
    rewards = torch.tensor([[0.5], [0.5001]])
    assert zero_variance_rows(rewards, torch.ones(1), torch.tensor([0, 0]), 1e-3).all()
    assert not zero_variance_rows(rewards, torch.ones(1), torch.tensor([0, 0]), 1e-6).any()


def test_spread_is_measured_on_the_weighted_total_reward():
    # The two rewards cancel out under these weights, so the group has no signal for the policy.
    rewards = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert zero_variance_rows(rewards, torch.tensor([1.0, 1.0]), torch.tensor([0, 0]), 1e-6).all()
    assert not zero_variance_rows(rewards, torch.tensor([1.0, 0.5]), torch.tensor([0, 0]), 1e-6).any()


def test_a_group_with_one_scorable_completion_is_zero_variance():
    rewards = torch.tensor([[1.0], [NAN], [NAN]])
    assert zero_variance_rows(rewards, torch.ones(1), torch.tensor([0, 0, 0]), 1e-6).all()


# --- filling a batch over rounds ------------------------------------------------------------------------------


def test_the_pool_keeps_groups_with_signal_in_order():
    pool = KeptPool(target_rows=8, num_reward_funcs=1, tolerance=1e-6)
    pool.add(rollouts([1, 1, 0, 1, 1, 1, 0, 0, 1, 0], group_size=2), torch.ones(1))
    assert pool.kept().group_ids.tolist() == [1, 1, 4, 4]
    assert (pool.generated_groups, pool.dropped_groups, pool.kept_rows, pool.full) == (5, 3, 4, False)


def test_refill_rounds_complete_the_batch_and_trim_whole_groups_beyond_it():
    pool = KeptPool(target_rows=4, num_reward_funcs=1, tolerance=1e-6)
    pool.add(rollouts([0, 1, 1, 1], group_size=2), torch.ones(1))
    pool.add(rollouts([0, 1, 1, 0, 0, 1], group_size=2, first_group=2), torch.ones(1))
    assert pool.full and pool.rounds == 2
    assert pool.kept().group_ids.tolist() == [0, 0, 2, 2]  # groups 3 and 4 do not fit the batch
    assert len(pool.all_generated()) == 10


def test_every_process_gets_an_equal_share_of_the_kept_rows():
    assert [process_share(10, 3, rank) for rank in range(3)] == [slice(0, 3), slice(3, 6), slice(6, 9)]
    assert process_share(8, 1, 0) == slice(0, 8)


def test_kept_rows_split_into_micro_batches_differing_by_at_most_one_row():
    batch = {"ids": torch.arange(7), "names": list("abcdefg"), "num_items_in_batch": torch.tensor(5), "none": None}
    chunks = split_rows(batch, 3)
    assert [c["ids"].tolist() for c in chunks] == [[0, 1, 2], [3, 4], [5, 6]]
    assert [c["names"] for c in chunks] == [["a", "b", "c"], ["d", "e"], ["f", "g"]]
    assert all(c["num_items_in_batch"] == 5 and c["none"] is None for c in chunks)
    assert [len(c["ids"]) for c in split_rows({"ids": torch.arange(2)}, 4)] == [1, 1, 0, 0]


# --- in the trainer -------------------------------------------------------------------------------------------


def run_script(output_dir, *args, processes=1):
    return launching.run_script("train_filtered.py", output_dir, *args, processes=processes)


def is_dead(prompt):  # the script gives every completion of an even-numbered prompt the same reward
    a, b = prompt.rstrip("=").split("+")
    return int(a + b) % 2 == 0


def test_dropped_groups_never_enter_the_policy_forward_pass(tmp_path):
    scored, [record] = run_script(tmp_path, "--max_steps", "3")
    logs = [log for log in record["log_history"] if "filter/kept_sequences" in log]
    assert len(logs) == 3
    for step, log in enumerate(logs):
        assert not any(is_dead(prompt) for prompt in scored.get(step, []))
        assert len(scored.get(step, [])) == log["filter/kept_sequences"]
        dropped = log["filter/frac_groups_dropped"]
        assert log["filter/kept_sequences"] == pytest.approx(16 * (1 - dropped))
    assert sum(log["filter/frac_groups_dropped"] for log in logs) > 0  # dead prompts were drawn and dropped


def test_without_filtering_dead_groups_are_scored_too(tmp_path):
    scored, _ = run_script(tmp_path, "--max_steps", "2", "--no_filter")
    assert any(is_dead(prompt) for prompts in scored.values() for prompt in prompts)
    assert all(len(prompts) == 16 for prompts in scored.values())


def test_dynamic_sampling_refills_the_batch_with_groups_that_have_signal(tmp_path):
    scored, [record] = run_script(tmp_path, "--max_steps", "3", "--dynamic_sampling")
    logs = [log for log in record["log_history"] if "filter/kept_sequences" in log]
    assert all(log["filter/kept_sequences"] == 16 for log in logs)
    assert any(log["filter/sampling_rounds"] > 1 for log in logs)
    assert all(len(prompts) == 16 and not any(map(is_dead, prompts)) for prompts in scored.values())


def test_a_batch_with_no_group_left_is_skipped_without_touching_the_model(tmp_path):
    _, [record] = run_script(tmp_path, "--max_steps", "2", "--dead_every", "1")
    logs = [log for log in record["log_history"] if "filter/kept_sequences" in log]
    assert [log["filter/kept_sequences"] for log in logs] == [0, 0]
    assert not record["parameters_changed"]


@pytest.mark.parametrize(
    ("mode", "per_device"),
    [([], 16), (["--dynamic_sampling"], 16), (["--gradient_accumulation_steps", "3", "--dead_every", "3"], 8)],
    ids=["filtering", "dynamic-sampling", "uneven-micro-batches"],
)
def test_one_and_two_processes_keep_the_same_groups(tmp_path, mode, per_device):
    one, _ = run_script(tmp_path / "one", "--max_steps", "2", "--per_device_train_batch_size", str(per_device), *mode)
    two, records = run_script(
        tmp_path / "two", "--max_steps", "2", "--per_device_train_batch_size", str(per_device // 2), *mode, processes=2
    )
    assert one == two
    # Every rank scored the same number of sequences at every step, so their forward/backward passes line up.
    per_rank = [{step: len(prompts) for step, prompts in record["scored"].items()} for record in records]
    assert per_rank[0] == per_rank[1]


def test_two_processes_skip_a_batch_with_no_group_left_together(tmp_path):
    _, records = run_script(
        tmp_path, "--max_steps", "2", "--dead_every", "1", "--per_device_train_batch_size", "8", processes=2
    )
    for record in records:
        assert [log.get("filter/kept_sequences") for log in record["log_history"][:2]] == [0, 0]
        assert not record["parameters_changed"]


def tiny_trainer(tmp_path, reward, **overrides):
    tokenizer = tiny_tokenizer()
    return GRPOTrainer(
        model=tiny_model(tokenizer),
        reward_funcs=[reward],
        args=tiny_grpo_config(tmp_path, filter_zero_variance_groups=True, **overrides),
        train_dataset=tiny_prompt_dataset(16),
        processing_class=tokenizer,
    )


def test_kept_rows_fill_micro_batches_unevenly_and_the_token_normalizer_counts_kept_tokens_only(tmp_path):
    def first_prompt_dead(prompts, completions, **kwargs):
        dead = prompts[0]
        return [0.0 if p == dead else float(len(c)) + 0.01 * i for i, (p, c) in enumerate(zip(prompts, completions))]

    # 12 completions (3 groups of 4) per generation, 3 micro-batches: the 8 kept rows split 3 + 3 + 2.
    trainer = tiny_trainer(tmp_path, first_prompt_dead, gradient_accumulation_steps=3, max_steps=1)
    trainer.train()
    chunks = trainer._buffered_inputs
    assert [len(chunk["advantages"]) for chunk in chunks] == [3, 3, 2]
    kept_tokens = sum(chunk["completion_mask"].sum() for chunk in chunks)
    assert all(chunk["num_items_in_batch"] == kept_tokens for chunk in chunks)


# --- refused before training ----------------------------------------------------------------------------------


def test_dynamic_sampling_needs_filtering(tmp_path):
    with pytest.raises(ValueError, match="dynamic_sampling refills what zero-variance filtering drops"):
        GRPOConfig(**tiny_grpo_settings(tmp_path, dynamic_sampling=True))


@pytest.mark.parametrize("rounds", [0, -1, 1.5])
def test_max_sampling_rounds_must_be_at_least_one(tmp_path, rounds):
    with pytest.raises(ValueError, match="max_sampling_rounds must be an integer >= 1"):
        GRPOConfig(**tiny_grpo_settings(tmp_path, max_sampling_rounds=rounds))


def test_the_tolerance_cannot_be_negative(tmp_path):
    with pytest.raises(ValueError, match="zero_variance_tolerance must be a number >= 0"):
        GRPOConfig(**tiny_grpo_settings(tmp_path, zero_variance_tolerance=-0.1))


def test_filtering_refuses_tools_before_loading_the_model(tmp_path):
    def lookup(query: str) -> str:
        """Look something up.

        Args:
            query: what to look up
        """
        return query

    with pytest.raises(ValueError, match="filter_zero_variance_groups is not supported with `tools`"):
        GRPOTrainer(
            model="no-such-model-is-loaded",
            reward_funcs=[lambda completions, **kw: [0.0] * len(completions)],
            args=tiny_grpo_config(tmp_path, filter_zero_variance_groups=True),
            tools=[lookup],
        )


def test_filtering_refuses_image_datasets(tmp_path):
    dataset = Dataset.from_list([{"prompt": "a", "image": None}])
    with pytest.raises(ValueError, match="not supported with image datasets"):
        GRPOTrainer(
            model="no-such-model-is-loaded",
            reward_funcs=["accuracy"],
            args=tiny_grpo_config(tmp_path, filter_zero_variance_groups=True),
            train_dataset=dataset,
        )


def test_dynamic_sampling_refuses_iterable_datasets(tmp_path):
    dataset = IterableDataset.from_generator(lambda: iter([{"prompt": "a"}]))
    with pytest.raises(ValueError, match="dynamic_sampling with an iterable train_dataset"):
        GRPOTrainer(
            model="no-such-model-is-loaded",
            reward_funcs=["accuracy"],
            args=tiny_grpo_config(tmp_path, filter_zero_variance_groups=True, dynamic_sampling=True),
            train_dataset=dataset,
        )
