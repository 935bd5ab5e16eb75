"""Shared parts that the bundles' configs refer to as ``common.<...>``: networks, losses, engines, data, metrics, registration.

Configs say ``"$import common"`` (MONAI's config imports bind only a top-level name), so ``common.<subpackage>`` must
resolve from the top-level name: each subpackage is imported on first use (PEP 562), so that a tool needing one part
(``tools.datalist`` reads ``common.data``) does not pay for importing them all.
"""

import importlib

from . import bundle

bundle.one_line_errors()  # under `python -m monai.bundle`: errors raised on purpose as one line, not a traceback

__all__ = [
    "baselines",
    "bundle",
    "ct_evaluation",
    "data",
    "engines",
    "evaluation",
    "losses",
    "metrics",
    "networks",
    "panels",
    "registration",
]


def __getattr__(name: str):
    if name in __all__:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'common' has no attribute '{name}'")
