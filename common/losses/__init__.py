"""The losses of the papers that MONAI lacks: MedGAN's perceptual (feature-matching), style and content losses;
AE-GAN's self-representation loss; the Gaussian-mixture prior of the patch-based UNIT and its KL divergence;
Deform-GAN's local gradient loss.
"""

from .content import ContentLoss
from .gaussian_mixture import GaussianMixturePrior, gaussian_mixture_kl
from .gram import gram_matrix
from .local_gradient import LocalGradientLoss, local_gradient_directions
from .perceptual import FeatureMatchingLoss
from .self_representation import SelfRepresentationLoss
from .style import StyleLoss

__all__ = [
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
