"""Set up the MONAI Label server's own virtualenv (standard library only: runs with a bare Python 3.11).

    python3.11 -m tools.monailabel setup [--venv .venv-monailabel]

MONAI Label imports torchvision, which does not install beside the project's torch 2.13.0, so the server runs
from its own virtualenv with ``tools/monailabel/requirements.txt`` (torch 2.14.1 from PyPI: the CUDA build,
about 8 GB, ~4 min to install). The command creates the virtualenv, installs the pinned requirements, checks
that the server's imports work and prints the command that starts the server.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tools import virtualenvs

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = Path(__file__).resolve().parent / "requirements.txt"
DEFAULT_VENV = ROOT / ".venv-monailabel"
IMPORT_CHECK = ("import monailabel, monai, torch, torchvision, nibabel, ignite; "
                "print('monailabel', monailabel.__version__, '| monai', monai.__version__, '| torch', torch.__version__,"
                " '| torchvision', torchvision.__version__)")


def main(argv: list[str] | None = None) -> int:
    venv_dir = virtualenvs.setup_command(argv, "python -m tools.monailabel", __doc__.split("\n\n")[0], DEFAULT_VENV,
                                         REQUIREMENTS, IMPORT_CHECK)
    # activate: the `monailabel` script runs the `python` found on PATH
    print("\nready. Start the server (from the repository root) with:\n"
          f"  source {virtualenvs.shown(venv_dir)}/bin/activate\n"
          "  monailabel start_server --app tools/monailabel --studies <folder of NIfTI volumes> --conf models cyclegan")
    return 0


if __name__ == "__main__":
    sys.exit(main())
