"""The losses of the papers that MONAI lacks: the adversarial terms every GAN step shares (LSGAN as the papers use it,
the generator's and the discriminator's terms on patch logits); MedGAN's perceptual (feature-matching), style and content losses;
AE-GAN's self-representation loss; the Gaussian-mixture prior of the patch-based UNIT and its KL divergence;
Deform-GAN's local gradient loss.
"""

from .adversarial import discriminator_adversarial_loss, generator_adversarial_loss, lsgan_loss, patch_logits
from .content import ContentLoss
from .gaussian_mixture import GaussianMixturePrior, gaussian_mixture_kl
from .gram import gram_matrix
from .local_gradient import LocalGradientLoss, local_gradient_directions
from .perceptual import FeatureMatchingLoss
from .self_representation import SelfRepresentationLoss
from .style import StyleLoss

__all__ = [
    "discriminator_adversarial_loss",
    "generator_adversarial_loss",
    "lsgan_loss",
    "patch_logits",
    "ContentLoss",
    "GaussianMixturePrior",
    "gaussian_mixture_kl",
    "FeatureMatchingLoss",
    "SelfRepresentationLoss",
    "StyleLoss",
    "gram_matrix",
    "LocalGradientLoss",
    "local_gradient_directions",
]
