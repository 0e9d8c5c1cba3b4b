"""Built-in advantage estimators against hand-computed values, including ragged groups and unscorable rows."""

import math

import pytest
import torch

from trl_grpo_plus.default_plugins import advantages as builtin
from trl_grpo_plus.ragged_groups import GroupLayout, group_spread, nanstd, total_reward

NAN = math.nan
ONE_REWARD = torch.ones(1)


def column(*values):
    return torch.tensor(values, dtype=torch.float32).unsqueeze(1)


def ids(*values):
    return torch.tensor(values)


def close(actual, expected, atol=1e-4):
    torch.testing.assert_close(actual, torch.tensor(expected, dtype=actual.dtype), atol=atol, rtol=0)


def test_grpo_with_population_std_standardizes_a_group():
    # mean 2/3, population std 0.20548; the 1e-4 eps moves the 4th decimal.
    # (Exact z-scores: 1.1355, 0.1622, -1.2978. They sum to 0, as centered values must.)
    advantages = builtin.grpo(column(0.9, 0.7, 0.4), ONE_REWARD, ids(0, 0, 0), ddof=0)
    close(advantages, [1.1350, 0.1621, -1.2971])


def test_grpo_defaults_use_bessels_std_like_trl():
    # sample std sqrt(0.12667 / 2) = 0.25166
    close(builtin.grpo(column(0.9, 0.7, 0.4), ONE_REWARD, ids(0, 0, 0)), [0.9268, 0.1324, -1.0592])


def test_grpo_matches_trls_inline_formula_bit_for_bit():
    torch.manual_seed(0)
    rewards_per_func, weights, size = torch.rand(24, 2), torch.tensor([1.0, 0.5]), 4
    rewards_per_func[5] = NAN
    # TRL 1.16, _generate_and_score_completions, sum_then_normalize with scale_rewards="group":
    rewards = (rewards_per_func * weights.unsqueeze(0)).nansum(dim=1)
    rewards[torch.isnan(rewards_per_func).all(dim=1)] = NAN
    mean = torch.nanmean(rewards.view(-1, size), dim=1).repeat_interleave(size)
    std = nanstd(rewards.view(-1, size), dim=1).repeat_interleave(size)
    expected = torch.nan_to_num((rewards - mean) / (std + 1e-4), nan=0.0)
    assert torch.equal(builtin.grpo(rewards_per_func, weights, torch.arange(24) // size), expected)


def test_grpo_handles_ragged_groups_and_leaves_single_rows_at_zero():
    rewards = column(1.0, 0.0, 0.0, 1.0, 1.0, 5.0)
    advantages = builtin.grpo(rewards, ONE_REWARD, ids(7, 7, 3, 3, 3, 9), ddof=0)
    # group 7: [1, 0], std 0.5 -> +-0.9998 (eps 1e-4); group 3: [0, 1, 1], mean 2/3, std 0.4714; group 9: one row.
    close(advantages, [0.9998, -0.9998, -1.4139, 0.7070, 0.7070, 0.0])


def test_unscorable_rows_get_zero_and_do_not_move_the_baseline():
    rewards = torch.tensor([[1.0, NAN], [0.0, NAN], [NAN, NAN], [0.5, 2.0]])
    weights = torch.tensor([1.0, 0.5])
    # totals: 1, 0, unscorable, 1.5 -> group mean 5/6 over the three scorable rows only
    for name in ("grpo", "dr_grpo", "rloo", "rank", "batch_std", "reinforce_pp", "gdpo"):
        advantages = getattr(builtin, name)(rewards, weights, ids(0, 0, 0, 0))
        assert advantages[2] == 0.0, name
        assert torch.isfinite(advantages).all(), name
    close(builtin.dr_grpo(rewards, weights, ids(0, 0, 0, 0)), [1 / 6, -5 / 6, 0.0, 2 / 3])


def test_dr_grpo_only_subtracts_the_group_mean():
    close(
        builtin.dr_grpo(column(0.9, 0.7, 0.4, 2.0, 4.0), ONE_REWARD, ids(0, 0, 0, 1, 1)),
        [0.2333, 0.0333, -0.2667, -1, 1],
    )


def test_batch_std_scales_by_the_std_of_the_whole_batch():
    rewards = column(0.0, 1.0, 0.0, 3.0)
    # group means 0.5 and 1.5; batch sample std of [0, 1, 0, 3] = 1.4142
    close(builtin.batch_std(rewards, ONE_REWARD, ids(0, 0, 1, 1)), [-0.3535, 0.3535, -1.0606, 1.0606])


def test_rloo_subtracts_the_mean_of_the_other_completions():
    # 0.9 - mean(0.7, 0.4) = 0.35; 0.7 - 0.65 = 0.05; 0.4 - 0.8 = -0.4; a lone row gets 0.
    close(builtin.rloo(column(0.9, 0.7, 0.4, 3.0), ONE_REWARD, ids(0, 0, 0, 1)), [0.35, 0.05, -0.4, 0.0])


def test_reinforce_pp_centers_per_group_then_normalizes_over_the_batch():
    rewards = column(1.0, 0.0, 4.0, 0.0)
    # centered: [0.5, -0.5, 2, -2]; batch mean 0, sample std sqrt(8.5 / 3) = 1.6833
    close(builtin.reinforce_pp(rewards, ONE_REWARD, ids(0, 0, 1, 1)), [0.2970, -0.2970, 1.1881, -1.1881])


def test_gdpo_normalizes_each_reward_before_summing():
    # Reward 0 varies on a scale of 100, reward 1 on a scale of 1.
    rewards = torch.tensor([[100.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    # Summed first (grpo), reward 0 decides: totals [100, 1, 0] put rows 1 and 2 together, far below row 0.
    close(builtin.grpo(rewards, torch.ones(2), ids(0, 0, 0)), [1.1547, -0.5686, -0.5861])
    # Normalized first: each reward becomes [1.1547, -0.5774, -0.5774] and [-0.5774, 1.1547, -0.5774]; their sums
    # [0.5773, 0.5773, -1.1547] already have batch mean 0 and std 1.
    close(builtin.gdpo(rewards, torch.ones(2), ids(0, 0, 0)), [0.5773, 0.5773, -1.1547], atol=1e-3)


def test_rank_is_scaled_to_minus_one_plus_one_and_ignores_scale():
    close(builtin.rank(column(3.0, 1000.0, -5.0), ONE_REWARD, ids(0, 0, 0)), [0.0, 1.0, -1.0])
    close(builtin.rank(column(0.3, 0.31, 0.1, 7.0, 7.0), ONE_REWARD, ids(0, 0, 0, 1, 1)), [0.0, 1.0, -1.0, 0.0, 0.0])


def test_rank_gives_ties_their_average_rank():
    # ranks 0, 1.5, 1.5, 3 of 4 -> 2 * r / 3 - 1
    close(builtin.rank(column(0.0, 1.0, 1.0, 2.0), ONE_REWARD, ids(0, 0, 0, 0)), [-1.0, 0.0, 0.0, 1.0])


@pytest.mark.parametrize("name", ["grpo", "dr_grpo", "batch_std", "rloo", "reinforce_pp", "gdpo", "rank"])
def test_every_estimator_gives_a_zero_variance_group_zero_advantage(name):
    rewards = column(1.0, 1.0, 1.0, 0.0, 1.0, 0.5)
    advantages = getattr(builtin, name)(rewards, ONE_REWARD, ids(0, 0, 0, 1, 1, 1))
    assert advantages[:3].abs().max() < 1e-6
    assert advantages[3:].abs().max() > 0.1


def test_group_layout_scatters_ragged_groups_by_id():
    layout = GroupLayout.of(ids(5, 2, 5, 2, 2))
    table = layout.table(torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0]))
    torch.testing.assert_close(table, torch.tensor([[2.0, 4.0, 5.0], [1.0, 3.0, NAN]]), equal_nan=True)
    torch.testing.assert_close(layout.rows(table), torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0]))


def test_group_spread_is_nan_for_groups_with_fewer_than_two_scorable_rows():
    spread = group_spread(torch.tensor([1.0, 3.0, NAN, 2.0, 7.0]), ids(0, 0, 1, 1, 2))
    torch.testing.assert_close(spread, torch.tensor([2.0, 2.0, NAN, NAN, NAN]), equal_nan=True)


def test_nanstd_ddof():
    values = torch.tensor([0.9, 0.7, NAN, 0.4])
    assert nanstd(values, ddof=0).item() == pytest.approx(0.205480, abs=1e-6)
    assert nanstd(values).item() == pytest.approx(0.251661, abs=1e-6)


def test_total_reward_is_nan_only_when_every_reward_is_missing():
    rewards = torch.tensor([[1.0, NAN], [NAN, NAN], [1.0, 2.0]])
    torch.testing.assert_close(
        total_reward(rewards, torch.tensor([1.0, 0.5])), torch.tensor([1.0, NAN, 2.0]), equal_nan=True
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # group means 1 and 2 -> centered [1, -1, 1, 1, -2]; sample std of the rewards over the batch 1.5166
        ("batch_std", [0.6593, -0.6593, 0.6593, 0.6593, -1.3187, 0.0]),
        # centered [1, -1, 1, 1, -2] has batch mean 0 and sample std 1.4142
        ("reinforce_pp", [0.7071, -0.7071, 0.7071, 0.7071, -1.4142, 0.0]),
        # in-group z-scores [0.7071, -0.7071] and [0.5774, 0.5774, -1.1547]; batch mean 0, sample std 0.8660
        ("gdpo", [0.8165, -0.8165, 0.6667, 0.6667, -1.3333, 0.0]),
    ],
)
def test_batch_level_estimators_on_ragged_groups_with_an_unscorable_row(name, expected):
    rewards = column(2.0, 0.0, 3.0, 3.0, 0.0, NAN)
    close(getattr(builtin, name)(rewards, ONE_REWARD, ids(0, 0, 1, 1, 1, 1)), expected, atol=1e-3)
