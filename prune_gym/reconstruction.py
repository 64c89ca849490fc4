"""Channel selection and weight refit by reconstruction error (He et al., ICCV 2017).

For a consumer layer with input X (n samples x c channels x k columns per channel, k =
kh*kw for a conv: the rows its layer kind gives, `prune_gym.layers`) and target output Y
(n x out), everything is computed from two matrices accumulated in one pass: G = X^T X and
B = X^T Y.

* Selection: channel i contributes Z_i = X_i W_i^T to the output. The LASSO
  min_b ||Y - sum_i b_i Z_i||^2 + lambda |b|_1 only needs the c x c Gram matrix
  <Z_i, Z_j> = tr(W_i G_ij W_j^T) and <Z_i, Y> = tr(W_i B_i). It is solved with batched
  FISTA over a grid of lambdas; channels are ranked by the largest lambda that keeps them.
* Refit: for a kept set S, the least-squares weights solve (G_S + eps I) W = B_S, where
  G_S and B_S span S's columns only (a Cholesky solve in float64; lstsq's CUDA driver
  assumes full rank, and post-ReLU patches are often rank-deficient).
"""

from __future__ import annotations

import torch

LAMBDAS = 48  # grid size for the LASSO path
FISTA_STEPS = 300
FISTA_TOLERANCE = 1e-7  # on coefficients of a problem scaled to unit mean diagonal


def sample_positions(n_images: int, height: int, width: int, per_image: int,
                     generator: torch.Generator) -> torch.Tensor:
    """`per_image` distinct output positions (flat indices) per image: (n_images, per_image)."""
    per_image = min(per_image, height * width)
    scores = torch.rand(n_images, height * width, generator=generator)
    return scores.argsort(dim=1)[:, :per_image]


def add_bias_column(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype, device=x.device)], dim=1)


def channel_gram(weight: torch.Tensor, gram: torch.Tensor, cross: torch.Tensor,
                 block: int) -> tuple[torch.Tensor, torch.Tensor]:
    """<Z_i, Z_j> and <Z_i, Y> for the channel contributions Z_i = X_i W_i^T.

    weight: (out, c * block) in the column order of X; gram: (c*block, c*block); cross: (c*block, out).
    """
    c = weight.shape[1] // block
    # <Z_i, Z_j> = sum over the (i, j) block of G * (W^T W): one matmul, no (out, c, c, k) intermediate.
    m = (gram * (weight.T @ weight)).reshape(c, block, c, block).sum((1, 3))
    v = (weight.T * cross).sum(1).reshape(c, block).sum(1)
    return m, v


def lasso_ranking(m: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Channels ordered from most to least useful along the LASSO path of min b^T M b - 2 v^T b + lambda |b|_1."""
    m, v = m.double(), v.double()
    scale = torch.diagonal(m).clamp_min(1e-12).mean()
    m, v = m / scale, v / scale
    lam_max = 2 * v.abs().max().clamp_min(1e-12)
    lambdas = lam_max * torch.logspace(0, -4, LAMBDAS, dtype=m.dtype, device=m.device)  # descending
    step = 1 / (2 * torch.linalg.eigvalsh(m).max().clamp_min(1e-12))
    beta = torch.zeros(LAMBDAS, len(v), dtype=m.dtype, device=m.device)
    momentum, t = beta.clone(), 1.0
    for i in range(FISTA_STEPS):
        grad = 2 * (momentum @ m - v)
        z = momentum - step * grad
        new = torch.sign(z) * (z.abs() - step * lambdas[:, None]).clamp_min(0)
        t_next = (1 + (1 + 4 * t * t) ** 0.5) / 2
        momentum = new + ((t - 1) / t_next) * (new - beta)
        converged = i % 25 == 24 and (new - beta).abs().max().item() < FISTA_TOLERANCE
        beta, t = new, t_next
        if converged:
            break
    active = beta != 0
    # The first lambda (largest) at which a channel is non-zero; never-active channels come last.
    first = torch.where(active.any(0), active.float().argmax(0), torch.full_like(v, LAMBDAS, dtype=torch.long))
    tie_break = beta[-1].abs()  # among channels entering together, larger coefficient first
    return _lexsort(first, tie_break)


def _lexsort(first: torch.Tensor, tie_break: torch.Tensor) -> torch.Tensor:
    order = torch.argsort(-tie_break, stable=True)
    return order[torch.argsort(first[order], stable=True)]


def refit(gram: torch.Tensor, cross: torch.Tensor, ridge: float = 1e-6) -> torch.Tensor:
    """Least-squares weights (columns, out) from G = X^T X and B = X^T Y, by a ridge Cholesky solve."""
    g, b = gram.double(), cross.double()
    eye = torch.eye(len(g), dtype=g.dtype, device=g.device)
    eps = ridge * torch.diagonal(g).mean().clamp_min(1e-12)
    factor, info = torch.linalg.cholesky_ex(g + eps * eye)
    if info.item() != 0:  # numerically indefinite: strengthen the ridge
        factor = torch.linalg.cholesky(g + 1e3 * eps * eye)
    return torch.cholesky_solve(b, factor).to(cross.dtype)
