"""A learnable Gaussian-mixture prior over a shared latent space, and the KL divergence of a Gaussian posterior to it.

UNIT (Liu et al., NeurIPS 2017) puts a unit Gaussian prior on the latent code that its two VAEs share; the
patch-based variant for non-contrast -> contrast CT replaces it by a mixture of K Gaussians with learnable means,
diagonal covariances and weights, so that the shared code can hold several tissue modes.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["GaussianMixturePrior", "gaussian_mixture_kl"]

_LOG_2PI = math.log(2.0 * math.pi)


class GaussianMixturePrior(nn.Module):
    """``p(z) = sum_k pi_k N(z; mu_k, diag(sigma_k^2))`` over latent vectors of ``latent_channels`` dimensions.

    A latent map (B, C, *S) is C-dimensional at each position; every position follows the same mixture. The
    parameters (means (K, C), log-variances (K, C), weight logits (K,)) are learnt with the encoders and generators.
    Calling it, ``prior(mu)``, gives ``gaussian_mixture_kl(mu, prior)``. The means start at N(0, ``init_spread``^2),
    the variances at 1 and the weights equal; with ``num_components=1``
    and ``learnable=False`` this is UNIT's unit Gaussian prior.
    """

    def __init__(self, latent_channels: int, num_components: int = 4, init_spread: float = 1.0, learnable: bool = True):
        super().__init__()
        if num_components < 1 or latent_channels < 1:
            raise ValueError(
                f"need num_components >= 1 and latent_channels >= 1, got {num_components}, {latent_channels}."
            )
        means = (
            torch.randn(num_components, latent_channels) * init_spread
            if num_components > 1
            else torch.zeros(1, latent_channels)
        )
        values = {
            "means": means,
            "log_vars": torch.zeros(num_components, latent_channels),
            "logits": torch.zeros(num_components),
        }
        for name, value in values.items():  # a fixed prior holds buffers, which no optimiser or trainer can change
            if learnable:
                self.register_parameter(name, nn.Parameter(value))
            else:
                self.register_buffer(name, value)

    @property
    def latent_channels(self) -> int:
        return self.means.shape[1]

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) of vectors ``z`` (N, C): log-sum-exp over the components of log pi_k + log N(z; mu_k, sigma_k^2)."""
        diff = z[:, None, :] - self.means[None]  # (N, 1, C) - (1, K, C) -> (N, K, C)
        log_normal = -0.5 * (_LOG_2PI + self.log_vars + diff.pow(2) * torch.exp(-self.log_vars)).sum(-1)  # (N, K)
        return torch.logsumexp(torch.log_softmax(self.logits, 0) + log_normal, dim=1)  # (N,)

    def forward(self, mu: torch.Tensor, log_var: torch.Tensor | None = None, num_samples: int = 1) -> torch.Tensor:
        """``gaussian_mixture_kl(mu, self, log_var, num_samples)``: a training step calls the prior like a network,
        so that a DistributedDataParallel wrapper averages its gradients."""
        return gaussian_mixture_kl(mu, self, log_var, num_samples)


def gaussian_mixture_kl(
    mu: torch.Tensor, prior: GaussianMixturePrior, log_var: torch.Tensor | None = None, num_samples: int = 1
) -> torch.Tensor:
    """``KL(q(z|x) || p(z))`` per latent dimension, averaged over positions and the batch, for a Gaussian posterior
    ``q = N(mu, diag(exp(log_var)))`` (unit variance when ``log_var`` is None, as UNIT's encoders have) and a
    ``GaussianMixturePrior`` p.

    A mixture has no closed-form KL. Here ``KL = E_q[log q(z)] - E_q[log p(z)] = -H(q) - E_q[log p(z)]``: the
    entropy of the Gaussian q is exact, ``H(q) = 1/2 sum_c (log 2 pi + 1 + log_var_c)``, and ``E_q[log p(z)]`` is a
    Monte-Carlo estimate over ``num_samples`` reparameterised draws ``z = mu + sigma * eps`` (log-sum-exp over the
    components), so gradients reach the encoder and the prior's parameters. It is unbiased, and exact in
    expectation for K = 1 (where it equals the Gaussian closed form, which the tests check).

    Args:
        mu: posterior means, a latent map (B, C, *S) with C the prior's ``latent_channels``.
        log_var: posterior log-variances of ``mu``'s shape, or None for unit variance.
        num_samples: Monte-Carlo draws per position.

    Returns: a scalar, KL per latent vector divided by C (a per-dimension figure whose scale does not change with
    the latent width). For the unit prior this is mean(mu^2) / 2: half the ``mean(mu^2)`` that UNIT's code uses as its
    KL term, so the same weights count half as much as there.
    """
    channels = mu.shape[1]
    if channels != prior.latent_channels:
        raise ValueError(f"the latent map has {channels} channels, the prior {prior.latent_channels}.")
    mu_vectors = mu.movedim(1, -1).reshape(-1, channels)  # (B, C, *S) -> (B * prod(S), C)
    if log_var is None:
        log_var_vectors = torch.zeros_like(mu_vectors)
    else:
        log_var_vectors = log_var.movedim(1, -1).reshape(-1, channels)
    entropy = 0.5 * (_LOG_2PI + 1.0 + log_var_vectors).sum(-1)  # (N,)
    std = torch.exp(0.5 * log_var_vectors)
    expected_log_prior = torch.stack(
        [prior.log_prob(mu_vectors + std * torch.randn_like(mu_vectors)) for _ in range(num_samples)]
    ).mean(
        0
    )  # (N,)
    return (-entropy - expected_log_prior).mean() / channels
