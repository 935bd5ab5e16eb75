"""The losses of the papers that MONAI lacks: MedGAN's perceptual (feature-matching), style and content losses."""

from .content import ContentLoss
from .gram import gram_matrix
from .perceptual import FeatureMatchingLoss
from .style import StyleLoss

__all__ = ["ContentLoss", "FeatureMatchingLoss", "StyleLoss", "gram_matrix"]
