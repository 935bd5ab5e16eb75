"""Set up the virtualenv of the ANTs SyN baseline (standard library only: runs with a bare Python 3.11).

    python3.11 -m tools.ants setup [--venv .venv-ants]

antspyx 0.6.3 pins numpy < 2.4, below the project's numpy 2.4.6, so ANTs runs from its own virtualenv with
``tools/ants/requirements.txt`` (about 650 MB, under a minute to install). ``tools/registration_baseline.py``
calls ``tools/ants/syn.py`` with that virtualenv's python, passing the images and the field as ``.npz`` files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tools import virtualenvs

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = Path(__file__).resolve().parent / "requirements.txt"
DEFAULT_VENV = ROOT / ".venv-ants"
IMPORT_CHECK = "import ants, numpy; print('antspyx', ants.__version__, '| numpy', numpy.__version__)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.ants", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("setup", help="create the ANTs virtualenv with tools/ants/requirements.txt")
    p.add_argument("--venv", type=Path, default=DEFAULT_VENV, help=f"virtualenv folder (default: {DEFAULT_VENV.name})")
    p.add_argument("-q", "--quiet", action="store_true", help="quiet pip")
    args = parser.parse_args(argv)
    virtualenvs.setup(args.venv.resolve(), REQUIREMENTS, IMPORT_CHECK, args.quiet)
    print("\nready: python -m tools.benchmark deform_gan --pairs <trained bundle> runs ANTs SyN beside elastix")
    return 0


if __name__ == "__main__":
    sys.exit(main())
