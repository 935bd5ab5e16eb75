"""The losses of the papers that MONAI lacks: MedGAN's perceptual (feature-matching), style and content losses;
AE-GAN's self-representation loss."""

from .content import ContentLoss
from .gram import gram_matrix
from .perceptual import FeatureMatchingLoss
from .self_representation import SelfRepresentationLoss
from .style import StyleLoss

__all__ = ["ContentLoss", "FeatureMatchingLoss", "SelfRepresentationLoss", "StyleLoss", "gram_matrix"]
