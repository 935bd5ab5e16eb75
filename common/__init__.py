"""Shared parts that the bundles' configs refer to as ``common.<...>``: networks, losses, engines, data, metrics, registration.

Configs say ``"$import common"`` (MONAI's config imports bind only a top-level name), so the subpackages are
imported here.
"""

from . import baselines, bundle, ct_evaluation, data, engines, losses, metrics, networks, panels, registration

bundle.one_line_errors()  # under `python -m monai.bundle`: errors raised on purpose as one line, not a traceback

__all__ = ["baselines", "bundle", "ct_evaluation", "data", "engines", "losses", "metrics", "networks", "panels", "registration"]
