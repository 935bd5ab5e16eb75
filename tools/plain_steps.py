"""The five bundles' training steps written by hand in plain PyTorch, with the same networks, initialisation and
losses as their configs build: what ``python -m tools.benchmark`` times the framework against (``tools/speed.py``),
and what the tests check the bundles' steps equal (``tests/test_benchmark.py``)."""

from __future__ import annotations

import functools
from collections.abc import Callable

ADAM = {"lr": 2e-4, "betas": (0.5, 0.999)}  # the CycleGAN and MedGAN optimisers


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
                            norm=config["gen_norm"], output_activation=config["gen_output_activation"])


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
    alpha, beta, mu, lambda_pixel = weights

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
              + lambda_pixel * (translated - fixed).abs().mean())
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
    weights = tuple(config[k] for k in ("alpha", "beta", "mu", "lambda_pixel"))
    return functools.partial(deform_gan_plain_step, nets, opts, losses, weights)
