"""PEARL's probabilistic context (Rakelly et al., ICML 2019; paper seed 003 eqs. 1-2).

The posterior q(z | c_1:N) is a product of per-transition Gaussian factors (eq. 2), regularised
towards the unit Gaussian prior by the KL term of the variational objective (eq. 1), and sampled
with the reparameterisation trick so that the critic's Bellman error (eq. 3) trains the encoder
through z. Pure functions: the noise of a sample is an argument, never drawn here.
"""

from __future__ import annotations

from torch import Tensor

from metarl.algorithms.td3 import _same_shape

__all__ = ["kl_to_standard_normal", "product_of_gaussians", "reparam_sample"]

_REDUCTIONS = ("sum", "mean")


def product_of_gaussians(mu: Tensor, var: Tensor, min_var: float = 1e-7) -> tuple[Tensor, Tensor]:
    """Product of N diagonal Gaussian factors, PEARL eq. 2: ``q(z | c_1:N) ∝ prod_n N(mu_n, var_n)``.

    ``var = 1 / sum_n (1 / var_n)``, ``mu = var * sum_n (mu_n / var_n)``, with each ``var_n``
    first clamped below at ``min_var`` as the official code does (oyster ``agent.py``
    ``_product_of_gaussians``): a factor with near-zero variance would otherwise give an infinite
    precision and a NaN posterior. The result does not depend on the order of the factors.

    Args:
        mu: ``[..., N, d]`` factor means (N >= 1 context transitions per task).
        var: ``[..., N, d]`` factor variances (> 0, e.g. softplus outputs).
        min_var: lower clamp of each factor variance (oyster: 1e-7); > 0.

    Returns:
        ``(mu [..., d], var [..., d])`` of the posterior.
    """
    _same_shape("product_of_gaussians", mu=mu, var=var)
    if mu.dim() < 2 or mu.shape[-2] < 1:
        raise ValueError(f"product_of_gaussians: expected [..., N, d] with N >= 1, got shape {list(mu.shape)}")
    if not min_var > 0.0:
        raise ValueError(f"product_of_gaussians: min_var must be > 0, got {min_var}")
    var = var.clamp(min=min_var)
    post_var = 1.0 / var.reciprocal().sum(dim=-2)
    post_mu = post_var * (mu / var).sum(dim=-2)
    return post_mu, post_var


def kl_to_standard_normal(mu: Tensor, var: Tensor, reduction: str = "sum") -> Tensor:
    """KL(N(mu, diag var) || N(0, I)), the regulariser of PEARL eq. 1 (the prior p(z) is N(0, I)).

    Per latent dimension ``0.5 * (var + mu^2 - 1 - log var)``, summed over the latent dimensions.
    ``"sum"`` (the official code, oyster ``compute_kl_div``) also sums over the leading task
    dimension(s), so the KL's weight grows with the meta-batch size; ``"mean"`` averages over them.

    Args:
        mu: ``[..., d]`` posterior means (one row per task).
        var: ``[..., d]`` posterior variances (> 0).
        reduction: ``"sum"`` or ``"mean"`` over the leading dimensions.

    Returns:
        ``[]`` scalar.
    """
    _same_shape("kl_to_standard_normal", mu=mu, var=var)
    if reduction not in _REDUCTIONS:
        raise ValueError(f"kl_to_standard_normal: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if mu.dim() < 1:
        raise ValueError("kl_to_standard_normal: expected [..., d] tensors, got scalars")
    per_task = 0.5 * (var + mu.square() - 1.0 - var.log()).sum(dim=-1)
    return per_task.sum() if reduction == "sum" else per_task.mean()


def reparam_sample(mu: Tensor, var: Tensor, eps: Tensor) -> Tensor:
    """z = mu + sqrt(var) * eps, the reparameterised sample of q(z | c) (PEARL §3.2, below eq. 2).

    Gradients flow to ``mu`` and ``var`` (hence to the encoder) and not to ``eps``. The noise is
    an argument (eps ~ N(0, I) from the caller's generator) so that a resumed run draws the same z.

    Args:
        mu, var, eps: ``[..., d]`` each.

    Returns:
        ``[..., d]`` z.
    """
    _same_shape("reparam_sample", mu=mu, var=var, eps=eps)
    return mu + var.sqrt() * eps.detach()
