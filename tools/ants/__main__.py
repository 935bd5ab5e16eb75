"""Set up the virtualenv of the ANTs SyN baseline (standard library only: runs with a bare Python 3.11).

    python3.11 -m tools.ants setup [--venv .venv-ants]

antspyx 0.6.3 pins numpy < 2.4, below the project's numpy 2.4.6, so ANTs runs from its own virtualenv with
``tools/ants/requirements.txt`` (about 650 MB, under a minute to install). ``tools/registration_baseline.py``
calls ``tools/ants/syn.py`` with that virtualenv's python, passing the images and the field as ``.npz`` files.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tools import virtualenvs

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = Path(__file__).resolve().parent / "requirements.txt"
DEFAULT_VENV = ROOT / ".venv-ants"
IMPORT_CHECK = "import ants, numpy; print('antspyx', ants.__version__, '| numpy', numpy.__version__)"


def main(argv: list[str] | None = None) -> int:
    virtualenvs.setup_command(argv, "python -m tools.ants", __doc__.split("\n\n")[0], DEFAULT_VENV, REQUIREMENTS,
                              IMPORT_CHECK)
    print("\nready: python -m tools.benchmark deform_gan --pairs <trained bundle> runs ANTs SyN beside elastix "
          f"(from {DEFAULT_VENV.name} in the repository root)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
