"""The reconstruction maths on small problems with known answers."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from prune_gym.layers.conv import conv_outputs, conv_patches
from prune_gym.pruner import proportional
from prune_gym.reconstruction import channel_gram, lasso_ranking, refit, sample_positions


def test_sampled_patches_equal_unfold_at_those_positions():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 5, 3, stride=2, padding=1)
    x = torch.randn(4, 3, 9, 9)
    y = F.conv2d(x, conv.weight, None, conv.stride, conv.padding)
    positions = sample_positions(4, y.shape[2], y.shape[3], 6, torch.Generator().manual_seed(1))
    patches = conv_patches(x, conv, positions, y.shape[3])
    unfolded = F.unfold(x, 3, padding=1, stride=2)  # (n, c*k*k, L)
    expected = torch.stack([unfolded[i, :, positions[i]].T for i in range(4)]).reshape(-1, 27)
    assert torch.allclose(patches, expected)
    # and the patches times the weights give the conv's output at those positions
    assert torch.allclose(patches @ conv.weight.reshape(5, -1).T, conv_outputs(y, positions), atol=1e-5)


def test_refit_recovers_the_weights_of_a_noiseless_problem():
    torch.manual_seed(0)
    x = torch.randn(500, 12)
    w = torch.randn(12, 4)
    columns = torch.tensor([0, 3, 5, 6, 7, 11])
    kept = x[:, columns]
    y = kept @ w[columns]
    solution = refit(kept.T @ kept, kept.T @ y)
    assert torch.allclose(solution, w[columns], atol=1e-4)


def test_refit_survives_rank_deficient_inputs():
    x = torch.randn(50, 4)
    x = torch.cat([x, x[:, :1]], dim=1)  # a duplicated column: singular Gram matrix
    y = x[:, :2].sum(1, keepdim=True)
    solution = refit(x.T @ x, x.T @ y)
    assert torch.isfinite(solution).all()
    assert torch.allclose(x @ solution, y, atol=1e-3)


def test_channel_gram_matches_the_channel_contributions():
    torch.manual_seed(0)
    c, block, out, n = 4, 3, 5, 40
    x, weight, y = torch.randn(n, c * block), torch.randn(out, c * block), torch.randn(n, out)
    m, v = channel_gram(weight, x.T @ x, x.T @ y, block)
    z = [x[:, i * block:(i + 1) * block] @ weight[:, i * block:(i + 1) * block].T for i in range(c)]
    assert torch.allclose(m, torch.tensor([[(zi * zj).sum() for zj in z] for zi in z]), rtol=1e-4)
    assert torch.allclose(v, torch.stack([(zi * y).sum() for zi in z]), rtol=1e-4)


def test_lasso_ranks_the_channels_that_explain_the_target_first():
    torch.manual_seed(0)
    c, block, out, n = 10, 4, 6, 400
    x, weight = torch.randn(n, c * block), torch.randn(out, c * block)
    useful = [2, 5, 7]
    y = sum(x[:, i * block:(i + 1) * block] @ weight[:, i * block:(i + 1) * block].T for i in useful)
    y = y + 0.01 * torch.randn(n, out)
    ranking = lasso_ranking(*channel_gram(weight, x.T @ x, x.T @ y, block))
    assert sorted(ranking[:3].tolist()) == useful
    assert sorted(ranking.tolist()) == list(range(c))


def test_a_proportional_ranking_keeps_the_same_share_of_every_part_in_the_rankings_order():
    ranking = torch.tensor([5, 0, 4, 1, 2, 3])  # parts [0, 4) and [4, 6): steps of 3 channels, 2 + 1
    ranked = proportional(ranking, (0, 4, 6))
    assert ranked.tolist() == [0, 1, 5, 2, 3, 4]
    for keep in (3, 6):
        kept = ranked[:keep]
        assert (kept < 4).sum() == 2 * keep // 3 and (kept >= 4).sum() == keep // 3
