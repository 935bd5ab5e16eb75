"""Deform-GAN's registration parts MONAI lacks: the transformation network T (on MONAI's VoxelMorph U-Net and
``Warp``), displacement-field measures (Jacobian, folding, endpoint error, Dice, world-mm vectors) and the
evaluation against a known deformation. G and D are MONAI's ``UNet`` and ``PatchDiscriminator``."""

from .affine import apply_affine, mask_affine
from .evaluation import (
    FIGURES,
    NETWORK_FIGURES,
    PairOutputs,
    RegistrationMetric,
    RegistrationReport,
    registration_figures,
)
from .fields import ddf_to_voxels, ddf_to_world, dice, endpoint_errors, folding_percent, jacobian_determinant
from .networks import TransformationNetwork
from .refinement import InstanceOptimisation

__all__ = [
    "FIGURES",
    "NETWORK_FIGURES",
    "apply_affine",
    "mask_affine",
    "InstanceOptimisation",
    "PairOutputs",
    "RegistrationMetric",
    "RegistrationReport",
    "TransformationNetwork",
    "ddf_to_voxels",
    "ddf_to_world",
    "dice",
    "endpoint_errors",
    "folding_percent",
    "jacobian_determinant",
    "registration_figures",
]
