"""Set up the MONAI Label server's own virtualenv (standard library only: runs with a bare Python 3.11).

    python3.11 -m tools.monailabel setup [--venv .venv-monailabel]

MONAI Label imports torchvision, which does not install beside the project's torch 2.13.0, so the server runs
from its own virtualenv with ``tools/monailabel/requirements.txt`` (torch 2.14.1 from PyPI: the CUDA build,
about 8 GB, ~4 min to install). The command creates the virtualenv, installs the pinned requirements, checks
that the server's imports work and prints the command that starts the server.
"""

from __future__ import annotations

import argparse
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
    parser = argparse.ArgumentParser(prog="python -m tools.monailabel", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("setup", help="create the MONAI Label virtualenv with tools/monailabel/requirements.txt")
    p.add_argument("--venv", type=Path, default=DEFAULT_VENV, help=f"virtualenv folder (default: {DEFAULT_VENV.name})")
    p.add_argument("-q", "--quiet", action="store_true", help="quiet pip")
    args = parser.parse_args(argv)
    venv_dir = args.venv.resolve()
    virtualenvs.setup(venv_dir, REQUIREMENTS, IMPORT_CHECK, args.quiet)
    # activate: the `monailabel` script runs the `python` found on PATH
    print("\nready. Start the server (from the repository root) with:\n"
          f"  source {virtualenvs.shown(venv_dir)}/bin/activate\n"
          "  monailabel start_server --app tools/monailabel --studies <folder of NIfTI volumes> --conf models cyclegan")
    return 0


if __name__ == "__main__":
    sys.exit(main())
