"""Speed and memory of a GAN bundle, and what the framework costs over a hand-written PyTorch loop.

    python -m tools.benchmark {cyclegan,medgan,ae_gan,unit_gmm,deform_gan} [--sizes default,...] [--iterations N]
                                [--warmup K] [--threads 2] [--data data] [--skip-inference] [--infer-batches 4]
                                [--json OUT]
    python -m tools.benchmark deform_gan --pairs BUNDLE_DIR [--pair-seeds 3] [--baselines SyN,elastix]
        # T against ANTs SyN and elastix, side by side
        [--pair-overrides '{"pixdim": [1, 1, 1], "roi_size": [160, 192, 160], "lg_kernel_size": 7,
                            "refine_steps": [30, 10], "refine_downsample": [3, 2], "refine_lr": 0.5,
                            "refine_alpha": 2.5, "refine_grid_factor": 5}']

Run from the repository root. Per network size it reports:

* **framework**: training iterations/s of the real bundle, built from ``bundles/<bundle>/configs/train.json``
  by ``monai.bundle.ConfigWorkflow`` exactly as a user runs it (only size, epoch length, validation interval
  and output folders overridden). An iteration is timed from one ``ITERATION_COMPLETED`` to the next, so it
  includes drawing the batch from the ``CacheDataset`` (random slice + flip), the step and every handler.
* **plain**: the same step written by hand in plain PyTorch, with the same networks and initialisation and
  Adam(2e-4, (0.5, 0.999)); a ``for`` loop over pre-sampled uniform random tensors in [-1, 1] of the training
  shape (convolution cost does not depend on values).
* **overhead**: median framework seconds/iteration divided by median plain seconds/iteration.
* **peak RSS**: ``VmHWM`` of a separate process per measurement, so the numbers do not contaminate each other:
  during the training loop (reset as it starts; the framework's holds its cached training and validation
  volumes) and over the whole process (the framework's includes loading and resampling those volumes).

And, at the default network size, seconds per volume for ``inference.json`` on the bundle's sample input
(``tools/bundles.py``: the held-out TCGA-DU-7294 T1, 240x240x155, for the MRI bundles; the 30-slice non-contrast
CT for ``unit_gmm``), with randomly initialised weights (timing does not depend on them): the whole ``run()`` (load,
preprocessing, slice-wise inference, inversion, saving), the time spent inside the generator during that run, and
the plain generator time for the same number of patches (256x256 slices; UNIT's 64x64 tiles) in batches of 8 under
``no_grad`` (``--infer-batches`` batches timed and scaled to the volume, since a full pass takes minutes on a CPU).

Bundles (``BENCHMARKS``; another bundle joins with one ``Benchmark`` entry):

* ``cyclegan``: the plain step is the pytorch-CycleGAN-and-pix2pix reference's ``optimize_parameters``: LSGAN
  + L1 cycle x10 + identity x5, image pools of 50, G_A+G_B with D frozen then D_A+D_B. Sizes: ``default`` is the
  config as shipped (the paper's); ``2mm`` the release size; ``demo`` the quick start's; ``test`` what the tests
  use. Without a GPU the default size runs at roughly 9 s/iteration on 2 cores: the whole benchmark takes ~6
  minutes.
* ``medgan``: the plain step is ``MedGANStep`` written out: ``generator_updates`` updates of the CasNet (D
  frozen; BCE adversarial + 20 x L1 of the image and D's hidden features + 1e-4 x VGG-19 style (Gram) and
  content + ``lambda_pixel`` x pixel L1), then one of the spectrally normalised D. Sizes: ``default`` is the
  config as shipped (the paper's: 6 U-blocks of 8 levels, 256x256, 3 generator updates per iteration);
  ``release`` and ``test`` those of ``tools/bundles.py`` (with their schedules' ``generator_updates`` and
  ``lambda_pixel`` where set). The frozen VGG-19 is always randomly initialised (``vgg_weights: "random"``):
  no ImageNet weights file exists here, and its cost does not depend on its weights. A default-size iteration
  (3 updates of a 326M-parameter generator, each through VGG-19 at 256x256) is ~1.2 TFLOP, against CycleGAN's
  ~1.9, plus 3 Adam steps over those 326M parameters.
* ``ae_gan``: the plain step is ``AEGANStep`` written out (the authors' ``optimize_parameters``): the inputs (all
  three, as shipped, or a random non-empty subset with ``input_subsets: "random"``), then the autoencoder-discriminator A (BCE real against synthesised and
  reconstructed + 100 x reconstruction L1), then the synthesis network S with A frozen (BCE + 100 x L1 + 0.1 x
  the KL between A's and S's decoder features), Adam(1e-4). Sizes: ``default`` the paper's (64 filters, 6 residual
  blocks, 256x256, three input branches); ``release`` and ``test`` those of ``tools/bundles.py``.

* ``unit_gmm``: the plain step is ``UNITGMMStep`` written out: D1 and D2 (LSGAN, x10) on real patches against
  translations from the other domain, then the two VAEs with shared layers and the Gaussian-mixture prior (x10
  adversarial, 0.1 x KL + 100 x L1 reconstruction, 0.1 x KL of real and re-encoded translations + 100 x L1 cycle,
  the KL a one-draw Monte-Carlo estimate), Adam(1e-4, weight decay 1e-4). Sizes: ``default`` the paper's (64 filters,
  4 residual blocks per side, 64x64 patches); ``release`` and ``test`` those of ``tools/bundles.py``.
* ``deform_gan``: the plain step is ``DeformGANStep`` written out: D (BCE, conditional on the warped moving
  image), then G (BCE + local gradient to the warped moving image + 100 x L1 to the fixed image), then T (LNCC
  through the frozen G + local gradient to the fixed image + diffusion smoothness), each with the other two
  frozen, the same loss modules (MONAI's ``Warp``, LNCC, ``DiffusionLoss``; ``LocalGradientLoss``). Sizes:
  ``default`` the paper's (VoxelMorph's T on 1 mm whole brains cropped to 160x192x160); ``release`` and ``test``
  those of ``tools/bundles.py``. Inference is one forward pass of T on the whole volume (fixed and moving, 1 mm,
  padded to a multiple of 16). ``--pairs BUNDLE_DIR`` instead registers the bundle's evaluation pairs with its
  trained T and with the classical baselines (``tools/registration_baseline.py``: ANTs SyN from its own virtualenv,
  ``python3.11 -m tools.ants setup``; elastix from ``requirements-benchmark.txt``) and prints them side by side.

Medians, not means: the machine may be shared. This is a measuring tool; it asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tools.bundles import BUNDLES, datalist_override
from tools.registration_baseline import ANTS_VENV, SYN_OPTIONS, SYN_TRANSFORM

ROOT = Path(__file__).resolve().parents[1]
INFER_BATCH = 8  # the bundles' SliceInferer sw_batch_size
ADAM = {"lr": 2e-4, "betas": (0.5, 0.999)}  # the CycleGAN and MedGAN optimisers
RESULT_PREFIX = "BENCHMARK_RESULT "
# the classical registration baselines of deform_gan --pairs (tools/registration_baseline.py)
BASELINES = ("SyN", "elastix")


@dataclass(frozen=True)
class Benchmark:
    """What one bundle contributes; the measurements, the driver and the report are shared.

    Args:
        title: the bundle's name in the report.
        sizes: size name -> overrides of ``train.json``'s top-level keys. ``"default"`` is the config as shipped;
            its network also runs the inference measurements (``inference.json`` as shipped).
        iterations: size name -> (warm-up, timed) iterations unless given on the command line.
        default_sizes: what ``--sizes`` measures when not given.
        plain: a size's config -> ``step(source, target)``, one training iteration in plain PyTorch on networks
            and optimisers it builds (after the caller's seed) as the bundle does.
        generator: a size's config -> the deployable network, ``inference.json``'s ``network_def`` at that size.
        overrides: ``train.json`` overrides at every size (not a size: e.g. a weights file that does not exist).
        source_channels: channels of the network's input (1; AE-GAN's stack of three contrasts and flags: 6).
        volumetric: the deployable network sees the whole volume at once (Deform-GAN's T, on the fixed and the
            moving image), not 2D patches: inference is one forward pass on the padded volume.
    """

    title: str
    sizes: dict[str, dict]
    iterations: dict[str, tuple[int, int]]
    default_sizes: tuple[str, ...]
    plain: Callable[[dict], Callable]
    generator: Callable[[dict], object]
    overrides: dict = field(default_factory=dict)
    source_channels: int = 1
    volumetric: bool = False

    def config(self, size: str) -> dict:
        """All that a size overrides in ``train.json``."""
        return {**self.overrides, **self.sizes[size]}


def _released(bundle: str, size: str, schedule_keys: tuple[str, ...] = ()) -> dict:
    """A size of ``tools/bundles.py``: its network settings and the named keys of its training schedule."""
    entry = BUNDLES[bundle]["sizes"][size]
    return {**entry["settings"], **{k: entry["schedule"][k] for k in schedule_keys if k in entry["schedule"]}}


# ---------------------------------------------------------------- shared helpers


def _device():
    """Where the bundles put everything (their configs' ``device``)."""
    import torch

    return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")


def _training(nets):
    """The networks on the device, in train mode (as the trainer sets them each iteration)."""
    return tuple(net.to(_device()).train() for net in nets)


def _bce(logits, target: float):
    """The BCE GAN loss on patch logits (``PatchAdversarialLoss(criterion="bce")``'s sigmoid + BCE, fused)."""
    import torch.nn.functional as F

    return F.binary_cross_entropy_with_logits(logits, logits.new_full(logits.shape, target))


def _lsgan(logits, target: float):
    import torch.nn.functional as F

    return F.mse_loss(logits, logits.new_full(logits.shape, target))


# ---------------------------------------------------------------- CycleGAN


def _resnet_generator(config: dict):
    from common.networks import ResnetGenerator

    return ResnetGenerator(2, 1, 1, num_filters=config["num_filters"], num_res_blocks=config["num_res_blocks"])


def _cyclegan_networks(config: dict):
    """G_A, G_B, D_A, D_B as the bundle builds them."""
    from monai.networks.nets import PatchDiscriminator

    gens = [_resnet_generator(config) for _ in range(2)]
    discs = [
        PatchDiscriminator(2, channels=config["disc_filters"], in_channels=1, num_layers_d=3, norm="INSTANCE", bias=True)
        for _ in range(2)
    ]
    return _training((*gens, *discs))


def cyclegan_plain_step(nets, opt_g, opt_d, pools, real_a, real_b) -> tuple[float, float]:
    """One CycleGAN iteration as the reference's ``optimize_parameters``; returns (loss_G, loss_D)."""
    import torch.nn.functional as F

    g_a, g_b, d_a, d_b = nets
    fake_b, fake_a = g_a(real_a), g_b(real_b)
    rec_a, rec_b = g_b(fake_b), g_a(fake_a)
    d_a.requires_grad_(False)
    d_b.requires_grad_(False)
    opt_g.zero_grad(set_to_none=True)
    loss_g = (
        _lsgan(d_b(fake_b)[-1], 1.0)
        + _lsgan(d_a(fake_a)[-1], 1.0)
        + 10.0 * (F.l1_loss(rec_a, real_a) + F.l1_loss(rec_b, real_b))
        + 5.0 * (F.l1_loss(g_a(real_b), real_b) + F.l1_loss(g_b(real_a), real_a))
    )
    loss_g.backward()
    opt_g.step()
    d_a.requires_grad_(True)
    d_b.requires_grad_(True)
    opt_d.zero_grad(set_to_none=True)
    loss_d = 0.0
    for d, real, fake, pool in ((d_a, real_a, fake_a, pools[0]), (d_b, real_b, fake_b, pools[1])):
        loss_d = loss_d + 0.5 * (_lsgan(d(real)[-1], 1.0) + _lsgan(d(pool.query(fake))[-1], 0.0))
    loss_d.backward()
    opt_d.step()
    return loss_g.item(), loss_d.item()


def _cyclegan_plain(config: dict) -> Callable:
    import itertools

    import torch

    from common.engines import ImagePool

    nets = _cyclegan_networks(config)
    opt_g = torch.optim.Adam(itertools.chain(nets[0].parameters(), nets[1].parameters()), **ADAM)
    opt_d = torch.optim.Adam(itertools.chain(nets[2].parameters(), nets[3].parameters()), **ADAM)
    return functools.partial(cyclegan_plain_step, nets, opt_g, opt_d, (ImagePool(50, seed=0), ImagePool(50, seed=1)))


# ---------------------------------------------------------------- MedGAN


def _casnet(config: dict):
    from common.networks import CasNet

    return CasNet(2, 1, 1, num_ublocks=config["num_ublocks"], channels=config["gen_channels"], norm="INSTANCE")


def medgan_networks(config: dict):
    """G (CasNet), D (conditional, spectrally normalised) and the frozen VGG-19 V as the bundle builds them."""
    from common.networks import SpectralPatchDiscriminator, VGG19Features

    disc = SpectralPatchDiscriminator(2, in_channels=2, channels=config["disc_filters"], num_layers_d=3)
    return _training((_casnet(config), disc, VGG19Features("random")))


def _gram(features):
    """(B, C, *S) -> (B, C, C) channel correlations over the C * prod(S) elements, as MedGAN normalises them."""
    b, c = features.shape[:2]
    f = features.reshape(b, c, -1)  # (B, C, P)
    return f @ f.transpose(1, 2) / (c * f.shape[-1])


def medgan_plain_step(
    nets, opt_g, opt_d, source, target, generator_updates: int = 3, lambda_pixel: float = 0.0,
    lambda_style: float = 1e-4, lambda_content: float = 1e-4,
) -> dict[str, float]:
    """One MedGAN iteration as ``MedGANStep`` does it, on a source ``y`` and target ``x`` (B, 1, H, W).

    ``generator_updates`` updates of G with D frozen, each on the same batch, then one of D on the last fake; VGG-19
    runs only when the style or the content weight is non-zero, as in ``MedGANStep``.
    Returns the last generator update's weighted loss terms, their sum ``loss_G``, and ``loss_D``.
    """
    import torch
    import torch.nn.functional as F

    g, d, vgg = nets
    real_pair = torch.cat([target, source], dim=1)  # (B, 2, H, W): the discriminator judges (image, source)
    d.requires_grad_(False)
    for _ in range(generator_updates):
        fake = g(source)
        d_fake = d(torch.cat([fake, source], dim=1))  # hidden feature maps, then the patch logits
        with torch.no_grad():
            d_real = d(real_pair)
        perceptual = [F.l1_loss(a, b) for a, b in zip([fake, *d_fake[:-1]], [target, *d_real[:-1]])]  # D_0: pixels
        terms = {
            "loss_G_adv": _bce(d_fake[-1], 1.0),
            "loss_perceptual": 20.0 * sum(perceptual),
            "loss_style": fake.new_zeros(()),
            "loss_content": fake.new_zeros(()),
            "loss_pixel": lambda_pixel * F.l1_loss(fake, target),
        }
        if lambda_style or lambda_content:
            with torch.no_grad():
                v_real = vgg(target)
            v_fake = vgg(fake)
            style = [(_gram(a) - _gram(b)).pow(2).sum(dim=(1, 2)).mean() / (4 * a.shape[1] ** 2)
                     for a, b in zip(v_fake, v_real)]
            terms["loss_style"] = lambda_style * sum(style)
            terms["loss_content"] = lambda_content * sum(F.mse_loss(a, b) for a, b in zip(v_fake, v_real))
        loss_g = sum(terms.values())
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
    d.requires_grad_(True)
    fake = fake.detach()
    opt_d.zero_grad(set_to_none=True)
    loss_d = 0.5 * (_bce(d(real_pair)[-1], 1.0) + _bce(d(torch.cat([fake, source], dim=1))[-1], 0.0))
    loss_d.backward()
    opt_d.step()
    return {"loss_G": loss_g.item(), **{k: v.item() for k, v in terms.items()}, "loss_D": loss_d.item()}


def _medgan_plain(config: dict) -> Callable:
    import torch

    nets = medgan_networks(config)
    opt_g, opt_d = (torch.optim.Adam(net.parameters(), **ADAM) for net in nets[:2])
    return functools.partial(medgan_plain_step, nets, opt_g, opt_d,
                             **{k: config[k] for k in ("generator_updates", "lambda_pixel", "lambda_style", "lambda_content")})


# ---------------------------------------------------------------- AE-GAN


def _ae_gan_synthesis(config: dict):
    from common.networks import MultiContrastSynthesisNet

    return MultiContrastSynthesisNet(2, num_inputs=3, num_filters=config["num_filters"], num_res_blocks=config["num_res_blocks"])


def ae_gan_networks(config: dict):
    """S (three input branches, T2 as the target) and A (autoencoder; its encoder and head are D) as the bundle builds them."""
    from common.networks import ContrastAutoencoder

    return _training((_ae_gan_synthesis(config), ContrastAutoencoder(2, num_filters=config["num_filters"],
                                                                     num_res_blocks=config["num_res_blocks"])))


def ae_gan_plain_step(nets, opt_s, opt_a, source, target, lambda_sr: float = 0.1, random_subsets: bool = True) -> dict[str, float]:
    """One AE-GAN iteration as ``AEGANStep`` does it (and the authors' ``optimize_parameters``), on a stack ``source``
    (B, 6, H, W: three contrasts and their missing flags) and a target (B, 1, H, W).

    With ``random_subsets`` a non-empty subset of the given inputs is drawn per item and the others zero-filled and
    flagged. Then A (autoencoder and discriminator) is updated on BCE(real) and BCE(synthesised, reconstructed) +
    100 x reconstruction L1, and S, with A frozen, on BCE + 100 x L1 + ``lambda_sr`` x the KL between A's and S's
    decoder features (softmax over channels). Returns the losses.
    """
    import torch
    import torch.nn.functional as F

    s, a = nets
    n = source.shape[1] // 2
    if random_subsets:  # the bundle's two tensor helpers: a uniform non-empty subset per item, zero-filled and flagged
        from common.data import random_input_subsets, with_inputs

        source = with_inputs(source, random_input_subsets(source[:, n:].flatten(2).amax(2) < 0.5))
    fake, features_s = s(source, return_features=True)

    opt_a.zero_grad(set_to_none=True)
    recon, features_a, d_real = a(target)
    loss_ad = 0.5 * (_bce(d_real, 1.0) + 0.5 * (_bce(a(fake.detach(), decode=False), 0.0)
                                                + _bce(a(recon.detach(), decode=False), 0.0)))
    loss_a = loss_ad + 100.0 * F.l1_loss(recon, target)
    loss_a.backward()
    opt_a.step()

    a.requires_grad_(False)
    opt_s.zero_grad(set_to_none=True)
    kl = sum((F.softmax(t, 1) * (F.log_softmax(t, 1) - F.log_softmax(f, 1))).sum(1).mean()
             for f, t in zip(features_s, [t.detach() for t in features_a]))
    loss_s = _bce(a(fake, decode=False), 1.0) + 100.0 * F.l1_loss(fake, target) + lambda_sr * kl
    loss_s.backward()
    opt_s.step()
    a.requires_grad_(True)
    return {"loss_S": loss_s.item(), "loss_A": loss_a.item(), "loss_AD": loss_ad.item()}


def _ae_gan_plain(config: dict) -> Callable:
    import torch

    nets = ae_gan_networks(config)
    opt_s, opt_a = (torch.optim.Adam(net.parameters(), lr=1e-4, betas=(0.5, 0.999)) for net in nets)
    return functools.partial(ae_gan_plain_step, nets, opt_s, opt_a, random_subsets=config["input_subsets"] == "random")


# ---------------------------------------------------------------- patch-based GMM UNIT


def _shared_latent_vaes(config: dict):
    from common.networks import SharedLatentVAEs

    return SharedLatentVAEs(2, num_filters=config["num_filters"], num_res_blocks=config["num_res_blocks"],
                            norm=config["gen_norm"])


def unit_gmm_networks(config: dict):
    """G (the two VAEs with shared layers), the Gaussian-mixture prior, D1 and D2 as the bundle builds them."""
    from monai.networks.nets import PatchDiscriminator

    from common.losses import GaussianMixturePrior

    g = _shared_latent_vaes(config)
    prior = GaussianMixturePrior(g.latent_channels, config["num_components"])
    discs = [PatchDiscriminator(2, channels=config["disc_filters"], in_channels=1, num_layers_d=config["disc_layers"],
                                norm="INSTANCE", bias=True) for _ in range(2)]
    return _training((g, prior, *discs))


def _mixture_kl(mu, prior) -> "torch.Tensor":
    """KL(N(mu, I) || the mixture) per latent dimension, one Monte-Carlo draw: -H(q) - log p(mu + eps)."""
    import math

    import torch

    c = mu.shape[1]
    z = mu.movedim(1, -1).reshape(-1, c)  # (B, C, H, W) -> (B * H * W, C)
    z = z + torch.randn_like(z)
    diff = z[:, None] - prior.means[None]  # (N, K, C)
    log_normal = -0.5 * (math.log(2 * math.pi) + prior.log_vars + diff**2 * torch.exp(-prior.log_vars)).sum(-1)
    log_p = torch.logsumexp(torch.log_softmax(prior.logits, 0) + log_normal, 1)
    return (-0.5 * c * (math.log(2 * math.pi) + 1) - log_p).mean() / c


def unit_gmm_plain_step(nets, opt_g, opt_d, x1, x2, weights=(10.0, 0.1, 100.0, 0.1, 100.0)) -> dict[str, float]:
    """One iteration as ``UNITGMMStep`` does it: D1 and D2 on real patches against translations from the other domain
    (LSGAN, halved), then E1/E2/G1/G2 and the prior on the UNIT objective (adversarial, VAE: KL + 100 x L1
    reconstruction, cycle: KL of the re-encoded translations + 100 x L1 cycle), the same random draws in the same
    order. Returns the losses."""
    import torch
    import torch.nn.functional as F

    l0, l1, l2, l3, l4 = weights
    g, prior, d1, d2 = nets
    with torch.no_grad():
        mu = g.encode(x2, 1)
        x21 = g.decode(mu + torch.randn_like(mu), 0)
        mu = g.encode(x1, 0)
        x12 = g.decode(mu + torch.randn_like(mu), 1)
    opt_d.zero_grad(set_to_none=True)
    loss_d1 = l0 * 0.5 * (_lsgan(d1(x1)[-1], 1.0) + _lsgan(d1(x21)[-1], 0.0))
    loss_d2 = l0 * 0.5 * (_lsgan(d2(x2)[-1], 1.0) + _lsgan(d2(x12)[-1], 0.0))
    (loss_d1 + loss_d2).backward()
    opt_d.step()

    d1.requires_grad_(False)
    d2.requires_grad_(False)
    mu1, mu2 = g.encode(x1, 0), g.encode(x2, 1)
    z1, z2 = mu1 + torch.randn_like(mu1), mu2 + torch.randn_like(mu2)
    x11, x22, x12, x21 = g.decode(z1, 0), g.decode(z2, 1), g.decode(z1, 1), g.decode(z2, 0)
    mu12, mu21 = g.encode(x12, 1), g.encode(x21, 0)
    x121, x212 = g.decode(mu12 + torch.randn_like(mu12), 0), g.decode(mu21 + torch.randn_like(mu21), 1)
    kl_real = _mixture_kl(mu1, prior) + _mixture_kl(mu2, prior)
    kl_translated = _mixture_kl(mu12, prior) + _mixture_kl(mu21, prior)
    loss_adv = l0 * (_lsgan(d1(x21)[-1], 1.0) + _lsgan(d2(x12)[-1], 1.0))
    loss_vae = l1 * kl_real + l2 * (F.l1_loss(x11, x1) + F.l1_loss(x22, x2))
    loss_cc = l3 * (kl_real + kl_translated) + l4 * (F.l1_loss(x121, x1) + F.l1_loss(x212, x2))
    loss_g = loss_adv + loss_vae + loss_cc
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    opt_g.step()
    d1.requires_grad_(True)
    d2.requires_grad_(True)
    return {"loss_G": loss_g.item(), "loss_G_adv": loss_adv.item(), "loss_vae": loss_vae.item(), "loss_cc": loss_cc.item(),
            "loss_D1": loss_d1.item(), "loss_D2": loss_d2.item()}


def _unit_gmm_optimizers(nets, lr: float = 1e-4, weight_decay: float = 1e-4):
    import torch

    g, prior, d1, d2 = nets
    adam = {"lr": lr, "betas": (0.5, 0.999), "weight_decay": weight_decay}
    # as the bundle's train.json: no weight decay on the mixture prior
    return (torch.optim.Adam([{"params": g.parameters()}, {"params": prior.parameters(), "weight_decay": 0.0}], **adam),
            torch.optim.Adam([*d1.parameters(), *d2.parameters()], **adam))


def _unit_gmm_plain(config: dict) -> Callable:
    nets = unit_gmm_networks(config)
    return functools.partial(unit_gmm_plain_step, nets, *_unit_gmm_optimizers(nets))


def _transformation_network(config: dict):
    from common.registration import TransformationNetwork

    return TransformationNetwork(3, channels=config["t_channels"], final_conv_channels=config["t_final_channels"],
                                 integration_steps=config.get("integration_steps", 0))


def deform_gan_networks(config: dict):
    """T, G, D as ``train.json`` builds them (seeded by the caller)."""
    from monai.networks.nets import PatchDiscriminator, UNet

    t = _transformation_network(config)
    kernel = config["gen_kernel_size"]
    strides = [2 if kernel > 1 else 1] * (len(config["gen_channels"]) - 1)  # 1: pointwise, no down-sampling
    g = UNet(3, 1, 1, channels=config["gen_channels"], strides=strides, kernel_size=kernel, up_kernel_size=kernel,
             num_res_units=1, norm="INSTANCE")
    d = PatchDiscriminator(3, config["disc_filters"], 2, num_layers_d=config["disc_layers"], norm="INSTANCE", bias=True)
    return _training((t, g, d))


def deform_gan_plain_step(nets, opts, losses, weights, fixed, moving) -> dict[str, float]:
    """One Deform-GAN iteration by hand: D (BCE, real (F(phi), R) against fake (F(phi), G(F(phi))), halved), then G
    (BCE + mu * local gradient to F(phi) + lambda * L1 to R), then T (LNCC through G + beta * local gradient to R +
    alpha * diffusion), each with the other two frozen."""
    import torch
    import torch.nn.functional as F

    t, g, d = nets
    opt_t, opt_g, opt_d = opts
    warp, lncc, local_gradient, smoothness = losses
    alpha, beta, mu, lam = weights

    def bce(logits, real):
        logits = logits[-1]
        return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, float(real)))

    def freeze(*trained):
        for net in nets:
            net.requires_grad_(net in trained)

    freeze(d)
    with torch.no_grad():
        warped = warp(moving, t(torch.cat([fixed, moving], 1)))
        translated = g(warped)
    loss_d = 0.5 * (bce(d(torch.cat([warped, fixed], 1)), True) + bce(d(torch.cat([warped, translated], 1)), False))
    opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    opt_d.step()

    freeze(g)
    translated = g(warped)
    loss_g = (bce(d(torch.cat([warped, translated], 1)), True) + mu * local_gradient(translated, warped)
              + lam * (translated - fixed).abs().mean())
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    opt_g.step()

    freeze(t)
    ddf = t(torch.cat([fixed, moving], 1))
    warped = warp(moving, ddf)
    loss_t = lncc(g(warped), fixed) + beta * local_gradient(fixed, warped) + alpha * smoothness(ddf)
    opt_t.zero_grad(set_to_none=True)
    loss_t.backward()
    opt_t.step()
    freeze(t, g, d)
    return {"loss_T": float(loss_t), "loss_G": float(loss_g), "loss_D": float(loss_d)}


def _deform_gan_plain(config: dict) -> Callable:
    import torch
    from monai.losses import DiffusionLoss, LocalNormalizedCrossCorrelationLoss
    from monai.networks.blocks import Warp

    from common.losses import LocalGradientLoss

    nets = deform_gan_networks(config)
    lr = config.get("lr", 1e-4)
    opts = (torch.optim.Adam(nets[0].parameters(), lr=lr), torch.optim.Adam(nets[1].parameters(), lr=lr, betas=(0.5, 0.999)),
            torch.optim.Adam(nets[2].parameters(), lr=lr, betas=(0.5, 0.999)))
    losses = (Warp("bilinear", "border"), LocalNormalizedCrossCorrelationLoss(3, kernel_size=config["lcc_kernel_size"]),
              LocalGradientLoss(config["lg_kernel_size"]), DiffusionLoss())
    weights = tuple(config[k] for k in ("alpha", "beta", "mu", "lam"))
    return functools.partial(deform_gan_plain_step, nets, opts, losses, weights)


def _shipped(bundle: str, keys: tuple[str, ...]) -> dict:
    """Top-level values of the bundle's ``train.json`` as shipped (plain JSON values, not expressions)."""
    config = json.loads((ROOT / "bundles" / bundle / "configs" / "train.json").read_text(encoding="utf-8"))
    return {k: config[k] for k in keys}


# the plain step needs these at every size (the release schedule turns the VGG-19 losses off)
_MEDGAN_LOSS = _shipped("medgan", ("generator_updates", "lambda_pixel", "lambda_style", "lambda_content"))

# the input combinations the plain AE-GAN step draws (the shipped "all", or "random" where a size's schedule says so)
_AE_GAN_INPUTS = _shipped("ae_gan", ("input_subsets",))

# the mixture's size and the discriminators' depth, as shipped unless a size sets them
_UNIT_GMM_SHIPPED = _shipped("unit_gmm", ("num_components", "disc_layers", "gen_norm"))

# T's and the step's settings as shipped unless a size sets them
_DEFORM_GAN_SHIPPED = _shipped("deform_gan", ("t_channels", "t_final_channels", "integration_steps", "gen_channels",
                                              "gen_kernel_size", "disc_filters", "disc_layers", "alpha", "beta", "mu",
                                              "lam", "lcc_kernel_size", "lg_kernel_size"))

BENCHMARKS: dict[str, Benchmark] = {
    "cyclegan": Benchmark(
        title="CycleGAN",
        sizes={
            "default": {"num_filters": 64, "num_res_blocks": 9, "disc_filters": 64,
                        "pixdim": [1.0, 1.0, 1.0], "roi_size": [256, 256]},
            "2mm": {"num_filters": 32, "num_res_blocks": 6, "disc_filters": 32,
                    "pixdim": [2.0, 2.0, 2.0], "roi_size": [128, 128]},
            "demo": {"num_filters": 32, "num_res_blocks": 6, "disc_filters": 32,
                     "pixdim": [3.0, 3.0, 3.0], "roi_size": [84, 84]},
            "test": {"num_filters": 8, "num_res_blocks": 2, "disc_filters": 8,
                     "pixdim": [4.0, 4.0, 4.0], "roi_size": [64, 64]},
        },
        # ~9 s/it at default on 2 cores
        iterations={"default": (2, 5), "2mm": (3, 20), "demo": (3, 40), "test": (10, 100)},
        default_sizes=("default", "demo", "test"),
        plain=_cyclegan_plain,
        generator=_resnet_generator,
    ),
    "medgan": Benchmark(
        title="MedGAN",
        sizes={
            "default": {"num_ublocks": 6, "gen_channels": [64, 128, 256, 512, 512, 512, 512, 512], "disc_filters": 64,
                        "pixdim": [1.0, 1.0, 1.0], "roi_size": [256, 256], **_MEDGAN_LOSS},
            "release": {**_MEDGAN_LOSS, **_released("medgan", "release", tuple(_MEDGAN_LOSS))},
            "test": {**_MEDGAN_LOSS, **_released("medgan", "test", tuple(_MEDGAN_LOSS))},
        },
        iterations={"default": (1, 2), "release": (2, 10), "test": (5, 30)},
        default_sizes=("default", "release", "test"),
        plain=_medgan_plain,
        generator=_casnet,
        overrides={"vgg_weights": "random"},
    ),
    "ae_gan": Benchmark(
        title="AE-GAN",
        sizes={
            "default": {"num_filters": 64, "num_res_blocks": 6, "pixdim": [1.0, 1.0, 1.0], "roi_size": [256, 256], **_AE_GAN_INPUTS},
            "release": {**_AE_GAN_INPUTS, **_released("ae_gan", "release", tuple(_AE_GAN_INPUTS))},
            "test": {**_AE_GAN_INPUTS, **_released("ae_gan", "test", tuple(_AE_GAN_INPUTS))},
        },
        # ~17 s/it at default on 2 cores
        iterations={"default": (1, 3), "release": (3, 20), "test": (10, 50)},
        default_sizes=("default", "release", "test"),
        plain=_ae_gan_plain,
        generator=_ae_gan_synthesis,
        source_channels=6,
    ),
    "unit_gmm": Benchmark(
        title="patch-based GMM UNIT",
        sizes={
            "default": {"num_filters": 64, "num_res_blocks": 4, "disc_filters": 64, "pixdim": [1.5, 1.5, 1.5],
                        "roi_size": [64, 64], **_UNIT_GMM_SHIPPED},
            "release": {**_UNIT_GMM_SHIPPED, **_released("unit_gmm", "release")},
            "test": {**_UNIT_GMM_SHIPPED, **_released("unit_gmm", "test")},
        },
        iterations={"default": (2, 10), "release": (5, 50), "test": (10, 100)},
        default_sizes=("default", "release", "test"),
        plain=_unit_gmm_plain,
        generator=_shared_latent_vaes,
    ),
    "deform_gan": Benchmark(
        title="Deform-GAN",
        sizes={
            "default": {**_DEFORM_GAN_SHIPPED, "pixdim": [1.0, 1.0, 1.0], "roi_size": [160, 192, 160]},
            "release": {**_DEFORM_GAN_SHIPPED, **_released("deform_gan", "release")},
            "test": {**_DEFORM_GAN_SHIPPED, **_released("deform_gan", "test")},
        },
        iterations={"default": (1, 3), "release": (3, 20), "test": (5, 30)},
        default_sizes=("default", "release", "test"),
        plain=_deform_gan_plain,
        generator=_transformation_network,
        source_channels=1,
        volumetric=True,
    ),
}


# ---------------------------------------------------------------- measurements (each in its own process)


def _peak_rss_mib() -> float:
    """This process's peak resident set size (VmHWM) in MiB."""
    for line in Path("/proc/self/status").read_text(encoding="utf-8").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


_PEAK_BEFORE_RESET = [0.0]


def _reset_peak_rss() -> None:
    """Start VmHWM afresh (Linux: ``5`` to clear_refs), so that the next reading covers only what follows."""
    _PEAK_BEFORE_RESET[0] = max(_PEAK_BEFORE_RESET[0], _peak_rss_mib())
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass  # then the reading covers the whole process


def _config_file(bundle: str, name: str) -> str:
    return str(ROOT / "bundles" / bundle / "configs" / f"{name}.json")


def measure_framework(bundle: str, size: str, warmup: int, iterations: int, data_dir: Path) -> dict:
    """Run the bundle's trainer for warmup+iterations iterations (one epoch, no validation)."""
    from ignite.engine import Events
    from monai.bundle import ConfigWorkflow

    with tempfile.TemporaryDirectory() as tmp:
        overrides = {
            **BENCHMARKS[bundle].config(size),
            **datalist_override(bundle),  # the test subset: the speed of an iteration does not depend on the count
            "bundle_root": tmp,
            "dataset_dir": str(data_dir),
            "iterations_per_epoch": warmup + iterations,
            "n_epochs": 1,
            "n_epochs_decay": 1,
            "train#trainer#max_epochs": 1,
            "val_interval": 10**6,
        }
        wf = ConfigWorkflow(config_file=_config_file(bundle, "train"), workflow_type="train", **overrides)
        wf.initialize()
        trainer = wf.parser.get_parsed_content("train#trainer")  # the instance that "run" runs
        completed, batch_start, batch_time, loop_peak = [], [], [], []
        trainer.add_event_handler(Events.STARTED, lambda _: _reset_peak_rss())  # after the dataset is cached
        trainer.add_event_handler(Events.COMPLETED, lambda _: loop_peak.append(_peak_rss_mib()))
        trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda _: completed.append(time.perf_counter()))
        trainer.add_event_handler(Events.GET_BATCH_STARTED, lambda _: batch_start.append(time.perf_counter()))
        trainer.add_event_handler(
            Events.GET_BATCH_COMPLETED, lambda _: batch_time.append(time.perf_counter() - batch_start[-1])
        )
        wf.run()
        wf.finalize()
    periods = [b - a for a, b in zip(completed, completed[1:])][warmup - 1 :]
    return {"seconds": periods, "data_seconds": batch_time[warmup : warmup + iterations], "loop_peak_rss_mib": loop_peak[0]}


def measure_plain(bundle: str, size: str, warmup: int, iterations: int) -> dict:
    """The same iteration in a plain loop over pre-sampled (source, target) tensors."""
    import torch

    config = BENCHMARKS[bundle].config(size)
    torch.manual_seed(0)
    step = BENCHMARKS[bundle].plain(config)
    shape = (1, 1, *config["roi_size"])
    source_shape = (1, BENCHMARKS[bundle].source_channels, *config["roi_size"])
    batches = [(torch.rand(source_shape, device=_device()) * 2 - 1, torch.rand(shape, device=_device()) * 2 - 1) for _ in range(8)]
    if BENCHMARKS[bundle].source_channels > 1:  # a stack of contrasts and their missing flags: every contrast given
        for source, _ in batches:
            source[:, source.shape[1] // 2 :] = 0.0
    seconds = []
    _reset_peak_rss()
    for i in range(warmup + iterations):
        start = time.perf_counter()
        step(*batches[i % len(batches)])
        seconds.append(time.perf_counter() - start)
    return {"seconds": seconds[warmup:], "loop_peak_rss_mib": _peak_rss_mib()}


def _default_generator(bundle: str):
    """The deployable network at the default size (``inference.json`` as shipped), seeded."""
    import torch

    torch.manual_seed(0)
    return BENCHMARKS[bundle].generator(BENCHMARKS[bundle].sizes["default"])


def measure_bundle_inference(bundle: str, data_dir: Path) -> dict:
    """``inference.json``'s ``run()`` on the held-out volume at the default size, and the generator's share."""
    import torch
    from monai.bundle import ConfigWorkflow

    with tempfile.TemporaryDirectory() as tmp:
        torch.save(_default_generator(bundle).state_dict(), f"{tmp}/model.pt")
        overrides = {"bundle_root": tmp, "ckpt_path": f"{tmp}/model.pt", "output_dir": f"{tmp}/out",
                     "dataset_dir": str(data_dir), BUNDLES[bundle]["input_arg"]: str(data_dir / BUNDLES[bundle]["sample_input"]),
                     **{k: str(data_dir / v) for k, v in BUNDLES[bundle].get("extra_inputs", {}).items()}}
        wf = ConfigWorkflow(config_file=_config_file(bundle, "inference"), workflow_type="infer", **overrides)
        wf.initialize()
        network, inside, slices = wf.parser.get_parsed_content("network"), [], []

        def started(_module, inputs):  # a pre-hook returning non-None would replace the inputs
            slices.append(len(inputs[0]))
            inside.append(-time.perf_counter())

        network.register_forward_pre_hook(started)
        network.register_forward_hook(lambda *_: inside.append(inside.pop() + time.perf_counter()))
        start = time.perf_counter()
        wf.run()
        seconds = time.perf_counter() - start
        wf.finalize()
    return {"seconds": seconds, "network_seconds": sum(inside), "slices": sum(slices)}


def _volume_extent(bundle: str, data_dir: Path) -> list[float]:
    """The sample volume's size in voxels after resampling to the default size's spacing."""
    import nibabel as nib

    image = nib.load(data_dir / BUNDLES[bundle]["sample_input"])
    return [n * z / p for n, z, p in zip(image.shape, image.header.get_zooms(), BENCHMARKS[bundle].sizes["default"]["pixdim"])]


def _network_input(bundle: str, data_dir: Path, count: int):
    """``count`` random network inputs: 2D patches of the default ``roi_size``, or for a volumetric network the whole
    resampled volume padded to a multiple of 2**levels (T's fixed and moving channels)."""
    import math

    import torch

    spec = BENCHMARKS[bundle]
    if spec.volumetric:
        net = _default_generator(bundle)
        factor = 2 ** net.levels
        shape = [factor * math.ceil(round(e) / factor) for e in _volume_extent(bundle, data_dir)]
        return torch.rand(count, 2, *shape, device=_device())
    return torch.rand(count, spec.source_channels, *spec.sizes["default"]["roi_size"], device=_device()) * 2 - 1


def volume_patches(bundle: str, data_dir: Path) -> int:
    """How many 2D patches of the default ``roi_size`` the inferer tiles the bundle's sample volume into: its axial
    slices at the default spacing, each covered with the inferer's overlap of 0.25 (one patch where the slice is no
    larger than the patch, as for the MRI bundles' 256x256 on 240x240 slices)."""
    import math

    if BENCHMARKS[bundle].volumetric:
        return 1
    size = BENCHMARKS[bundle].sizes["default"]
    extent = _volume_extent(bundle, data_dir)
    per_axis = [1 if e <= r else math.ceil((e - r) / max(int(r * 0.75), 1)) + 1 for e, r in zip(extent, size["roi_size"])]
    return math.ceil(extent[2]) * per_axis[0] * per_axis[1]


def measure_network_inference(bundle: str, data_dir: Path, n_batches: int) -> dict:
    """The default-size generator alone on its 2D patches (e.g. 256x256) in batches of 8, scaled to the patches of
    the bundle's sample volume (``volume_patches``; one per slice for the MRI bundles).

    ``n_batches`` full batches are timed (0: all the volume's patches, the last batch partial) to keep it short.
    """
    import torch

    n_slices = volume_patches(bundle, data_dir)
    net = _default_generator(bundle).to(_device()).eval()
    timed = min(n_slices, n_batches * INFER_BATCH) if n_batches > 0 else n_slices
    slices = _network_input(bundle, data_dir, timed)
    with torch.no_grad():
        net(slices[:INFER_BATCH]).sum().item()  # warm-up batch, not timed
        start = time.perf_counter()
        for batch in slices.split(INFER_BATCH):
            net(batch).sum().item()  # .item(): wait for the device
        seconds = time.perf_counter() - start
    return {"seconds": seconds * n_slices / timed, "timed_slices": timed, "slices": n_slices}


def _baseline_registrations(threads: int, syn_transform: str, syn_options: dict | None, ants_venv: Path) -> dict:
    """The classical baselines by name: ``(fixed, moving, spacing) -> (ddf in voxels, seconds)``."""
    from tools.registration_baseline import elastix_register, syn_register

    return {"SyN": functools.partial(syn_register, threads=threads, transform=syn_transform, options=syn_options, venv=ants_venv),
            "elastix": elastix_register}  # elastix: 1 thread, see there


def _pair_settings(parser, baselines: Sequence[str], syn_transform: str, syn_options: dict | None) -> dict:
    """What the pairs ran with, for the report: T's test-time optimisation as the bundle's inferer has it (also for
    bundles older than a config key), the pairs' spacing, and SyN's transform and effective options."""
    from tools.registration_baseline import syn_arguments

    settings = {k: parser.get_parsed_content(k) for k in ("refine_steps", "refine_downsample", "pixdim")}
    inferer = parser.get_parsed_content("validate#inferer")
    settings.update({f"refine_{k}": getattr(inferer, k) for k in ("lr", "alpha", "grid_factor") if hasattr(inferer, k)})
    if "SyN" in baselines:
        settings.update(syn_transform=syn_transform, syn_options=syn_arguments(syn_options))
    return settings


def measure_pairs(bundle_dir: Path, data_dir: Path, seeds: int, threads: int, overrides: dict | None = None,
                  baselines: Sequence[str] = BASELINES, syn_transform: str = SYN_TRANSFORM,
                  syn_options: dict | None = None, ants_venv: Path = ANTS_VENV) -> dict:
    """Deform-GAN's T (a trained bundle folder: its configs and ``models/model.pt``) and the classical baselines
    (``tools/registration_baseline.py``: ANTs SyN on ``threads`` threads, elastix on one) on the same evaluation
    pairs: the bundle's ``evaluate.json`` pairs under ``seeds`` different seeded deformations, each scored by
    ``registration_figures`` against the known field. ``overrides`` are config values for that evaluation (e.g.
    1 mm pairs for a T trained at 3 mm); ``syn_transform`` is ANTs' ``type_of_transform``, ``syn_options`` update
    ``SYN_OPTIONS``, its further arguments."""
    import csv

    import torch
    from monai.bundle import ConfigWorkflow
    from monai.data import MetaTensor

    from common.registration import registration_figures

    register = _baseline_registrations(threads, syn_transform, syn_options, ants_venv)
    configs = [str(bundle_dir / "configs" / f"{n}.json") for n in ("train", "evaluate")]
    rows = {"T": [], **{b: [] for b in baselines}}
    for seed in range(seeds):
        with tempfile.TemporaryDirectory() as tmp:
            wf = ConfigWorkflow(config_file=configs, workflow_type="eval", bundle_root=str(bundle_dir),
                                dataset_dir=str(data_dir), output_dir=tmp, tb_dir=tmp, eval_seed=seed, **(overrides or {}))
            wf.initialize()
            wf.run()
            rows["T"] += [{**r, "pair": f"{r['pair']} (seed {seed})"} for r in csv.DictReader(open(Path(tmp) / "pairs.csv", encoding="utf-8"))]
            for item in wf.parser.get_parsed_content("validate#dataset"):
                fixed, moving = item["fixed"], item["moving"]
                spacing = [float(v) for v in fixed.pixdim]
                name = Path(str(fixed.meta.get("filename_or_obj", "pair"))).name.split(".")[0]
                # what registration_figures reads besides the field, the same for every baseline
                pair = {"image": MetaTensor(torch.cat([fixed, moving]), meta=dict(fixed.meta)), "true_ddf": item["true_ddf"],
                        **{k: item[k] for k in ("label", "label_fixed") if k in item}}
                for baseline in baselines:
                    ddf, seconds = register[baseline](fixed[0].numpy(), moving[0].numpy(), spacing)
                    scored = {**pair, "pred": torch.as_tensor(ddf, dtype=torch.float32), "seconds": seconds}
                    rows[baseline].append({"pair": f"{name} (seed {seed})", **registration_figures(scored)})
            settings = _pair_settings(wf.parser, baselines, syn_transform, syn_options)
            wf.finalize()
    return {"rows": with_network_rows(rows, _refines(settings)), **settings}


def measure_anatomical(bundle_dir: Path, data_dir: Path, threads: int, overrides: dict | None = None,
                       baselines: Sequence[str] = BASELINES, syn_transform: str = SYN_TRANSFORM,
                       syn_options: dict | None = None, ants_venv: Path = ANTS_VENV) -> dict:
    """T (with the bundle's test-time optimisation, its ``inferer``) and the classical baselines on the inter-subject
    pairs of the labelled brains (``tools/anatomical_pairs.py``), affinely aligned first, at the bundle's ``pixdim``
    and ``roi_size`` after ``overrides``: Dice over anatomical structures, folding, seconds per pair."""
    import torch
    from monai.bundle import ConfigWorkflow
    from monai.data import MetaTensor

    from common.registration import registration_figures
    from tools.anatomical_pairs import anatomical_pairs

    register = _baseline_registrations(threads, syn_transform, syn_options, ants_venv)
    configs = [str(bundle_dir / "configs" / f"{n}.json") for n in ("train", "evaluate")]
    with tempfile.TemporaryDirectory() as tmp:
        wf = ConfigWorkflow(config_file=configs, workflow_type="eval", bundle_root=str(bundle_dir),
                            dataset_dir=str(data_dir), output_dir=tmp, tb_dir=tmp, **(overrides or {}))
        wf.initialize()
        get = wf.parser.get_parsed_content
        device, network, inferer = get("device"), get("T"), get("validate#inferer")
        network.load_state_dict(torch.load(get("network_path"), map_location=device, weights_only=True))
        network.to(device).eval()
        pixdim = [float(v) for v in get("pixdim")]
        pairs = anatomical_pairs(data_dir, pixdim, get("roi_size"), threads, get("intensity_percentile"), ants_venv)
        rows = {"T": [], **{b: [] for b in baselines}}
        for pair in pairs:
            fixed, moving = pair["fixed"], pair["moving"]
            scored = {"image": MetaTensor(torch.cat([fixed, moving]), meta=dict(fixed.meta)), "label": pair["label"],
                      "label_fixed": pair["label_fixed"]}
            with torch.no_grad():
                start = time.perf_counter()
                ddf = inferer(torch.cat([fixed, moving])[None].as_tensor().to(device), network)[0].cpu()
                seconds = time.perf_counter() - start
            refined = {"network_pred": inferer.network_ddf[0].cpu(), "network_seconds": inferer.network_seconds} if getattr(inferer, "refines", False) else {}
            figures = registration_figures({**scored, "pred": ddf, "seconds": seconds, **refined})  # dice_before: after the affine
            rows["T"].append({"pair": pair["pair"], **figures, "unaligned_dice": pair["unaligned_dice"]})
            for baseline in baselines:
                ddf, seconds = register[baseline](fixed[0].numpy(), moving[0].numpy(), pixdim)
                figures = registration_figures({**scored, "pred": torch.as_tensor(ddf, dtype=torch.float32), "seconds": seconds})
                rows[baseline].append({"pair": pair["pair"], **figures})
        settings = _pair_settings(wf.parser, baselines, syn_transform, syn_options)
        wf.finalize()
    return {"rows": with_network_rows(rows, _refines(settings)), **settings}


def _refines(settings: dict) -> bool:
    steps = settings.get("refine_steps", 0)
    return any(int(n) > 0 for n in (steps if isinstance(steps, (list, tuple)) else [steps]))


def with_network_rows(rows: dict, refined: bool) -> dict:
    """``rows`` with "T alone" (the network's own field, ``NETWORK_FIGURES``) before "T" (T + the test-time
    optimisation as configured) when the optimisation ran, so every table shows what the network does by itself."""
    from common.registration import NETWORK_FIGURES

    def alone(row: dict) -> dict:
        figures = {name.removeprefix("network_"): row[name] for name in NETWORK_FIGURES}
        return {**row, **figures}

    if not refined:
        return rows
    return {"T alone": [alone(r) for r in rows["T"]], **rows}


def run_worker(args: argparse.Namespace) -> None:
    """Hidden entry point of the child process: one measurement, printed as one JSON line."""
    import torch

    torch.set_num_threads(args.threads)
    # as MedGAN's configs do (its "initialize"): denormal floats made its step up to 28x slower on the CPU; the
    # CycleGAN step is unaffected (measured)
    torch.set_flush_denormal(True)
    kind, _, size = args.worker.partition(":")
    if kind == "framework":
        result = measure_framework(args.bundle, size, args.warmup, args.iterations, args.data)
    elif kind == "plain":
        result = measure_plain(args.bundle, size, args.warmup, args.iterations)
    elif kind == "bundle_inference":
        result = measure_bundle_inference(args.bundle, args.data)
    elif kind == "anatomical":
        result = measure_anatomical(args.pairs, args.data, args.threads, args.pair_overrides, args.baselines,
                                    args.syn_transform, args.syn_options, args.ants_venv)
    elif kind == "clinical":
        from tools.clinical_pairs import measure_clinical

        register = _baseline_registrations(args.threads, args.syn_transform, args.syn_options, args.ants_venv)
        result = measure_clinical(args.pairs, args.data, {b: register[b] for b in args.baselines}, args.pair_overrides)
    elif kind == "pairs":
        result = measure_pairs(args.pairs, args.data, args.pair_seeds, args.threads, args.pair_overrides, args.baselines,
                               args.syn_transform, args.syn_options, args.ants_venv)
    else:
        result = measure_network_inference(args.bundle, args.data, args.infer_batches)
    result["peak_rss_mib"] = max(_peak_rss_mib(), _PEAK_BEFORE_RESET[0])  # the whole process
    if torch.cuda.is_available():
        result["peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 2**20
    print(RESULT_PREFIX + json.dumps(result), flush=True)


# ---------------------------------------------------------------- driver


def spawn(worker: str, args: argparse.Namespace, warmup: int = 0, iterations: int = 0) -> dict:
    """Run one measurement in a fresh interpreter and return its result."""
    print(f"  measuring {args.bundle} {worker} ...", file=sys.stderr, flush=True)
    cmd = [sys.executable, "-m", "tools.benchmark", args.bundle, "--_worker", worker, "--threads", str(args.threads)]
    cmd += ["--data", str(args.data), "--warmup", str(warmup), "--iterations", str(iterations)]
    cmd += ["--infer-batches", str(args.infer_batches)]
    if args.pairs:
        cmd += ["--pairs", str(args.pairs), "--pair-seeds", str(args.pair_seeds), "--pair-overrides", json.dumps(args.pair_overrides),
                *(["--anatomical"] if args.anatomical else []), *(["--clinical"] if args.clinical else []),
                "--baselines", ",".join(args.baselines), "--syn-transform", args.syn_transform,
                "--syn-options", json.dumps(args.syn_options), "--ants-venv", str(args.ants_venv)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, encoding="utf-8", errors="replace")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_PREFIX)]
    if proc.returncode or not lines:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(f"measurement {worker} failed (exit status {proc.returncode})")
    return json.loads(lines[-1][len(RESULT_PREFIX) :])


def benchmark_size(size: str, args: argparse.Namespace) -> dict:
    spec = BENCHMARKS[args.bundle]
    warmup = max(1, args.warmup if args.warmup is not None else spec.iterations[size][0])
    iterations = args.iterations if args.iterations is not None else spec.iterations[size][1]
    framework = spawn(f"framework:{size}", args, warmup, iterations)
    plain = spawn(f"plain:{size}", args, warmup, iterations)
    fw_s, plain_s = statistics.median(framework["seconds"]), statistics.median(plain["seconds"])
    return {
        "config": spec.config(size),
        "warmup": warmup,
        "iterations": iterations,
        "framework": {**framework, "median_seconds": fw_s, "iterations_per_second": 1 / fw_s,
                      "median_data_seconds": statistics.median(framework["data_seconds"])},
        "plain": {**plain, "median_seconds": plain_s, "iterations_per_second": 1 / plain_s},
        "overhead": fw_s / plain_s,
    }


def print_table(report: dict) -> None:
    spec = BENCHMARKS[report["bundle"]]
    cols = ("size", "framework it/s", "plain it/s", "overhead", "fw data ms/it", "loop RSS fw/plain", "process RSS fw/plain")
    head = f"{cols[0]:<8}" + "".join(f"{c:>{len(c) + 3}}" for c in cols[1:])
    print(f"\n{spec.title} training, {report['threads']} CPU threads, device {report['device']}, medians over timed iterations;")
    print("overhead = framework s/it / plain s/it; peak RSS in MiB, during the training loop and over the whole process")
    print(head)
    print("-" * len(head))
    for size, r in report["training"].items():
        fw, pl = r["framework"], r["plain"]
        cells = (
            f"{fw['iterations_per_second']:.3f}", f"{pl['iterations_per_second']:.3f}", f"{r['overhead']:.3f}x",
            f"{1000 * fw['median_data_seconds']:.1f}", f"{fw['loop_peak_rss_mib']:.0f} / {pl['loop_peak_rss_mib']:.0f}",
            f"{fw['peak_rss_mib']:.0f} / {pl['peak_rss_mib']:.0f}",
        )
        row = f"{size:<8}" + "".join(f"{c:>{len(h) + 3}}" for c, h in zip(cells, cols[1:]))
        print(f"{row}   ({r['warmup']} warm-up + {r['iterations']} timed)")
    inf = report.get("inference")
    if inf:
        b, n = inf["bundle"], inf["network"]
        roi = "x".join(str(s) for s in spec.sizes["default"]["roi_size"])
        what = ("the whole volume in one pass, padded to a multiple of 16" if spec.volumetric
                else f"{b['slices']} patches of {roi}, batches of {INFER_BATCH}")
        print(f"\nInference, default size, {BUNDLES[report['bundle']]['sample_input']} ({what})")
        print(f"  inference.json run():          {b['seconds']:8.1f} s/volume  (peak RSS {b['peak_rss_mib']:.0f} MiB)")
        print(f"    of which inside the generator: {b['network_seconds']:6.1f} s")
        print(f"  plain generator, no_grad:      {n['seconds']:8.1f} s/volume  (peak RSS {n['peak_rss_mib']:.0f} MiB;"
              f" {n['timed_slices']} patches timed, scaled to {n['slices']})")
        print(f"  run() / plain generator:       {b['seconds'] / n['seconds']:8.3f}x")


def print_pairs(report: dict, key: str = "pairs") -> None:
    """T and the baselines side by side: per pair, then the means and the time ratios. ``key``: the seeded
    evaluation pairs ("pairs", scored against the known deformation) or the labelled brains ("anatomical", Dice
    over anatomical structures after an affine alignment; no known deformation, so no endpoint error)."""
    import numpy as np

    result = report[key]
    rows = result["rows"]
    methods = list(rows)  # T alone (when optimised), T (+ its optimisation), then the baselines asked for
    label = {"T": "T + opt." if "T alone" in rows else "T"}
    keys = ("epe_mm", "epe_p95_mm", "dice_after", "folding_percent", "seconds")

    def number(value, digits: int = 2) -> str:
        return "-" if np.isnan(float(value)) else f"{float(value):.{digits}f}"  # NaN: not measured for these pairs

    def cells(figures: dict) -> str:
        return "".join(f"{number(figures[k], 3 if k == 'dice_after' else 2):>16}" for k in keys)

    def mean(values: list[float]) -> float:
        finite = [v for v in values if not np.isnan(v)]
        return float(np.mean(finite)) if finite else float("nan")

    what = {"anatomical": "the labelled brains, inter-subject, affinely aligned (no registration: Dice after the affine; "
                          "before it in brackets)",
            "clinical": "the raw clinical pairs, each on its own grid; EPE here: the distance between the method's "
                        "mapping and the database authors' ITK transform over the head (no registration: the "
                        "scanners' world coordinates as they are)",
            }.get(key, "the evaluation pairs, against the known deformation")
    print(f"\nRegistration of {what} ({report['pairs_bundle']});"
          f" {report['threads']} CPU threads (elastix: 1, see tools/registration_baseline.py); "
          + (f"ANTs {result['syn_transform']} {json.dumps(result['syn_options'])}; " if "SyN" in rows else "")
          + "T with "
          f"{result.get('refine_steps', 0)} steps of test-time optimisation (the bundle's refine_steps), "
          f"downsampled {result.get('refine_downsample', 1)}x, lr {result.get('refine_lr')}, smoothness "
          f"{result.get('refine_alpha')}, correction grid {result.get('refine_grid_factor')}x coarser; "
          f"pairs at {result.get('pixdim')} mm")
    width = max([len("pair"), *(len(r["pair"]) for r in rows["T"])]) + 2
    head = f"{'pair':<{width}}{'method':<10}" + "".join(f"{k:>16}" for k in ("EPE mean (mm)", "EPE p95 (mm)", "Dice", "folding %", "s/pair"))
    print(head)
    print("-" * len(head))
    for i, r in enumerate(rows["T"]):
        dice_before = number(r["dice_before"], 3) + (f" ({number(r['unaligned_dice'], 3)})" if "unaligned_dice" in r else "")
        print(f"{r['pair']:<{width}}{'none':<10}{number(r['epe_before_mm']):>16}{'':>16}{dice_before:>16}{0.0:>16.2f}{'':>16}")
        for method in methods:
            print(f"{'':<{width}}{label.get(method, method):<10}" + cells(rows[method][i]))
    means = {method: {k: mean([float(r[k]) for r in rows[method]]) for k in keys} for method in methods}
    for i, method in enumerate(methods):
        print(f"{'mean' if i == 0 else '':<{width}}{label.get(method, method):<10}" + cells(means[method]))
    for method in [m for m in methods if m not in ("T", "T alone")]:
        print(f"{method} s/pair / T s/pair: {means[method]['seconds'] / means['T']['seconds']:.1f}x")


def _baselines(text: str) -> list[str]:
    known = {b.lower(): b for b in BASELINES}
    names = list(dict.fromkeys(n.strip().lower() for n in text.split(",") if n.strip()))  # each once, in order
    if not names or any(n not in known for n in names):
        raise argparse.ArgumentTypeError(f"baselines are comma-separated names of {', '.join(BASELINES)}, got {text!r}")
    return [known[n] for n in names]


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not JSON ({e}): {text!r}") from e
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object of config values, got {text!r}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tools.benchmark", description=__doc__.split("\n\n")[0])
    p.add_argument("bundle", choices=list(BENCHMARKS))
    sizes = "; ".join(f"{name}: {', '.join(spec.sizes)}" for name, spec in BENCHMARKS.items())
    defaults = "; ".join(f"{name}: {','.join(spec.default_sizes)}" for name, spec in BENCHMARKS.items())
    p.add_argument("--sizes", default=None, help=f"comma-separated, of the bundle's ({sizes}); default {defaults}")
    p.add_argument("--iterations", type=int, default=None, help="timed iterations (default: per bundle and size, "
                   "e.g. 5 at CycleGAN's 'default', 2 at MedGAN's)")
    p.add_argument("--warmup", type=int, default=None, help="untimed iterations first, at least 1 (default: per size)")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads in every measurement")
    p.add_argument("--data", type=Path, default=ROOT / "data", help="dataset root with the datalists (python -m tools.sample_data)")
    p.add_argument("--skip-inference", action="store_true", help="training only")
    p.add_argument("--infer-batches", type=int, default=4, help="batches of 8 slices timed for the plain generator, "
                   "scaled to the whole volume (0: time all slices)")
    p.add_argument("--pairs", type=Path, default=None, help="deform_gan: a trained bundle folder (e.g. the demo's "
                   "outputs/demo/bundles/deform_gan); registers its evaluation pairs with its T and with the classical "
                   "baselines (--baselines) and prints them side by side")
    p.add_argument("--pair-seeds", type=int, default=3, help="deform_gan --pairs: seeded deformations per pair (0: "
                   "none, e.g. with --anatomical alone)")
    p.add_argument("--anatomical", action="store_true", help="deform_gan --pairs: also the inter-subject pairs of the "
                   "labelled brains, affinely aligned by ANTs first, scored by Dice over 30 anatomical structures "
                   "(tools/anatomical_pairs.py; T1 onto T1; needs python3.11 -m tools.ants setup)")
    p.add_argument("--clinical", action="store_true", help="deform_gan --pairs: also the raw clinical pairs (the sample "
                   "data's brain_mri_raw: T1W and T2W onto FLAIR of two studies, each on its own grid), scored by the "
                   "distance between each method's mapping and the database authors' ITK transforms over the head "
                   "(tools/clinical_pairs.py)")
    p.add_argument("--baselines", type=_baselines, default=list(BASELINES), help="deform_gan --pairs: the classical "
                   f"baselines run beside T, comma-separated, of {','.join(BASELINES)} (default all: SyN needs "
                   "python3.11 -m tools.ants setup, elastix pip install -r requirements-benchmark.txt)")
    p.add_argument("--syn-transform", default=SYN_TRANSFORM, help="deform_gan --pairs: ANTs' type_of_transform for the "
                   f"SyN baseline (default {SYN_TRANSFORM}: affine then SyN, Mattes mutual information; e.g. "
                   "antsRegistrationSyNQuick[s], the antsRegistrationSyNQuick.sh recipe)")
    p.add_argument("--syn-options", type=_json_object, default={}, help="deform_gan --pairs: ants.registration "
                   f"arguments for the SyN baseline as a JSON object, on top of its defaults ('{json.dumps(SYN_OPTIONS)}', "
                   "see tools/registration_baseline.py), e.g. '{\"reg_iterations\": [40, 20, 10]}' (SyN's iterations "
                   "per level, the last at full resolution) or '{\"total_sigma\": 0}' (antspyx's own default)")
    p.add_argument("--ants-venv", type=Path, default=ANTS_VENV, help="deform_gan --pairs: the virtualenv with antspyx "
                   f"for SyN and the anatomical pairs' affine alignment (default {ANTS_VENV.name}: python3.11 -m tools.ants "
                   "setup [--venv DIR])")
    p.add_argument("--pair-overrides", type=_json_object, default={}, help="deform_gan --pairs: config values as a "
                   "JSON object for the pairs' evaluation, e.g. '{\"pixdim\": [1, 1, 1], \"roi_size\": [160, 192, 160], "
                   "\"lg_kernel_size\": 7, \"refine_steps\": [30, 10], \"refine_downsample\": [3, 2], \"refine_lr\": 0.5, "
                   "\"refine_alpha\": 2.5, \"refine_grid_factor\": 5}' (1 mm pairs for a T trained at 3 mm, coarse to "
                   "fine: the model card's schedule)")
    p.add_argument("--json", type=Path, default=None, help="also write all numbers, per-iteration times included")
    p.add_argument("--_worker", dest="worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.data = args.data.resolve()
    spec = BENCHMARKS[args.bundle]
    if args.pairs and args.bundle != "deform_gan":
        p.error("--pairs is for deform_gan")
    if args.anatomical and not args.pairs:
        p.error("--anatomical needs --pairs (the trained bundle to evaluate)")
    if args.clinical and not args.pairs:
        p.error("--clinical needs --pairs (the trained bundle to evaluate)")
    if args.pairs and not (args.pair_seeds > 0 or args.anatomical or args.clinical):
        p.error("--pair-seeds 0 leaves nothing to register without --anatomical or --clinical")
    if args.pairs and args.sizes is None:  # only the registration comparison
        args.sizes, args.skip_inference = "", True
    args.sizes = args.sizes if args.sizes is not None else ",".join(spec.default_sizes)
    unknown = [s for s in args.sizes.split(",") if s and s not in spec.sizes]
    if unknown:
        p.error(f"unknown {args.bundle} sizes {unknown}; choose from {list(spec.sizes)}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        return run_worker(args)
    import monai
    import torch

    report = {"bundle": args.bundle, "threads": args.threads, "device": str(_device()), "torch": torch.__version__,
              "monai": monai.__version__, "training": {}}
    if args.pairs:
        args.pairs = args.pairs.resolve()
        report["pairs_bundle"] = str(args.pairs)
        if args.pair_seeds:
            report["pairs"] = spawn("pairs", args)
        if args.anatomical:
            report["anatomical"] = spawn("anatomical", args)
        if args.clinical:
            report["clinical"] = spawn("clinical", args)
    for size in [s for s in args.sizes.split(",") if s]:
        report["training"][size] = benchmark_size(size, args)
    if not args.skip_inference:
        report["inference"] = {"bundle": spawn("bundle_inference", args), "network": spawn("network_inference", args)}
    if report["training"]:
        print_table(report)
    if "pairs" in report:
        print_pairs(report)
    if "anatomical" in report:
        print_pairs(report, "anatomical")
    if "clinical" in report:
        print_pairs(report, "clinical")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
