"""The losses of the papers that MONAI lacks: MedGAN's perceptual (feature-matching), style and content losses;
AE-GAN's self-representation loss; the Gaussian-mixture prior of the patch-based UNIT and its KL divergence."""

from .content import ContentLoss
from .gaussian_mixture import GaussianMixturePrior, gaussian_mixture_kl
from .gram import gram_matrix
from .perceptual import FeatureMatchingLoss
from .self_representation import SelfRepresentationLoss
from .style import StyleLoss

__all__ = ["ContentLoss", "GaussianMixturePrior", "gaussian_mixture_kl", "FeatureMatchingLoss", "SelfRepresentationLoss", "StyleLoss", "gram_matrix"]
