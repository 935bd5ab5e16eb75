"""Shared parts that the bundles' configs refer to as ``common.<...>``: networks, losses, engines, data, metrics, registration.

Configs say ``"$import common"`` (MONAI's config imports bind only a top-level name), so the subpackages are
imported here.
"""

from . import baselines, bundle, ct_evaluation, data, engines, losses, metrics, networks, panels, registration

__all__ = ["baselines", "bundle", "ct_evaluation", "data", "engines", "losses", "metrics", "networks", "panels", "registration"]
