"""Side virtualenvs for tools whose packages cannot install beside the project's pinned stack (standard library
only: runs with a bare Python 3.11).

``tools/monailabel`` (MONAI Label imports torchvision, which does not install beside torch 2.13.0) and
``tools/ants`` (antspyx pins numpy < 2.4) each keep a ``requirements.txt`` and set up their own virtualenv with
``python3.11 -m tools.<name> setup``.
"""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path


def setup(venv_dir: Path, requirements: Path, import_check: str, quiet: bool = False) -> Path:
    """Creates (or completes) ``venv_dir`` with ``requirements`` and runs ``import_check`` (Python code) in it;
    returns its python."""
    if sys.version_info[:2] != (3, 11):
        print(f"warning: {requirements} is pinned for Python 3.11, this is {sys.version.split()[0]}", file=sys.stderr)
    python = venv_dir / "bin" / "python"
    if not python.exists():
        print(f"creating {venv_dir}", flush=True)
        venv.EnvBuilder(with_pip=True).create(venv_dir)
    pip = [str(python), "-m", "pip", "install", "-r", str(requirements)] + (["-q"] if quiet else [])
    print("$ " + " ".join(pip), flush=True)
    subprocess.run(pip, check=True)
    subprocess.run([str(python), "-c", import_check], check=True)
    return python


def shown(path: Path) -> Path:
    """``path`` relative to the working directory where it lies below it (for printed commands)."""
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path
